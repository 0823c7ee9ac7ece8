"""The structured black-box search: budget-exact masks, warm starts, seeded TPE and CEM."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest

import ciess_env  # noqa: F401  (registers the env ids)
from agents.baselines import EqualSize, PopularityProportional
from agents.structured import PARAMETER_RANGES, StructuredSearch, StructuredSizes
from ciess_env.budget import fit_to_budget, kept_budget

TINY_DATA = {"n_users": 40, "n_items": 30, "mean_interactions": 8}


@pytest.fixture
def tiny_env(tmp_path):
    env = gym.make(
        "CIESS-MF-Synthetic-v0",
        preset="tiny",
        dataset_kwargs=TINY_DATA,
        cache_dir=str(tmp_path / "cache"),
    )
    yield env
    env.close()


def _freqs(seed: int = 0, n_users: int = 97, n_items: int = 53):
    rng = np.random.default_rng(seed)
    return rng.zipf(1.6, n_users).clip(max=5000), rng.zipf(1.4, n_items).clip(max=5000)


@pytest.mark.parametrize("c", [0.5, 0.8, 0.9, 0.95])
def test_every_point_of_the_family_spends_the_budget_exactly(c) -> None:
    user_freq, item_freq = _freqs()
    rng = np.random.default_rng(1)
    cap = kept_budget(c, user_freq.size + item_freq.size, 64)
    for _ in range(50):
        params = {k: rng.uniform(lo, hi) for k, (lo, hi) in PARAMETER_RANGES.items()}
        mask = StructuredSizes.from_params(
            c, params, user_freq=user_freq, item_freq=item_freq, d_max=64
        )
        users, items = mask.sizes()
        assert int(users.sum() + items.sum()) == cap
        assert users.min() >= 1
        assert max(users.max(), items.max()) <= 64
        assert 0.0 <= mask.sparsity - c < 1.0 / (64 * (users.size + items.size))


def test_es_and_mde_are_points_of_the_family() -> None:
    user_freq, item_freq = _freqs()
    kw = {"user_freq": user_freq, "item_freq": item_freq}
    es = np.concatenate(EqualSize(0.9, n_users=97, n_items=53).sizes())
    ours = np.concatenate(StructuredSizes(0.9, **kw).sizes())
    assert np.abs(ours - es).max() <= 1  # same k / k + 1 sizes; the +1s may sit elsewhere
    mde = PopularityProportional(0.9, **kw)
    mu, mi = mde.sizes()
    ratio = float(np.log2(mi.mean() / mu.mean()))
    near = StructuredSizes(0.9, item_ratio=ratio, user_power=0.3, item_power=0.3, **kw)
    ours = np.concatenate(near.sizes())
    assert np.abs(ours - np.r_[mu, mi]).max() <= 1


def test_the_floor_and_the_item_ratio_do_what_they_say() -> None:
    user_freq, item_freq = _freqs()
    kw = {"user_freq": user_freq, "item_freq": item_freq}
    steep = StructuredSizes(0.8, user_power=1.5, item_power=1.5, floor=0.0, **kw)
    floored = StructuredSizes(0.8, user_power=1.5, item_power=1.5, floor=0.5, **kw)
    k_users = steep.side_caps()[0] // 97
    assert steep.sizes()[0].min() == 1
    assert floored.sizes()[0].min() == 1 + (k_users - 1) // 2
    big_items = StructuredSizes(0.8, item_ratio=2.0, **kw)
    users, items = big_items.sizes()
    assert items.mean() / users.mean() == pytest.approx(4.0, rel=0.05)


def test_bad_parameters_are_named() -> None:
    user_freq, item_freq = _freqs()
    kw = {"user_freq": user_freq, "item_freq": item_freq}
    with pytest.raises(ValueError, match="`floor` must be in"):
        StructuredSizes(0.8, floor=1.5, **kw)
    with pytest.raises(ValueError, match="`user_power` must be a finite"):
        StructuredSizes(0.8, user_power=float("nan"), **kw)
    with pytest.raises(ValueError, match="keys must be among"):
        StructuredSizes.from_params(0.8, {"alpha": 0.3}, **kw)
    with pytest.raises(ValueError, match="`cap` must lie in"):
        fit_to_budget(np.ones(4), 100, 1, 16)


@pytest.mark.parametrize("method", ["tpe", "cem"])
def test_search_is_seeded_meets_the_budget_and_starts_from_es_and_mde(tiny_env, method) -> None:
    first = StructuredSearch(tiny_env, 0.9, method=method, seed=3).learn(6).trials
    again = StructuredSearch(tiny_env, 0.9, method=method, seed=3).learn(6).trials
    other = StructuredSearch(tiny_env, 0.9, method=method, seed=4).learn(6).trials
    assert first.equals(again)
    assert not first.equals(other)
    assert len(first) == 6
    assert (first["sparsity"] == 0.9).all()  # 0.1 · 128 · 70 = 896 is an integer cap
    assert first.loc[0, ["user_power", "item_power", "item_ratio", "floor"]].tolist() == [0.0] * 4
    assert first.loc[1, "user_power"] == pytest.approx(0.3)
    assert first.iloc[2:][["user_power", "floor"]].nunique().min() == 4  # sampled, not stuck


def test_best_mask_is_the_best_trial_and_predict_reproduces_it(tiny_env) -> None:
    search = StructuredSearch(tiny_env, 0.8, method="cem", seed=0, population=4).learn(9)
    trials = search.trials
    best = trials.loc[trials["mean_quality"].idxmax()]
    assert search.best.params == pytest.approx(best[list(PARAMETER_RANGES)].to_dict())
    obs, _ = tiny_env.reset(seed=0)
    action, _ = search.predict(obs)
    users, items = tiny_env.unwrapped.action_to_sizes(action)
    np.testing.assert_array_equal(np.r_[users, items], np.r_[search.sizes()])
    assert 0.8 <= search.best.sparsity < 0.8 + 1 / (128 * 70)


def test_search_rejects_bad_input(tiny_env) -> None:
    with pytest.raises(ValueError, match="`method` must be"):
        StructuredSearch(tiny_env, 0.9, method="grid")
    with pytest.raises(ValueError, match="`n_trials` must be a positive"):
        StructuredSearch(tiny_env, 0.9, method="cem").learn(0)
    with pytest.raises(RuntimeError, match="call learn"):
        StructuredSearch(tiny_env, 0.9, method="cem").best  # noqa: B018
    with pytest.raises(ValueError, match="at least d_min"):
        StructuredSearch(tiny_env, 0.999, method="cem")


def test_compare_runs_one_search_per_budget(tmp_path) -> None:
    from agents.experiments.comparison import compare

    small = {"batch_size": 64, "policy_kwargs": {"net_arch": [16]}, "gradient_steps": 1}
    result = compare(
        "CIESS-MF-Synthetic-v0",
        ["structured-cem", "rw-td3-lagrange"],
        episodes=1,
        top_l=1,
        retrain_batches=4,
        env_kwargs={"preset": "tiny", "dataset_kwargs": TINY_DATA, "cache_dir": str(tmp_path)},
        agent_kwargs={"rw-td3-lagrange": small},
        progress_bar=False,
    )
    table = result.table.set_index(["agent", "budget"])
    for c in (0.8, 0.9, 0.95):  # integer caps at 70 entities × 128: met exactly
        assert table.loc[("structured-cem", c), "sparsity"] == pytest.approx(c)
    assert len(result.curves["rw-td3-lagrange"]) == 30  # 3 budgets × 1 episode × 10 steps
    assert 3 <= len(result.logs["rw-td3-lagrange"]) <= 9  # each budget's top-3 masks kept
    curve = result.curves["structured-cem"]
    assert curve.groupby("budget").size().to_dict() == {0.8: 10, 0.9: 10, 0.95: 10}
    assert np.allclose(curve["sparsity"], curve["budget"])


def test_session_budget_search_restores_the_envs_lam_and_names_bad_agents(tmp_path) -> None:
    from agents.experiments.session import SearchSession

    env_kwargs = {"preset": "tiny", "dataset_kwargs": TINY_DATA, "cache_dir": str(tmp_path)}
    session = SearchSession("CIESS-MF-Synthetic-v0", env_kwargs=env_kwargs, progress_bar=False)
    small = {"batch_size": 64, "policy_kwargs": {"net_arch": [16]}, "gradient_steps": 1}
    log, curve = session.budget_search("rw-td3-lagrange", 0.9, episodes=1, **small)
    assert len(log.steps) == len(curve) == 10
    assert 1 <= len(log) <= 3  # the recorder keeps the top 3 masks at 0.9
    assert session.last_model.lam != pytest.approx(0.4)  # it steered λ ...
    assert session.env.lam == 0.4  # ... and the shared env got its own λ back
    with pytest.raises(ValueError, match="one-budget agent"):
        session.budget_search("rw-td3", 0.9, episodes=1)


def test_a_budgets_result_does_not_depend_on_the_other_budgets(tmp_path) -> None:
    """A budget's row is the same whether it ran alone or with the other budgets.

    Each budget's search and retraining is seeded on its own, so a study may cache one
    (seed, agent, budget) at a time and resume between budgets with the same numbers.
    """
    from agents.experiments.comparison import compare

    kw = {
        "episodes": 1,
        "top_l": 2,
        "retrain_batches": 8,
        "env_kwargs": {"preset": "tiny", "dataset_kwargs": TINY_DATA, "cache_dir": str(tmp_path)},
        "progress_bar": False,
    }
    both = compare("CIESS-MF-Synthetic-v1", ["structured-tpe", "es"], budgets=[0.8, 0.9], **kw)
    alone = compare("CIESS-MF-Synthetic-v1", ["structured-tpe", "es"], budgets=[0.9], **kw)
    cols = ["sparsity", "recall@20", "ndcg@20", "recall@5", "ndcg@5"]
    got = alone.table.set_index("agent")[cols]
    want = both.table[both.table["budget"] == 0.9].set_index("agent")[cols]
    pd.testing.assert_frame_equal(got, want)
