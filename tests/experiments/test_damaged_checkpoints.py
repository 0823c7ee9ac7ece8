"""Damaged files: a search killed while writing a checkpoint, then every file truncated in turn.

The search keeps the previous checkpoint (``checkpoint.prev``) and falls back to it, with a
warning naming the damaged file, and then ends exactly as an uninterrupted search; where no
intact checkpoint is left, and for every other loader, the error is a ciess error that names
the file (never a raw UnpicklingError, BadZipFile, EOFError or JSONDecodeError).
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch as th

from agents.experiments.checkpoint import (
    CRASH_ENV,
    CRASH_EXIT_CODE,
    CheckpointDamagedError,
    SearchRun,
)
from agents.experiments.cli import main
from agents.experiments.rundir import RunFileDamagedError, read_results
from agents.experiments.session import SearchSession
from ciess_env.budget_log import BudgetLog
from ciess_env.errors import CIESSError, DataFormatError, DataNotFoundError

EPISODES = ("--episodes", "3", "--deterministic-masks")
CHECKPOINT_FILES = [
    "agent.zip", "replay_buffer.pkl", "budget_log.npz", "budget_log.json",
    "deterministic_log.npz", "deterministic_log.json", "rng.pkl", "state.json", "complete.json",
]  # fmt: skip

# One worker builds the module's two runs (straight, killed) once, not one copy per worker.
pytestmark = pytest.mark.xdist_group("damaged_checkpoints")


@pytest.fixture(scope="module")
def straight(tmp_path_factory, search_argv) -> Path:
    """A 3-episode search that was never interrupted."""
    out = tmp_path_factory.mktemp("straight") / "run"
    assert main(search_argv(out, *EPISODES)) == 0
    return out


@pytest.fixture(scope="module")
def killed(tmp_path_factory, search_argv) -> Path:
    """The same search, killed (``os._exit``) while writing its third checkpoint."""
    out = tmp_path_factory.mktemp("killed") / "run"
    env = {**os.environ, CRASH_ENV: "3:rng.pkl", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "agents.experiments.cli", *search_argv(out, *EPISODES)],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == CRASH_EXIT_CODE, done.stderr
    # Episode 2's checkpoint, episode 1's kept as .prev, and the half-written third.
    assert json.loads((out / "checkpoint" / "state.json").read_text())["episodes_done"] == 2
    assert json.loads((out / "checkpoint.prev" / "state.json").read_text())["episodes_done"] == 1
    written = sorted(p.name for p in (out / "checkpoint.tmp").iterdir())
    assert "rng.pkl" in written
    assert "state.json" not in written
    assert json.loads((out / "status.json").read_text())["status"] == "running"
    assert sorted(p.name for p in (out / "checkpoint").iterdir()) == sorted(CHECKPOINT_FILES)
    return out


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _arrays(run: Path) -> dict[str, np.ndarray]:
    """Every array a finished search wrote: both budget logs and the policy's weights."""
    out: dict[str, np.ndarray] = {}
    for name in ("budget_log.npz", "deterministic_log.npz"):
        with np.load(run / name) as z:
            out |= {f"{name}:{k}": z[k] for k in z.files}
    with zipfile.ZipFile(run / "agent.zip") as z:
        policy = th.load(io.BytesIO(z.read("policy.pth")), weights_only=True)
    return out | {f"policy:{k}": v.numpy() for k, v in policy.items()}


def _assert_same_search(a: Path, b: Path) -> None:
    left, right = _arrays(a), _arrays(b)
    assert left.keys() == right.keys()
    assert [k for k in left if not np.array_equal(left[k], right[k])] == []
    assert (a / "curve.csv").read_text() == (b / "curve.csv").read_text()


@pytest.mark.parametrize("damaged", [None, *CHECKPOINT_FILES])
def test_killed_during_a_checkpoint_write_then_truncated_resumes_to_the_same_result(
    tmp_path, caplog, straight, killed, damaged
):
    run = tmp_path / "run"
    shutil.copytree(killed, run)
    if damaged is not None:
        _truncate(run / "checkpoint" / damaged)
    with caplog.at_level(logging.WARNING, logger="agents.experiments.checkpoint"):
        assert main(["search", "--resume", str(run)]) == 0
    _assert_same_search(straight, run)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    if damaged is None:
        assert warnings == []
        return
    # Before: a raw UnpicklingError / BadZipFile / EOFError / JSONDecodeError, exit 1.
    (warning,) = warnings
    assert warning.startswith(f"{run / 'checkpoint' / damaged} is damaged (")
    assert f"resuming from the previous checkpoint {run / 'checkpoint.prev'} (after episode 1" in (
        warning
    )
    assert (run / "checkpoint.damaged" / damaged).is_file()  # kept for a post-mortem


