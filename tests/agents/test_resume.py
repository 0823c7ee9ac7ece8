"""Resumable searches: stopped and resumed in a new process equals a straight run, bit for bit.

Compared: budget logs, the logs of noise-free masks, the curves and the agent's weights.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch as th

from agents.experiments.checkpoint import CheckpointError, CheckpointNotFoundError
from agents.experiments.session import SearchSession

ENV_ID = "CIESS-LightGCN-Synthetic-v0"
DATA = {"n_users": 40, "n_items": 30, "mean_interactions": 8}
AGENT_KW = {"batch_size": 64, "policy_kwargs": {"net_arch": [32, 32]}, "device": "cpu"}


@pytest.fixture(scope="module")
def env_kwargs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return {"preset": "tiny", "dataset_kwargs": DATA,
            "cache_dir": str(tmp_path_factory.mktemp("resume-cache"))}  # fmt: skip


def _cli(*args: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    done = subprocess.run(
        [sys.executable, "-m", "agents.experiments.cli", *args],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def _search_args(out: Path, env_kwargs: dict, *extra: str) -> list[str]:
    env_kw = [f"{k}={v!r}" for k, v in env_kwargs.items()]
    agent_kw = [f"{k}={v!r}" for k, v in AGENT_KW.items()]
    return ["search", ENV_ID, "--agent", "rw-td3", "--episodes", "3", "--seed", "5",
            "--output", str(out), "--deterministic-masks", "--env-kw", *env_kw,
            "--agent-kw", *agent_kw, *extra]  # fmt: skip


def _npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _policy_weights(agent_zip: Path) -> dict[str, th.Tensor]:
    with zipfile.ZipFile(agent_zip) as z:
        return th.load(io.BytesIO(z.read("policy.pth")), weights_only=True)


def _assert_same_run(a: Path, b: Path) -> None:
    for name in ("budget_log.npz", "deterministic_log.npz"):
        left, right = _npz(a / name), _npz(b / name)
        assert left.keys() == right.keys()
        for key in left:
            np.testing.assert_array_equal(left[key], right[key], err_msg=f"{name}:{key}")
    wa, wb = _policy_weights(a / "agent.zip"), _policy_weights(b / "agent.zip")
    assert wa.keys() == wb.keys()
    for key in wa:
        assert th.equal(wa[key], wb[key]), key
    assert (a / "curve.csv").read_text() == (b / "curve.csv").read_text()


def test_interrupted_and_resumed_in_a_new_process_equals_a_straight_run(tmp_path, env_kwargs):
    """Stopped in one process and resumed in another equals a straight run in this one."""
    from agents.experiments.cli import main

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert main(_search_args(straight, env_kwargs)) == 0  # this (long-lived) process
    out = _cli(*_search_args(resumed, env_kwargs, "--stop-after", "1"))
    assert "stopped after 1 episodes" in out
    assert not (resumed / "budget_log.npz").exists()
    # The log is bounded (top masks per budget); its step summary holds every step.
    assert len(_npz(resumed / "checkpoint" / "budget_log.npz")["steps_step"]) == 10
    _cli("search", "--resume", str(resumed))
    _assert_same_run(straight, resumed)
    log = _npz(straight / "budget_log.npz")
    assert log["steps_step"].size == 30
    assert set(log["steps_episode"]) == {0, 1, 2}
    masks = _npz(straight / "deterministic_log.npz")
    assert masks["episode"].tolist() == [0, 1, 2]
    # The noise-free masks are not among the explored ones (per-entity noise moved them).
    explored = {row.tobytes() for row in log["item_sizes"]}
    assert not any(row.tobytes() in explored for row in masks["item_sizes"])
    # ... and selective retraining runs on them as on the explored ones.
    assert main(["retrain", str(straight), "--log", "deterministic_log", "--budgets", "0.3",
                 "--batches", "8"]) == 0  # fmt: skip
    table = (straight / "retrain_deterministic_log.md").read_text()
    assert "0.3" in table
    assert "recall@20" in table


def test_td3_with_action_noise_resumes_exactly_in_process(tmp_path, env_kwargs):
    """Plain SB3 TD3 (NormalActionNoise, global NumPy RNG): two sittings equal one."""

    def session() -> SearchSession:
        # log_budgets=None keeps every mask, so the two runs can be compared step by step.
        return SearchSession(
            ENV_ID, seed=2, env_kwargs=env_kwargs, progress_bar=False, log_budgets=None
        )

    log, _ = session().search("td3", episodes=2, **AGENT_KW)
    first = session()
    part, _ = first.search("td3", episodes=2, checkpoint_dir=tmp_path / "ck", stop_after=1,
                           **AGENT_KW)  # fmt: skip
    assert len(part) == 10
    assert not first.last_search_finished
    second = session()
    rest, _ = second.resume(tmp_path / "ck")
    assert second.last_search_finished
    assert len(rest) == len(log) == 20
    for a, b in zip(log, rest, strict=True):
        np.testing.assert_array_equal(a.user_sizes, b.user_sizes)
        np.testing.assert_array_equal(a.item_sizes, b.item_sizes)
        assert a.mean_quality == b.mean_quality


def test_resume_rejects_a_missing_checkpoint_and_another_session(tmp_path, env_kwargs):
    session = SearchSession(ENV_ID, seed=0, env_kwargs=env_kwargs, progress_bar=False)
    with pytest.raises(CheckpointNotFoundError, match="no search checkpoint in"):
        session.resume(tmp_path / "nothing")
    session.search("rw-td3", episodes=1, checkpoint_dir=tmp_path / "ck", **AGENT_KW)
    other = SearchSession(ENV_ID, seed=1, env_kwargs=env_kwargs, progress_bar=False)
    with pytest.raises(CheckpointError, match=r"seed 0.*this session has .* seed 1"):
        other.resume(tmp_path / "ck")


def test_cli_resume_of_a_folder_without_config_is_a_clear_error(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "agents.experiments.cli", "search", "--resume", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "is not a run folder" in done.stderr
    assert "Traceback" not in done.stderr
