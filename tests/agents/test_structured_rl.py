"""SAC and PPO on the structured action: exact step counts, budget-exact masks, seeds, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import ciess_env  # noqa: F401  (registers the env ids)
from agents.structured_rl import StructuredRL
from ciess_env.env import EmbeddingSizeEnv
from ciess_env.errors import CallOrderError, InvalidArgumentError
from ciess_env.wrappers import RecordBudgetLog

TINY_DATA = {"n_users": 40, "n_items": 30, "mean_interactions": 8}
SMALL = {
    "sac": {"learning_starts": 1, "batch_size": 8, "gradient_steps": 1},
    "ppo": {"n_steps": 5, "batch_size": 5, "n_epochs": 2},
}


@pytest.fixture
def tiny_env(tmp_path):
    """The unwrapped env (the agents also take one without gym.make's wrappers)."""
    return EmbeddingSizeEnv(
        dataset="synthetic", backbone="mf", preset="tiny", dataset_kwargs=TINY_DATA,
        cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip


@pytest.mark.parametrize("algorithm", ["sac", "ppo"])
def test_learn_spends_exactly_n_steps_at_the_budget_and_is_seeded(tiny_env, algorithm) -> None:
    recorder = RecordBudgetLog(tiny_env, budgets=None)
    agent = StructuredRL(recorder, 0.9, algorithm=algorithm, seed=1, **SMALL[algorithm])
    agent.learn(7).learn(5)  # 12 steps over two calls; PPO's second rollout is cut at 7
    trials = agent.trials
    assert len(trials) == len(recorder.budget_log.steps) == 12
    assert (trials["sparsity"] == 0.9).all()  # 0.1 · 128 · 70 = 896 is an integer cap
    kept = [int(e.user_sizes.sum() + e.item_sizes.sum()) for e in recorder.budget_log]
    assert set(kept) == {896}
    assert trials[["item_ratio", "user_power"]].nunique().min() > 1  # it explores
    runs = [
        StructuredRL(tiny_env, 0.9, algorithm=algorithm, seed=seed, **SMALL[algorithm])
        .learn(6)
        .trials["mean_quality"]
        for seed in (1, 1, 2)
    ]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.allclose(runs[0], runs[2])


def test_best_is_the_best_trial_and_predict_reproduces_it(tiny_env) -> None:
    agent = StructuredRL(tiny_env, 0.8, algorithm="sac", seed=0, **SMALL["sac"]).learn(6)
    trials = agent.trials
    best = trials.loc[trials["mean_quality"].idxmax()]
    assert agent.best.params["user_power"] == pytest.approx(best["user_power"])
    obs, _ = tiny_env.reset(seed=0)
    action, _ = agent.predict(obs)
    users, items = tiny_env.unwrapped.action_to_sizes(action)
    np.testing.assert_array_equal(np.r_[users, items], np.r_[agent.sizes()])


def test_sac_starts_from_es_and_mde_and_learns_rewards_relative_to_es(tiny_env) -> None:
    from agents.structured import sizes_kwargs, warm_starts

    agent = StructuredRL(tiny_env, 0.9, algorithm="sac", seed=0, **SMALL["sac"]).learn(4)
    trials = agent.trials
    es, mde = warm_starts(0.9, **sizes_kwargs(tiny_env))
    for name in ("item_ratio", "user_power", "item_power"):
        assert trials.loc[0, name] == pytest.approx(es[name], abs=1e-6)
        assert trials.loc[1, name] == pytest.approx(mde[name], abs=1e-6)
    assert trials.loc[2:, "user_power"].nunique() == 2  # then its own actions
    # The buffer holds q̄ in percent points over the first (ES) step; trials keep q̄ itself.
    q = trials["mean_quality"].to_numpy()
    np.testing.assert_allclose(trials["reward"], q)
    stored = agent.model.replay_buffer.rewards[:4, 0]
    np.testing.assert_allclose(stored, (q - q[0]) / 0.01, rtol=1e-4, atol=1e-3)


def test_bad_input_is_named(tiny_env) -> None:
    with pytest.raises(InvalidArgumentError, match="`algorithm` must be one of"):
        StructuredRL(tiny_env, 0.9, algorithm="td3")
    with pytest.raises(InvalidArgumentError, match="`warm_start` needs off-policy"):
        StructuredRL(tiny_env, 0.9, algorithm="ppo", warm_start=True)
    with pytest.raises(InvalidArgumentError, match="`reward_unit` must be a positive"):
        StructuredRL(tiny_env, 0.9, algorithm="sac", reward_unit=0)
    agent = StructuredRL(tiny_env, 0.9, algorithm="ppo", **SMALL["ppo"])
    with pytest.raises(InvalidArgumentError, match="`n_trials` must be a positive"):
        agent.learn(0)
    with pytest.raises(CallOrderError, match="call learn"):
        agent.best  # noqa: B018


def test_registered_agents_go_through_compare_and_selective_retraining(tmp_path) -> None:
    from agents.experiments.comparison import compare

    result = compare(
        "CIESS-MF-Synthetic-v0",
        ["sac-structured", "ppo-structured"],
        budgets=[0.9],
        episodes=1,
        top_l=1,
        retrain_batches=4,
        env_kwargs={"preset": "tiny", "dataset_kwargs": TINY_DATA, "cache_dir": str(tmp_path)},
        agent_kwargs={"sac-structured": SMALL["sac"], "ppo-structured": SMALL["ppo"]},
        progress_bar=False,
    )
    table = result.table.set_index("agent")
    assert table.loc["sac-structured", "sparsity"] == pytest.approx(0.9)  # retrained at c
    assert table.loc["ppo-structured", "recall@20"] > 0
    assert len(result.curves["sac-structured"]) == len(result.curves["ppo-structured"]) == 10


def test_the_demo_says_whether_each_search_learns(tmp_path) -> None:
    import pandas as pd

    from agents.experiments.cli import learning_lines

    up = {"episode": [0, 0, 1, 1, 2, 2], "reward": [0.70, 0.72, 0.74, 0.75, 0.78, 0.80]}
    pd.DataFrame(up).to_csv(tmp_path / "curve_sac-structured.csv", index=False)
    down = {"episode": [0, 1, 2], "reward": [0.82, 0.54, 0.80]}  # the old demo's TD3
    pd.DataFrame(down).to_csv(tmp_path / "curve_td3.csv", index=False)
    text = "\n".join(learning_lines(tmp_path))
    assert "sac-structured: 0.7100 in episode 0 -> 0.7900 in episode 2 (rises)" in text
    assert "td3: 0.8200 in episode 0 -> 0.8000 in episode 2 (does not rise)" in text
    # One seed proves nothing either way: the demo points at the seeded synthetic study.
    assert "structured_rl_synthetic_warm.md" in text
    results = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
    assert (results / "structured_rl_synthetic_warm.md").exists()


def test_warm_start_and_reward_unit_pass_the_up_front_check_and_reach_the_agent(tiny_env) -> None:
    """Both are named settings: a sweep spec or compare may set them (they were refused)."""
    from agents.registry import check_user_kwargs
    from agents.structured_rl import RelativeReward, StructuredRL

    check_user_kwargs("sac-structured", {"warm_start": False, "reward_unit": None})
    plain = StructuredRL(tiny_env, 0.9, warm_start=False, reward_unit=None)
    assert not isinstance(plain.env, RelativeReward)
    default = StructuredRL(tiny_env, 0.9)
    assert isinstance(default.env, RelativeReward)
    assert default.env.unit == 0.01
