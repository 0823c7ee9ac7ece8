"""The structured action wrapper: budget-exact masks (property test), fixed-length state, checks."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ciess_env  # noqa: F401  (registers the env ids)
from ciess_env.budget import kept_budget
from ciess_env.env import EmbeddingSizeEnv
from ciess_env.errors import InvalidArgumentError, InvalidTypeError
from ciess_env.structured_action import ACTION_CENTRE, PARAMETER_RANGES, StructuredAction

TINY_DATA = {"n_users": 30, "n_items": 20, "mean_interactions": 6}


def _env(tmp_path, **data):
    return gym.make(
        "CIESS-MF-Synthetic-v1",
        preset="tiny",
        dataset_kwargs=data or TINY_DATA,
        cache_dir=str(tmp_path / "cache"),
    )


@st.composite
def problems(draw):
    """A synthetic table of random shape, a size range and a budget."""
    n_users = draw(st.integers(4, 90))
    n_items = draw(st.integers(12, 60))  # ≥ 2 × mean_interactions
    d_max = draw(st.sampled_from([8, 16, 64, 128]))
    d_min = draw(st.integers(1, 4))
    # Some budgets leave less than d_min per entity: the wrapper must refuse those.
    c = draw(st.one_of(st.sampled_from([0.0, 0.8, 0.9, 0.95]), st.floats(0.0, 0.99)))
    return {"n_users": n_users, "n_items": n_items, "d_min": d_min, "d_max": d_max, "c": c}


actions = st.lists(
    st.lists(st.floats(-1.5, 1.5, allow_nan=False, width=32), min_size=4, max_size=4),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
@given(problem=problems(), batch=actions, floor=st.booleans())
def test_every_action_meets_the_budget_exactly(problem, batch, floor) -> None:
    """Kept sizes sum to ⌊(1 − c)·d_max·N⌋, the structured search's cap, for every action."""
    c = problem.pop("c")
    d_min, d_max = problem.pop("d_min"), problem.pop("d_max")
    env = EmbeddingSizeEnv(
        dataset="synthetic", backbone="mf", d_min=d_min, d_max=d_max, preset="tiny",
        dataset_kwargs={**problem, "mean_interactions": 6},
    )  # fmt: skip
    n = env.n_users + env.n_items
    if kept_budget(c, n, d_max) < d_min * n:  # the budget leaves less than d_min per entity
        with pytest.raises(InvalidArgumentError, match="at least d_min"):
            StructuredAction(env, c, floor=floor)
        return
    wrapper = StructuredAction(env, c, floor=floor)
    from agents.structured import StructuredSizes

    search_cap = StructuredSizes(
        c, user_freq=env.data.user_freq, item_freq=env.data.item_freq, d_min=d_min, d_max=d_max
    ).budget
    assert wrapper.cap == search_cap
    for a in batch:
        users, items = wrapper.sizes(np.asarray(a[: wrapper.action_space.shape[0]]))
        assert users.shape == (env.n_users,)
        assert items.shape == (env.n_items,)
        assert int(users.sum() + items.sum()) == search_cap
        assert min(users.min(), items.min()) >= d_min
        assert max(users.max(), items.max()) <= d_max


