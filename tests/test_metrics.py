"""Full-ranking metrics on hand-computed cases, tie handling and memory accounting."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ciess_env.data.interactions import InteractionData, Interactions
from ciess_env.metrics import (
    evaluate_popularity,
    evaluate_scores,
    kept_parameters,
    popularity_scores,
    ragged_storage_bytes,
    sparsity,
    top_k_items,
)

# 3 users × 6 items. User 0: train {0}, validation {1, 3}; user 1: train {1}, validation {4}
# (fewer relevant items than K = 3); user 2: train {0, 2}, no validation item.
SCORES = torch.tensor(
    [
        [6.0, 5.0, 4.0, 3.0, 2.0, 1.0],  # user 0 ranks 1, 2, 3 (item 0 hidden)
        [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],  # user 1 ranks 5, 4, 3 (item 1 hidden)
        [1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
    ]
)


def _pairs(*pairs: tuple[int, int]) -> Interactions:
    if not pairs:
        return Interactions(np.zeros(0, np.int64), np.zeros(0, np.int64))
    u, i = zip(*pairs, strict=True)
    return Interactions.from_arrays(np.array(u), np.array(i))


@pytest.fixture
def hand_data() -> InteractionData:
    """The 3-user case above; the test split gives user 0 item 5 and user 1 item 3."""
    return InteractionData(
        name="hand",
        n_users=3,
        n_items=6,
        train=_pairs((0, 0), (1, 1), (2, 0), (2, 2)),
        validation=_pairs((0, 1), (0, 3), (1, 4)),
        test=_pairs((0, 5), (1, 3)),
        user_ids=np.arange(3),
        item_ids=np.arange(6),
    )


def _scorer(users: torch.Tensor) -> torch.Tensor:
    return SCORES[users].clone()


def test_recall_and_ndcg_match_hand_computation(hand_data):
    """Recall/NDCG@1,3 per user equal the values worked out by hand."""
    r = evaluate_scores(_scorer, hand_data, "validation", ks=(1, 3))
    ndcg3_u0 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    ndcg3_u1 = 1 / math.log2(3)  # one relevant item at rank 2; ideal DCG over min(3, 1) = 1
    np.testing.assert_allclose(r.user_recall[1], [0.5, 0.0, 0.0])
    np.testing.assert_allclose(r.user_recall[3], [1.0, 1.0, 0.0])
    np.testing.assert_allclose(r.user_ndcg[1], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(r.user_ndcg[3], [ndcg3_u0, ndcg3_u1, 0.0])
    assert r.recall(1) == pytest.approx(0.25)
    assert r.recall(3) == pytest.approx(1.0)
    assert r.ndcg(3) == pytest.approx((ndcg3_u0 + ndcg3_u1) / 2)


def test_user_without_truth_is_excluded_from_means(hand_data):
    """User 2 has no validation item: quality 0, has_truth False, not in any mean."""
    r = evaluate_scores(_scorer, hand_data, "validation", ks=(1, 3))
    q0 = (0.5 + 1.0 + 1.0 + (1 + 0.5) / (1 + 1 / math.log2(3))) / 4
    q1 = (0.0 + 1.0 + 0.0 + 1 / math.log2(3)) / 4
    np.testing.assert_array_equal(r.has_truth, [True, True, False])
    np.testing.assert_allclose(r.user_quality, [q0, q1, 0.0])
    assert r.mean_user_quality == pytest.approx((q0 + q1) / 2)


def test_item_quality_is_mean_over_training_users_with_truth(hand_data):
    """Eq. 9: item 0 (users 0, 2) gets q0; item 2 (only user 2, no truth) gets 0."""
    r = evaluate_scores(_scorer, hand_data, "validation", ks=(1, 3))
    q0, q1 = r.user_quality[:2]
    np.testing.assert_allclose(r.item_quality, [q0, q1, 0.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(r.item_has_users, [True, True, False, False, False, False])
    assert r.mean_item_quality == pytest.approx((q0 + q1) / 2)


def test_test_split_hides_validation_positives(hand_data):
    """On "test", validation items are hidden too, so user 1's top item becomes item 3."""
    r = evaluate_scores(_scorer, hand_data, "test", ks=(1, 3))
    # user 0 ranks 2, 4, 5 (0 train, 1 and 3 validation hidden): item 5 at rank 3.
    # user 1 ranks 5, 3, 2 (1 train, 4 validation hidden): item 3 at rank 2.
    np.testing.assert_allclose(r.user_recall[1], [0.0, 0.0, 0.0])
    np.testing.assert_allclose(r.user_recall[3], [1.0, 1.0, 0.0])
    np.testing.assert_allclose(r.user_ndcg[3], [0.5, 1 / math.log2(3), 0.0])


