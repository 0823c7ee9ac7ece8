import logging
import re

import numpy as np
import pytest

from ciess_env.data import Interactions, carve_validation, split_per_user
from ciess_env.data.split import check_ratios, per_user_quotas


def _random_pairs(n_users: int = 200, max_count: int = 60, n_items: int = 100, seed: int = 0):
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, max_count + 1, size=n_users)
    users = np.repeat(np.arange(n_users), counts)
    items = np.concatenate([rng.choice(n_items, size=c, replace=False) for c in counts])
    return users, items, counts


def _pair_keys(part: Interactions) -> set[tuple[int, int]]:
    return set(zip(part.users.tolist(), part.items.tolist(), strict=True))


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, (0, 0, 0)),
        (1, (1, 0, 0)),
        (2, (1, 1, 0)),
        (3, (1, 1, 1)),
        (4, (2, 1, 1)),
        (5, (3, 1, 1)),
        (6, (3, 2, 1)),
        (7, (3, 2, 2)),
        (100, (50, 25, 25)),
    ],
)
def test_quotas_follow_largest_remainder_rule_for_50_25_25(n, expected):
    """Quotas for small users are exactly the documented table (ties go train, val, test)."""
    assert tuple(per_user_quotas(np.array([n]), (0.5, 0.25, 0.25))[0]) == expected


def test_quota_rule_moves_one_to_train_when_train_would_be_empty():
    """With a tiny train ratio, a user still keeps one training interaction."""
    quotas = per_user_quotas(np.array([1, 2, 3]), (0.1, 0.45, 0.45))
    assert quotas.tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]


@pytest.mark.parametrize(
    "ratios",
    [(0.5, 0.25, 0.25), (0.8, 0.1, 0.1), (0.6, 0.4, 0.0), (0.1, 0.45, 0.45), (1.0, 0.0, 0.0)],
)
def test_per_user_counts_are_within_rounding_and_keep_train(ratios):
    """Every user's split sizes differ from n·r by < 1 (bar the train-rescue move), train ≥ 1."""
    users, items, counts = _random_pairs()
    parts = split_per_user(users, items, ratios=ratios, seed=1)
    sizes = np.stack([np.bincount(p.users, minlength=len(counts)) for p in parts], axis=1)
    assert np.array_equal(sizes.sum(axis=1), counts)
    assert sizes[:, 0].min() >= 1
    exact = counts[:, None] * np.asarray(ratios)[None, :]
    rescued = (counts * ratios[0]) < 1  # only these may have train = 1 > n·r_train + 1
    ok = np.abs(sizes - exact) < 1
    assert ok[~rescued].all()
    assert (np.abs(sizes[:, 1:] - exact[:, 1:]) < 1).all()


def test_split_is_a_partition_of_the_deduplicated_input():
    """Train, validation and test are disjoint, sorted, and their union is the input."""
    users, items, _ = _random_pairs()
    users = np.concatenate([users, users[:50]])  # 50 duplicate pairs
    items = np.concatenate([items, items[:50]])
    train, val, test = split_per_user(users, items)
    keys = [_pair_keys(p) for p in (train, val, test)]
    assert not keys[0] & keys[1]
    assert not keys[0] & keys[2]
    assert not keys[1] & keys[2]
    assert keys[0] | keys[1] | keys[2] == set(zip(users.tolist(), items.tolist(), strict=True))
    assert len(train) + len(val) + len(test) == len(users) - 50
    for part in (train, val, test):
        assert part.users.dtype == np.int64
        assert part.items.dtype == np.int64
        order = np.lexsort((part.items, part.users))
        assert np.array_equal(order, np.arange(len(part)))


def test_same_seed_gives_identical_split():
    """Two splits with seed 42 are bit-identical."""
    users, items, _ = _random_pairs()
    a = split_per_user(users, items, seed=42)
    b = split_per_user(users, items, seed=42)
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x.users, y.users)
        assert np.array_equal(x.items, y.items)


def test_different_seeds_give_different_splits():
    """Seed 42 and seed 43 put different pairs in the training split."""
    users, items, _ = _random_pairs()
    a = split_per_user(users, items, seed=42)[0]
    b = split_per_user(users, items, seed=43)[0]
    assert len(a) == len(b)
    assert _pair_keys(a) != _pair_keys(b)


