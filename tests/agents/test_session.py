"""Search sessions: one reward everywhere, and same-seed searches identical across processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from agents.experiments.cli import main
from ciess_env import spaces
from ciess_env.budget_log import BudgetLog
from ciess_env.env import EmbeddingSizeEnv

ENV_ID = "CIESS-MF-Synthetic-v0"
TINY_DATA = {"n_users": 40, "n_items": 30, "mean_interactions": 8}
AGENT_KW = ["--agent-kw", "batch_size=64", "policy_kwargs={'net_arch': [16]}"]


def _env_kw(tmp_path, **extra) -> list[str]:
    kwargs = {"preset": "tiny", "dataset_kwargs": TINY_DATA, "cache_dir": str(tmp_path / "cache")}
    return ["--env-kw", *(f"{k}={v!r}" for k, v in {**kwargs, **extra}.items())]


@pytest.mark.parametrize("variant", ["paper", "code"])
def test_search_curve_and_cli_best_step_use_entity_rewards(variant, tmp_path, monkeypatch):
    """The curve's reward and the CLI's best step equal mean ``entity_rewards`` of each step.

    A spy on the env's retraining records every step's per-entity quality, from which the
    expected reward is recomputed with :func:`ciess_env.spaces.entity_rewards` alone.
    """
    expected: list[float] = []
    real_retrain = EmbeddingSizeEnv._retrain

    def spy(self, user_sizes, item_sizes, **kwargs):
        outcome = real_retrain(self, user_sizes, item_sizes, **kwargs)
        quality = np.concatenate([outcome.eval.user_quality, outcome.eval.item_quality])
        full = np.concatenate(
            [self.pretrained.eval.user_quality, self.pretrained.eval.item_quality]
        )
        rewards = spaces.entity_rewards(
            q=spaces.quality_ratio(quality, full), quality=quality,
            sizes=np.concatenate([user_sizes, item_sizes]), lam=self.lam, d_max=self.d_max,
            variant=variant,
        )  # fmt: skip
        expected.append(float(rewards.mean()))
        return outcome

    monkeypatch.setattr(EmbeddingSizeEnv, "_retrain", spy)
    run = tmp_path / "run"
    argv = ["search", ENV_ID, "--agent", "rw-td3", "--episodes", "2", "--output", str(run)]
    assert main([*argv, *_env_kw(tmp_path, reward=variant), *AGENT_KW]) == 0

    curve = pd.read_csv(run / "curve.csv")
    assert len(expected) == len(curve) == 20
    np.testing.assert_allclose(curve["reward"], expected, rtol=0, atol=1e-12)
    best = json.loads((run / "best_step.json").read_text())
    i = int(np.argmax(expected))
    assert (best["episode"], best["step"]) == (i // 10, i % 10 + 1)
    assert best["reward"] == pytest.approx(expected[i], abs=1e-12)
    if variant == "code":  # the formula the curves used before: q̄ − λ·mean((d/d_max)²)
        log = BudgetLog.load(run / "budget_log")  # the masks it kept, with their steps
        paper = [
            e.mean_quality
            - 0.4 * np.mean((np.r_[e.user_sizes, e.item_sizes].astype(float) / 128) ** 2)
            for e in log
        ]
        kept = [expected[e.episode * 10 + e.step - 1] for e in log]
        assert not np.allclose(paper, kept)


def test_same_seed_search_is_identical_across_processes(tmp_path):
    """A fresh interpreter and this long-lived test process log bit-identical seeded steps.

    This process has run other tests (global RNGs, torch state, caches); the search must
    depend on none of it.
    """
    runs = []
    for name in ("fresh", "this"):
        out = tmp_path / name
        argv = ["search", ENV_ID, "--agent", "rw-td3", "--episodes", "2", "--seed", "3",
                "--output", str(out), *_env_kw(tmp_path / name), *AGENT_KW]  # fmt: skip
        if name == "fresh":
            env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
            subprocess.run([sys.executable, "-m", "agents.experiments.cli", *argv], check=True,
                           env=env, capture_output=True, timeout=600)  # fmt: skip
        else:
            assert main(argv) == 0
        runs.append(np.load(out / "budget_log.npz"))
    a, b = runs
    assert sorted(a.files) == sorted(b.files)
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert a["steps_reward"].shape == (20,)
    assert len(np.unique(a["steps_reward"])) > 1  # the search moved: equality is not trivial


class _PopularFirst:
    """A hand-written agent: popular entities keep more dimensions; predict only, no learn."""

    def __init__(self, vec_env, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        popularity = observation[:, 1:2]  # in [-1, 1]
        noise = 0.0 if deterministic else self.rng.normal(0.0, 0.1, popularity.shape)
        return np.clip(popularity - 0.5 + noise, -1, 1).astype(np.float32), state


def test_a_hand_written_agent_enters_compare_and_the_cli_like_a_built_in_one(tmp_path, monkeypatch):
    """Any object with ``predict``, given as a builder, is searched, logged and retrained."""
    from agents.experiments import compare
    from agents.protocol import Agent, LearningAgent

    agent = _PopularFirst(None, 0)
    assert isinstance(agent, Agent)
    assert not isinstance(agent, LearningAgent)
    env_kwargs = {"preset": "tiny", "dataset_kwargs": TINY_DATA, "cache_dir": str(tmp_path)}
    result = compare(
        ENV_ID, ["es", ("popular-first", _PopularFirst)], budgets=[0.5], episodes=1, top_l=1,
        env_kwargs=env_kwargs, retrain_batches=4, progress_bar=False,
    )  # fmt: skip
    row = result.table.set_index("agent").loc["popular-first"]
    assert row["sparsity"] >= 0.5
    assert 0.0 <= row["recall@20"] <= 1.0
    assert len(result.curves["popular-first"]) == 10

    module = tmp_path / "my_agents.py"
    module.write_text(
        "import numpy as np\n"
        "def build(vec_env, seed):\n"
        "    class Half:\n"
        "        def predict(self, obs, state=None, episode_start=None, deterministic=False):\n"
        "            return np.zeros((len(obs), 1), np.float32), state\n"
        "    return Half()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    run = tmp_path / "run"
    argv = ["search", ENV_ID, "--agent", "my_agents:build", "--episodes", "1", "--output", str(run)]
    assert main([*argv, *_env_kw(tmp_path)]) == 0
    curve = pd.read_csv(run / "curve.csv")
    assert np.allclose(curve["sparsity"], 0.5, atol=0.01)  # action 0 → size 64 of 128
    assert main(["search", ENV_ID, "--agent", "nowhere:build", "--output", str(run)]) == 2