def test_a_step_applies_the_wrappers_mask_and_observes_fixed_length_histograms(tmp_path) -> None:
    small = StructuredAction(_env(tmp_path), 0.9, groups=4)
    big = StructuredAction(
        _env(tmp_path, n_users=60, n_items=45, mean_interactions=6), 0.9, groups=4
    )
    assert small.observation_space.shape == big.observation_space.shape == (4 * 4 + 4 + 2,)
    obs, _ = small.reset(seed=0)
    np.testing.assert_allclose(obs[:16], 1.0)  # full sizes, every quality ratio 1
    action = np.array([0.5, -0.2, 0.8, 0.0], dtype=np.float32)
    obs, reward, _, _, info = small.step(action)
    users, items = small.sizes(action)
    np.testing.assert_array_equal(info["user_sizes"], users)
    np.testing.assert_array_equal(info["item_sizes"], items)
    assert info["sparsity"] == pytest.approx(0.9)  # 0.1 · 128 · 50 = 640 is an integer cap
    assert reward == pytest.approx(info["mean_quality_ratio"])
    assert info["structured_params"]["item_ratio"] == pytest.approx(1.5)
    np.testing.assert_allclose(obs[16:20], action, atol=1e-6)  # the last action
    assert obs[-2] == pytest.approx(0.8)  # 2c − 1
    assert obs[-1] == pytest.approx(-0.8)  # 2t/T − 1
    assert obs.shape == small.observation_space.shape
    assert small.observation_space.contains(obs)
    # Group means: the rarest users' group reads the mean scaled size of its members.
    order = np.argsort(small.user_freq, kind="stable")
    rarest = users[order[np.arange(order.size) * 4 // order.size == 0]]  # ranks 0-7 of 30
    assert obs[0] == pytest.approx(np.mean((rarest - 1) / 127 * 2 - 1), abs=1e-6)


def test_env_reward_and_three_numbers_without_the_floor(tmp_path) -> None:
    env = StructuredAction(_env(tmp_path), 0.8, floor=False, reward="env")
    assert env.action_space.shape == (3,)
    assert env.action_to_params(np.zeros(3))["floor"] == 0.0
    env.reset(seed=0)
    _, reward, *_, info = env.step(np.zeros(3, dtype=np.float32))
    assert reward != pytest.approx(info["mean_quality_ratio"])  # q̄ − λ·mean((d/d_max)²)
    assert reward == pytest.approx(info["entity_rewards"].mean(), abs=1e-6)


def test_action_maps_onto_the_parameter_ranges_and_back(tmp_path) -> None:
    env = StructuredAction(_env(tmp_path), 0.9)
    low = env.action_to_params(-np.ones(4))
    high = env.action_to_params(np.full(4, 3.0))  # clipped
    assert low == {k: lo for k, (lo, _) in PARAMETER_RANGES.items()}
    assert high == {k: hi for k, (_, hi) in PARAMETER_RANGES.items()}
    a = np.array([0.1, -0.4, 0.7, -0.9], dtype=np.float32)
    np.testing.assert_allclose(env.params_to_action(env.action_to_params(a)), a, atol=1e-6)


def test_action_zero_is_es_and_each_half_spans_its_side_of_the_range(tmp_path) -> None:
    env = StructuredAction(_env(tmp_path), 0.9)
    assert env.action_to_params(np.zeros(4)) == ACTION_CENTRE
    users, items = env.sizes(np.zeros(4))
    # ES: one size per entity (the cap 640 over 50 entities, rounded), the same on both sides.
    assert set(np.r_[users, items]) <= {12, 13}
    assert env.action_to_params(np.array([0.0, -0.5, 0.5, 0.0]))["user_power"] == -0.5
    assert env.action_to_params(np.array([0.0, -0.5, 0.5, 0.0]))["item_power"] == 0.75


def test_bad_input_is_named(tmp_path) -> None:
    env = _env(tmp_path)
    with pytest.raises(InvalidArgumentError, match="at least d_min"):
        StructuredAction(env, 0.999)
    with pytest.raises(InvalidArgumentError, match=r"\[0, 1\)"):
        StructuredAction(env, 1.0)
    with pytest.raises(InvalidTypeError, match="must be a number"):
        StructuredAction(env, "0.9")
    with pytest.raises(InvalidArgumentError, match="`reward` must be"):
        StructuredAction(env, 0.9, reward="team")
    with pytest.raises(InvalidTypeError, match="EmbeddingSizeEnv"):
        StructuredAction(gym.make("CartPole-v1"), 0.9)
    wrapper = StructuredAction(env, 0.9)
    with pytest.raises(InvalidArgumentError, match=r"shape \(4,\)"):
        wrapper.sizes(np.zeros(5))
    with pytest.raises(InvalidArgumentError, match="must be finite"):
        wrapper.sizes(np.array([0.0, np.nan, 0.0, 0.0]))


def test_gymnasium_and_sb3_check_env_pass(tmp_path) -> None:
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = StructuredAction(_env(tmp_path), 0.9)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=True)
        sb3_check_env(env, warn=True)
    # The one expected warning: gymnasium notes that a wrapped env is checked.
    assert [str(w.message) for w in caught if "unwrapped" not in str(w.message)] == []