def test_no_intact_checkpoint_left_is_a_named_error(tmp_path, capsys, killed):
    run = tmp_path / "run"
    shutil.copytree(killed, run)
    _truncate(run / "checkpoint" / "rng.pkl")
    _truncate(run / "checkpoint.prev" / "state.json")
    assert main(["search", "--resume", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"no intact search checkpoint in {run / 'checkpoint'}: " in err
    assert f"{run / 'checkpoint' / 'rng.pkl'} is damaged (" in err
    assert f"{run / 'checkpoint.prev' / 'state.json'} is damaged (" in err
    assert "start it again on an empty checkpoint folder, or restore the files" in err


@pytest.mark.parametrize(
    ("damaged", "error"),
    [
        ("rng.pkl", "UnpicklingError"),
        ("agent.zip", "ValueError: Error: the file"),  # SB3 wraps the BadZipFile
        ("replay_buffer.pkl", "UnpicklingError"),
        ("budget_log.npz", "DataFormatError"),
        ("state.json", "JSONDecodeError"),
    ],
)
def test_each_loader_names_the_damaged_file_without_a_seal(
    tmp_path, caplog, killed, damaged, error
):
    """A checkpoint of an older ciess-env (no complete.json): every loader's error is named."""
    run = tmp_path / "run"
    shutil.copytree(killed, run)
    for folder in ("checkpoint", "checkpoint.prev"):
        (run / folder / "complete.json").unlink()
    _truncate(run / "checkpoint" / damaged)
    config = json.loads((run / "config.json").read_text())
    session = SearchSession(
        config["env_id"], seed=config["seed"], env_kwargs=config["env_kwargs"], progress_bar=False
    )
    with caplog.at_level(logging.WARNING, logger="agents.experiments.checkpoint"):
        search = SearchRun.resume(session.env, run / "checkpoint")
    assert search.meta.episodes_done == 1  # the previous checkpoint
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith(f"{run / 'checkpoint' / damaged} is damaged ({error}")
    assert "allow_pickle" not in warning
    _truncate(run / "checkpoint.prev" / damaged)
    with pytest.raises(CheckpointDamagedError, match=f"checkpoint.prev/{damaged} is damaged"):
        SearchRun.resume(session.env, run / "checkpoint")


@pytest.mark.parametrize("name", ["budget_log.npz", "budget_log.json"])
def test_budget_log_load_of_a_truncated_file_names_it(tmp_path, straight, name):
    for suffix in (".npz", ".json"):
        shutil.copy(straight / f"budget_log{suffix}", tmp_path / f"budget_log{suffix}")
    _truncate(tmp_path / name)
    # Before (npz): numpy's "contains pickled (object) data ... allow_pickle=False".
    with pytest.raises(DataFormatError) as info:
        BudgetLog.load(tmp_path / "budget_log")
    text = str(info.value)
    assert text.startswith(f"{tmp_path / name} is damaged or not a budget log (")
    assert "restore it from a backup or a checkpoint's copy, or rerun the search" in text
    assert "allow_pickle" not in text
    (tmp_path / name).unlink()
    with pytest.raises(DataNotFoundError, match=f"no budget log at {tmp_path / name}"):
        BudgetLog.load(tmp_path / "budget_log")


def test_a_damaged_results_table_is_named(tmp_path, capsys, straight):
    (tmp_path / "results.csv").write_bytes(b"")
    with pytest.raises(RunFileDamagedError, match=r"results.csv is damaged \(EmptyDataError"):
        read_results(tmp_path / "results.csv")
    run = tmp_path / "run"
    shutil.copytree(straight, run)
    (run / "retrain.csv").write_text('budget,recall@20\n0.3,"0.1\n')
    assert main(["retrain", str(run), "--budgets", "0.3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"{run / 'retrain.csv'} is damaged (ParserError" in err
    assert issubclass(RunFileDamagedError, CIESSError)
