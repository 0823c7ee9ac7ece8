import re

import numpy as np
import pytest

from agents.baselines import EqualSize, MixedRandom, PopularityProportional
from ciess_env.budget import kept_budget
from ciess_env.spaces import action_to_sizes

BUDGETS = [0.8, 0.9, 0.95]
SHAPES = [(6040, 3706), (31, 17)]


def _freqs(n_users, n_items):
    rng = np.random.default_rng(3)
    return rng.zipf(1.6, n_users) % 2000, rng.zipf(1.4, n_items) % 3000


def _make(kind, c, n_users, n_items):
    if kind == "es":
        return EqualSize(c, n_users=n_users, n_items=n_items)
    if kind == "mr":
        return MixedRandom(c, n_users=n_users, n_items=n_items, seed=0)
    user_freq, item_freq = _freqs(n_users, n_items)
    return PopularityProportional(c, user_freq=user_freq, item_freq=item_freq)


def _obs(n_users, n_items):
    types = np.r_[-np.ones(n_users), np.ones(n_items)]
    return np.stack([types, np.zeros_like(types), np.zeros_like(types), types], 1)


def test_kept_budget_is_exact_for_integer_caps():
    """The cap is ⌊(1 − c)·d_max·N⌋ without binary floating-point loss (0.1·128·10 = 128)."""
    assert kept_budget(0.9, 10, 128) == 128
    assert kept_budget(0.8, 9746, 128) == 249_497  # 249,497.6


@pytest.mark.parametrize("kind", ["es", "mr", "mde"])
@pytest.mark.parametrize("c", BUDGETS)
@pytest.mark.parametrize(("n_users", "n_items"), SHAPES)
def test_baseline_spends_the_budget_exactly(kind, c, n_users, n_items):
    """Σ sizes equals ⌊(1 − c)·d_max·N⌋: never above the cap, less than one unit below it."""
    baseline = _make(kind, c, n_users, n_items)
    user_sizes, item_sizes = baseline.sizes()
    assert user_sizes.shape == (n_users,)
    assert item_sizes.shape == (n_items,)
    total = int(user_sizes.sum() + item_sizes.sum())
    cap = (1 - c) * 128 * (n_users + n_items)
    assert total <= cap + 1e-9
    assert cap - total < 1
    assert min(user_sizes.min(), item_sizes.min()) >= 1
    assert max(user_sizes.max(), item_sizes.max()) <= 128
    assert baseline.sparsity >= c - 1e-12


@pytest.mark.parametrize("c", BUDGETS)
def test_equal_size_uses_only_k_and_k_plus_one(c):
    """ES gives ⌊cap/N⌋ to everyone and one more to exactly cap mod N entities."""
    es = EqualSize(c, n_users=6040, n_items=3706)
    sizes = np.r_[es.sizes()]
    k, r = divmod(kept_budget(c, 9746, 128), 9746)
    assert set(np.unique(sizes)) <= {k, k + 1}
    assert np.count_nonzero(sizes == k + 1) == r


def test_equal_size_without_fill_is_the_plain_paper_es():
    """fill_remainder=False gives everyone ⌊cap/N⌋ (25 at 80 % on ML-1M, as in the findings)."""
    sizes = np.r_[EqualSize(0.8, n_users=6040, n_items=3706, fill_remainder=False).sizes()]
    assert np.all(sizes == 25)


def test_mixed_random_is_spread_and_reproducible():
    """MR sizes are spread roughly uniformly over [1, 2·mean], and a seed fixes them."""
    a = np.r_[MixedRandom(0.8, n_users=6040, n_items=3706, seed=1).sizes()]
    b = np.r_[MixedRandom(0.8, n_users=6040, n_items=3706, seed=1).sizes()]
    c = np.r_[MixedRandom(0.8, n_users=6040, n_items=3706, seed=2).sizes()]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.min() == 1
    assert 45 <= a.max() <= 55
    assert a.std() == pytest.approx(51 / np.sqrt(12), rel=0.1)


def test_popularity_proportional_sizes_grow_with_frequency():
    """MDE sizes are non-decreasing in frequency (up to the ±1 of integer rounding)."""
    user_freq, item_freq = _freqs(6040, 3706)
    mde = PopularityProportional(0.9, user_freq=user_freq, item_freq=item_freq, alpha=0.5)
    freq = np.maximum(np.r_[user_freq, item_freq], 1)
    sizes = np.r_[mde.sizes()][np.argsort(freq, kind="stable")]
    assert np.all(np.diff(sizes) >= -1)
    assert sizes[-1] > 4 * sizes[0]


def test_popularity_proportional_with_alpha_zero_is_equal_sizes():
    """α = 0 removes the popularity signal: sizes differ by at most one."""
    user_freq, item_freq = _freqs(50, 30)
    mde = PopularityProportional(0.9, user_freq=user_freq, item_freq=item_freq, alpha=0.0)
    sizes = np.r_[mde.sizes()]
    assert sizes.max() - sizes.min() <= 1


@pytest.mark.parametrize("kind", ["es", "mr", "mde"])
def test_predict_returns_actions_that_reproduce_the_sizes(kind):
    """predict(obs) gives (N, 1) actions in [−1, 1] that the env maps back to sizes()."""
    baseline = _make(kind, 0.9, 31, 17)
    actions, state = baseline.predict(_obs(31, 17))
    assert state is None
    assert actions.shape == (48, 1)
    assert actions.dtype == np.float32
    assert np.all(np.abs(actions) <= 1)
    sizes = action_to_sizes(actions, n=48, d_min=1, d_max=128)
    np.testing.assert_array_equal(sizes, np.r_[baseline.sizes()])


def test_predict_flat_actions_for_a_single_box_env():
    """flat_actions=True gives (N,) actions for an env with one (N,) action Box."""
    es = EqualSize(0.8, n_users=3, n_items=2, flat_actions=True)
    actions, _ = es.predict(_obs(3, 2))
    assert actions.shape == (5,)


def test_predict_rejects_rows_not_ordered_users_then_items():
    """Observations whose type column is not users-then-items are rejected."""
    es = EqualSize(0.8, n_users=3, n_items=2)
    msg = "`observation` rows must be users (type −1) first, then items (type +1)"
    with pytest.raises(ValueError, match=re.escape(msg)):
        es.predict(_obs(2, 3))
    with pytest.raises(ValueError, match=re.escape("`observation` must have shape (5, obs_dim)")):
        es.predict(_obs(3, 3))


def test_budget_below_d_min_per_entity_is_rejected():
    """A sparsity that leaves less than d_min per entity raises a ValueError."""
    msg = "`c` must leave at least d_min=2 per entity, got c=0.995"
    with pytest.raises(ValueError, match=re.escape(msg)):
        EqualSize(0.995, n_users=10, n_items=10, d_min=2)
