"""The vectorised BPR sampler: valid triples, eligible users only, no per-sample loops."""

from __future__ import annotations

import numpy as np
import pytest

from ciess_env.data.interactions import InteractionData, Interactions
from ciess_env.recommenders import BPRSampler


def _dense_data() -> InteractionData:
    """6 users × 5 items; users 0–3 miss one item each, user 4 has all, user 5 none."""
    pairs = [(u, i) for u in range(4) for i in range(5) if i != u] + [(4, i) for i in range(5)]
    users, items = np.array(pairs).T
    empty = Interactions(np.zeros(0, np.int64), np.zeros(0, np.int64))
    return InteractionData(
        name="dense", n_users=6, n_items=5,
        train=Interactions.from_arrays(users, items), validation=empty, test=empty,
        user_ids=np.arange(6), item_ids=np.arange(5),
    )  # fmt: skip


class _CountingRng:
    """A numpy Generator wrapper that counts calls to ``integers``."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.calls = 0

    def integers(self, *args, **kwargs):
        self.calls += 1
        return self.rng.integers(*args, **kwargs)


def test_negatives_are_never_positives_on_a_dense_graph():
    """On a 80 %-dense graph every negative is the single item the user has not seen."""
    sampler = BPRSampler(_dense_data(), np.random.default_rng(0))
    batch = sampler.sample(5000)
    np.testing.assert_array_equal(batch.neg, batch.users)  # user u misses exactly item u
    assert not sampler.is_positive(batch.users, batch.neg).any()
    assert sampler.is_positive(batch.users, batch.pos).all()


def test_users_without_positive_or_negative_are_never_sampled():
    """User 4 (all items) and user 5 (no items) never appear; users 0–3 all do."""
    batch = BPRSampler(_dense_data(), np.random.default_rng(1)).sample(2000)
    assert set(np.unique(batch.users)) == {0, 1, 2, 3}


def test_sampling_is_vectorised():
    """A 20,000-triple batch takes a handful of whole-batch draws, not one per sample."""
    rng = _CountingRng(0)
    sampler = BPRSampler(_dense_data(), rng)  # type: ignore[arg-type]
    batch = sampler.sample(20_000)
    assert batch.users.shape == batch.pos.shape == batch.neg.shape == (20_000,)
    # users + positives + first negatives + redraw rounds (each redraws ~80 % of the rest)
    assert rng.calls < 80


def test_positives_cover_each_users_row_uniformly(clustered_data):
    """Every training pair of a user is drawn as a positive, with near-uniform frequency."""
    sampler = BPRSampler(clustered_data, np.random.default_rng(2))
    batch = sampler.sample(200_000)
    user = int(np.bincount(clustered_data.train.users).argmax())
    row = clustered_data.train.items[clustered_data.train.users == user]
    drawn = batch.pos[batch.users == user]
    counts = np.array([(drawn == i).sum() for i in row])
    assert counts.min() > 0
    assert counts.std() / counts.mean() < 0.2
    assert set(np.unique(drawn)) == set(row)


def test_no_eligible_user_is_a_clear_error():
    """A training split that allows no triple raises ValueError."""
    empty = Interactions(np.zeros(0, np.int64), np.zeros(0, np.int64))
    data = InteractionData("e", 2, 3, empty, empty, empty, np.arange(2), np.arange(3))
    with pytest.raises(ValueError, match=r"data\.train must give at least one user"):
        BPRSampler(data, np.random.default_rng(0))


def test_membership_matches_the_training_pairs_exactly(clustered_data):
    """The hash lookup answers like a set of the training pairs, on hits, misses and repeats."""
    sampler = BPRSampler(clustered_data, np.random.default_rng(3))
    train = clustered_data.train
    pairs = set(zip(train.users.tolist(), train.items.tolist(), strict=True))
    rng = np.random.default_rng(4)
    users = np.concatenate([train.users, rng.integers(clustered_data.n_users, size=5000)])
    items = np.concatenate([train.items, rng.integers(clustered_data.n_items, size=5000)])
    expected = np.array([(u, i) in pairs for u, i in zip(users.tolist(), items.tolist(),
                                                          strict=True)])  # fmt: skip
    got = sampler.is_positive(users, items)
    np.testing.assert_array_equal(got, expected)
    assert got[: len(train)].all()
    assert 0 < got[len(train) :].sum() < 5000  # random pairs: some hits, mostly misses


def test_unsorted_training_pairs_with_repeats_are_still_looked_up_exactly():
    """The hash index deduplicates any order of pairs (a hand-built split need not be sorted)."""
    users, items = np.array([2, 0, 2, 1, 0, 2]), np.array([1, 3, 1, 0, 3, 4])
    empty = Interactions(np.zeros(0, np.int64), np.zeros(0, np.int64))
    data = InteractionData("u", 3, 5, Interactions(users, items), empty, empty,
                           np.arange(3), np.arange(5))  # fmt: skip
    sampler = BPRSampler(data, np.random.default_rng(0))
    got = sampler.is_positive(np.array([2, 0, 1, 2, 1]), np.array([1, 3, 0, 0, 3]))
    np.testing.assert_array_equal(got, [True, True, True, False, False])