def test_bad_split_and_ks_raise(hand_data):
    """A "train" split or non-positive K is a clear ValueError."""
    with pytest.raises(ValueError, match="split must be 'validation' or 'test'"):
        evaluate_scores(_scorer, hand_data, "train")
    with pytest.raises(ValueError, match="ks must be positive integers"):
        evaluate_scores(_scorer, hand_data, ks=(0, 5))


def test_ties_are_broken_by_lower_item_index():
    """Equal scores rank by increasing item index, including at the top-K boundary."""
    s = torch.tensor(
        [[3.0, 1.0, 1.0, 1.0, 2.0], [0.0, 0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 2.0, 2.0, 0.0]]
    )
    np.testing.assert_array_equal(top_k_items(s, 3).numpy(), [[0, 4, 1], [0, 1, 2], [1, 2, 3]])
    np.testing.assert_array_equal(top_k_items(s, 1).numpy(), [[0], [0], [1]])


def test_tie_case_gives_defined_metrics(hand_data):
    """All-equal scores: user 0's top 3 are items 1, 2, 3 (0 hidden), so Recall@3 = 1."""
    r = evaluate_scores(lambda u: torch.ones(u.shape[0], 6), hand_data, ks=(3,))
    np.testing.assert_allclose(r.user_recall[3], [1.0, 0.0, 0.0])


def test_batching_does_not_change_results(hand_data):
    """One user per batch gives exactly the metrics of one batch for all."""
    a = evaluate_scores(_scorer, hand_data, ks=(1, 3), batch_size=1)
    b = evaluate_scores(_scorer, hand_data, ks=(1, 3), batch_size=100)
    np.testing.assert_array_equal(a.user_quality, b.user_quality)


def test_item_quality_equals_loop_reference():
    """The sparse-product item quality equals a per-item Python loop on random data."""
    rng = np.random.default_rng(3)
    users, items = rng.integers(30, size=300), rng.integers(20, size=300)
    part = rng.random(300)
    data = InteractionData(
        name="r", n_users=30, n_items=20,
        train=Interactions.from_arrays(users[part < 0.6], items[part < 0.6]),
        validation=Interactions.from_arrays(users[part >= 0.6], items[part >= 0.6]),
        test=_pairs(), user_ids=np.arange(30), item_ids=np.arange(20),
    )  # fmt: skip
    scores = torch.from_numpy(rng.random((30, 20)).astype(np.float32))
    r = evaluate_scores(lambda u: scores[u].clone(), data)
    tr = data.train
    for v in range(20):
        us = tr.users[(tr.items == v) & r.has_truth[tr.users]]
        expected = r.user_quality[us].mean() if us.size else 0.0
        assert r.item_quality[v] == pytest.approx(expected)


def test_popularity_ranks_by_training_frequency(hand_data):
    """Popularity scores are train counts; ranking puts item 0 (2 users) first."""
    np.testing.assert_array_equal(popularity_scores(hand_data), [2, 1, 1, 0, 0, 0])
    r = evaluate_popularity(hand_data, ks=(1, 3))
    # user 0 ranks 1, 2, 3 (item 0 hidden): hits 1 and 3 → Recall@3 = 1.
    # user 1 ranks 0, 2, 3 (item 1 hidden): item 4 missing → Recall@3 = 0.
    np.testing.assert_allclose(r.user_recall[3], [1.0, 0.0, 0.0])


def test_memory_accounting():
    """Kept parameters, sparsity and ragged bytes on a worked example."""
    users, items = np.array([1, 2, 3]), np.array([4, 10])
    assert kept_parameters(users, items) == 20
    assert kept_parameters(users, items, n_tables=2) == 40
    assert sparsity(users, items, d_max=10) == pytest.approx(1 - 20 / 50)
    assert sparsity(users, items, d_max=10, n_tables=2) == pytest.approx(1 - 40 / 100)
    assert ragged_storage_bytes(users, items) == 20 * 4 + 4 * 6
    assert ragged_storage_bytes(users, items, dtype_bytes=2) == 20 * 2 + 4 * 6


@pytest.mark.parametrize("n_items", [20, 30, 300])
def test_fast_top_k_matches_the_exact_tie_breaking(n_items: int) -> None:
    """The fast path orders ties exactly like the whole-row method, hidden items included."""
    from ciess_env.metrics import _top_k_exact, top_k_items

    g = torch.Generator().manual_seed(n_items)
    scores = torch.randint(0, 4, (64, n_items), generator=g).float()  # many ties
    scores[scores == 0] = -float("inf")
    assert torch.equal(top_k_items(scores, 20), _top_k_exact(scores, 20))
