"""Shared fixtures: tiny/small synthetic data sets and the real-data directory.

Tests marked ``real_data`` are skipped, with instructions, unless ``$CIESS_DATA_DIR`` names an
existing folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ciess_env.data import InteractionData, make_synthetic

REAL_DATA_SKIP = (
    "real data not found: set CIESS_DATA_DIR to a folder with ml-1m-lightgcn/, ml-100k/, "
    "yelp2018/ (see README 'Real data')"
)


def _real_data_dir() -> Path | None:
    value = os.environ.get("CIESS_DATA_DIR", "").strip()
    if value and Path(value).expanduser().is_dir():
        return Path(value).expanduser().resolve()  # tests symlink into it
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip every ``real_data`` test when the real data directory is absent."""
    if _real_data_dir() is not None:
        return
    skip = pytest.mark.skip(reason=REAL_DATA_SKIP)
    for item in items:
        if "real_data" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_data() -> InteractionData:
    """60 users × 40 items, ~10 interactions each, seed 0: fast enough for any unit test."""
    return make_synthetic(n_users=60, n_items=40, mean_interactions=10, seed=0)


@pytest.fixture(scope="session")
def small_data() -> InteractionData:
    """The default synthetic data set (1,000 users × 500 items, ~30,000 interactions)."""
    return make_synthetic()


@pytest.fixture(scope="module")
def tiny_kwargs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Env kwargs for a 40 × 30 synthetic MF env on the tiny preset, one cache per module."""
    return {
        "dataset": "synthetic",
        "backbone": "mf",
        "preset": "tiny",
        "dataset_kwargs": {"n_users": 40, "n_items": 30, "mean_interactions": 8},
        "cache_dir": str(tmp_path_factory.mktemp("ciess-cache")),
    }


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The folder of the real data sets, from ``$CIESS_DATA_DIR``; skips the test if absent."""
    path = _real_data_dir()
    if path is None:
        pytest.skip(REAL_DATA_SKIP)
    return path


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread_per_worker():
    """Run torch on one thread per test worker.

    The suite runs on two workers (``pytest -n 2``) on two cores; two OpenMP threads per worker
    oversubscribe the cores and make small tensor work several times slower.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
