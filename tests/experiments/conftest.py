"""Fixtures for tests that run `ciess search` on a tiny synthetic env (about a second each)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

SEARCH_ENV = "CIESS-MF-Synthetic-v0"
SEARCH_AGENT_KW = {"batch_size": 64, "policy_kwargs": {"net_arch": [32, 32]}, "device": "cpu"}


@pytest.fixture(scope="module")
def search_argv(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., list[str]]:
    """``search_argv(out, *extra)``: the argv of a 2-episode RW-TD3 search on 40 × 30 entities.

    Every search of a module shares one pretraining cache; ``--budgets 0.3 0.5`` are budgets
    this tiny table reaches, so `ciess retrain` has masks for them.
    """
    env_kw = {
        "preset": "tiny",
        "dataset_kwargs": {"n_users": 40, "n_items": 30, "mean_interactions": 8},
        "cache_dir": str(tmp_path_factory.mktemp("search-cache")),
    }

    def argv(out: Path, *extra: str) -> list[str]:
        return [
            "search", SEARCH_ENV, "--episodes", "2", "--seed", "3", "--output", str(out),
            "--budgets", "0.3", "0.5",
            "--env-kw", *(f"{k}={v!r}" for k, v in env_kw.items()),
            "--agent-kw", *(f"{k}={v!r}" for k, v in SEARCH_AGENT_KW.items()),
            *extra,
        ]  # fmt: skip

    return argv