def test_split_does_not_depend_on_input_order():
    """Shuffling the input rows does not change the split (it sorts first)."""
    users, items, _ = _random_pairs()
    perm = np.random.default_rng(3).permutation(len(users))
    a = split_per_user(users, items, seed=7)
    b = split_per_user(users[perm], items[perm], seed=7)
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x.items, y.items)


def test_empty_input_gives_three_empty_splits():
    """No pairs in, three empty int64 splits out."""
    parts = split_per_user(np.zeros(0, np.int64), np.zeros(0, np.int64))
    assert [len(p) for p in parts] == [0, 0, 0]


@pytest.mark.parametrize(
    ("ratios", "message"),
    [
        ((0.5, 0.5), "`ratios` must be three numbers (train, validation, test), got (0.5, 0.5)."),
        ((0.5, 0.3, 0.3), "`ratios` must sum to 1, got (0.5, 0.3, 0.3) (sum 1.1)."),
        ((1.2, -0.1, -0.1), "`ratios` must be non-negative finite numbers, got (1.2, -0.1, -0.1)."),
        (
            (0.0, 0.5, 0.5),
            "`ratios` must have a positive train ratio (first entry), got (0.0, 0.5, 0.5).",
        ),
        (
            (float("nan"), 0.5, 0.5),
            "`ratios` must be non-negative finite numbers, got (nan, 0.5, 0.5).",
        ),
        ("abc", "`ratios` must be three numbers (train, validation, test), got 'abc'."),
    ],
)
def test_invalid_ratios_are_refused(ratios, message):
    """Bad ratios raise ValueError with the documented message."""
    with pytest.raises(ValueError, match=re.escape(message)):
        split_per_user(np.array([0, 1]), np.array([0, 1]), ratios=ratios)


def test_check_ratios_returns_float_array():
    """Valid ratios come back as a float64 array."""
    assert check_ratios((0.5, 0.25, 0.25)).tolist() == [0.5, 0.25, 0.25]


def test_bad_index_arrays_are_refused():
    """Negative ids, float ids, 2-D input and length mismatches raise clear errors."""
    with pytest.raises(
        ValueError, match=re.escape("`users` must be non-negative indices, got minimum -1.")
    ):
        split_per_user(np.array([-1, 0]), np.array([0, 1]))
    with pytest.raises(
        TypeError, match=re.escape("`items` must hold integer indices, got dtype float64.")
    ):
        split_per_user(np.array([0, 1]), np.array([0.0, 1.5]))
    with pytest.raises(
        ValueError, match=re.escape("`users` must be a 1-D array, got shape (1, 2).")
    ):
        split_per_user(np.array([[0, 1]]), np.array([0, 1]))
    with pytest.raises(ValueError, match=re.escape("must have the same length, got 2 and 3.")):
        split_per_user(np.array([0, 1]), np.array([0, 1, 2]))


def test_carve_validation_keeps_test_and_splits_train_two_to_one():
    """Pre-split mode: test is returned as given; validation is ~1/3 of each user's train."""
    users, items, _ = _random_pairs(n_users=100, max_count=60)
    rng = np.random.default_rng(5)
    is_test = rng.random(len(users)) < 0.2
    given_train = Interactions(users[~is_test], items[~is_test])
    given_test = Interactions.from_arrays(users[is_test], items[is_test])
    train, val, test = carve_validation(given_train, given_test, seed=1)
    assert np.array_equal(test.users, given_test.users)
    assert np.array_equal(test.items, given_test.items)
    assert _pair_keys(train) | _pair_keys(val) == _pair_keys(given_train)
    n_tr = np.bincount(given_train.users, minlength=100)
    n_val = np.bincount(val.users, minlength=100)
    assert (np.abs(n_val - n_tr / 3) < 1).all()
    assert np.bincount(train.users, minlength=100)[n_tr > 0].min() >= 1


def test_carve_validation_drops_pairs_that_are_also_in_test(caplog):
    """A pair in both files stays only in test, and the count is logged."""
    train = Interactions(np.array([0, 0, 0, 0]), np.array([1, 2, 3, 4]))
    test = Interactions(np.array([0, 0]), np.array([4, 5]))
    with caplog.at_level(logging.WARNING, logger="ciess_env.data.split"):
        new_train, val, new_test = carve_validation(train, test, ratios=(1.0, 0.0, 0.0))
    assert "1 pairs are in both train and test; kept in test only." in caplog.text
    assert new_train.items.tolist() == [1, 2, 3]
    assert len(val) == 0
    assert new_test.items.tolist() == [4, 5]
