"""Per-user stratified random splits (paper §1.2 and §4: 50/25/25 train/validation/test, seed 42).

The split is *per user*: every user's interactions are shuffled and cut at per-user quotas, so each
user keeps the requested proportions (within rounding) instead of only the data set as a whole.
That matters for CIESS because the reward is a per-user quality ratio: a user whose validation
set were empty by chance would have no reward signal.

Everything is vectorised: one random key per interaction, one sort by (user, key), the rank of
each interaction inside its user from the cumulative counts, and the per-user quotas as an
``(n_users, 3)`` array. There is no Python loop over users or interactions.

Quota rule (largest remainder, a.k.a. Hamilton's method):

1. Each user with ``n`` interactions gets ``floor(n · r_s)`` for each split ``s``.
2. The ``n − Σ floor`` left-over interactions go, one each, to the splits with the largest
   fractional parts ``n · r_s − floor(n · r_s)``; ties are broken in the order
   train, validation, test.
3. If that leaves a user with 0 training interactions (only possible when ``n · r_train < 1``),
   one interaction moves to train from the split that was rounded up the most (test before
   validation on a tie).

Every count then differs from ``n · r_s`` by less than 1, the counts sum to ``n``, and every user
with at least one interaction keeps at least one training interaction. With the paper's
50/25/25 this gives: 1 interaction → (1, 0, 0); 2 → (1, 1, 0); 3 → (1, 1, 1); 4 → (2, 1, 1);
5 → (3, 1, 1); 6 → (3, 2, 1)... so a user needs at least 3 interactions to appear in all three.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np

from ciess_env.checks import check_seed
from ciess_env.data.interactions import Interactions
from ciess_env.errors import InvalidArgumentError, InvalidTypeError

__all__ = ["carve_validation", "check_ratios", "per_user_quotas", "split_per_user"]

logger = logging.getLogger(__name__)

_EPS = 1e-9  # guards floor() and remainder ties against float error in n · r


def check_ratios(ratios: Sequence[float]) -> np.ndarray:
    """Validate (train, validation, test) ratios and return them as a float64 array.

    Args:
        ratios: Three non-negative finite numbers summing to 1, with a positive train ratio
            (a user without training interactions could not be embedded at all).

    Returns:
        (3,) float64 array of the ratios.

    Raises:
        ValueError: If ``ratios`` is not of that form.
    """
    try:
        arr = np.asarray(ratios, dtype=np.float64)
    except (TypeError, ValueError) as err:
        msg = f"`ratios` must be three numbers (train, validation, test), got {ratios!r}."
        raise InvalidArgumentError(msg) from err
    if arr.shape != (3,):
        msg = f"`ratios` must be three numbers (train, validation, test), got {ratios!r}."
        raise InvalidArgumentError(msg)
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        msg = f"`ratios` must be non-negative finite numbers, got {ratios!r}."
        raise InvalidArgumentError(msg)
    if not math.isclose(float(arr.sum()), 1.0, abs_tol=1e-6):
        msg = f"`ratios` must sum to 1, got {ratios!r} (sum {float(arr.sum()):g})."
        raise InvalidArgumentError(msg)
    if arr[0] <= 0:
        msg = f"`ratios` must have a positive train ratio (first entry), got {ratios!r}."
        raise InvalidArgumentError(msg)
    return arr


def per_user_quotas(counts: np.ndarray, ratios: Sequence[float]) -> np.ndarray:
    """Return how many interactions of each user go to train, validation and test.

    See the module docstring for the rule and its guarantees.

    Args:
        counts: (n_users,) int number of interactions of each user (zeros allowed).
        ratios: (train, validation, test) ratios, validated by :func:`check_ratios`.

    Returns:
        (n_users, 3) int64 quotas; each row sums to the user's count.
    """
    r = check_ratios(ratios)
    n = np.asarray(counts, dtype=np.int64)
    exact = n[:, None] * r[None, :]
    base = np.floor(exact + _EPS).astype(np.int64)
    frac = np.round(exact - base, 9)  # rounding makes equal remainders compare equal
    left = n - base.sum(axis=1)
    # rank of each column within its row: larger remainder first, ties by column order.
    col = np.arange(3)
    beats = (frac[:, :, None] > frac[:, None, :]) | (
        (frac[:, :, None] == frac[:, None, :]) & (col[:, None] < col[None, :])
    )  # beats[u, i, j]: column i goes before column j
    rank = beats.sum(axis=1)  # number of columns before j
    quotas = base + (rank < left[:, None])
    # rule 3: a user with interactions but no training one takes one from the most rounded-up.
    starved = (quotas[:, 0] == 0) & (n > 0)
    if np.any(starved):
        excess = quotas[:, 1:] - exact[:, 1:]
        donor = 2 - np.argmax(excess[:, ::-1], axis=1)  # ties: test gives before validation
        rows = np.flatnonzero(starved)
        quotas[rows, donor[rows]] -= 1
        quotas[rows, 0] += 1
    return quotas


def _as_index_array(values: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        msg = f"`{what}` must be a 1-D array, got shape {arr.shape}."
        raise InvalidArgumentError(msg)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        msg = f"`{what}` must hold integer indices, got dtype {arr.dtype}."
        raise InvalidTypeError(msg)
    arr = arr.astype(np.int64, copy=False)
    if arr.size and arr.min() < 0:
        msg = f"`{what}` must be non-negative indices, got minimum {int(arr.min())}."
        raise InvalidArgumentError(msg)
    return arr


def _split_sorted(
    pairs: Interactions, ratios: np.ndarray, seed: int | None
) -> tuple[Interactions, Interactions, Interactions]:
    """Split pairs already sorted by (user, item) and deduplicated.

    A random permutation gives every pair a distinct random key; sorting by the single int64 key
    ``user · n + key`` shuffles the pairs within each user (ties impossible, so the result does
    not depend on the sort algorithm). Split membership is then scattered back to the input
    order, so the three outputs come out sorted by (user, item) without another sort.
    """
    users, items = pairs.users, pairs.items
    n = users.shape[0]
    if n == 0:
        empty = Interactions(users, items)
        return empty, empty, empty
    rng = np.random.default_rng(seed)
    order = np.argsort(users * n + rng.permutation(n))
    counts = np.bincount(users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    shuffled_users = users[order]
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n, dtype=np.int64) - starts[shuffled_users]  # rank in user's shuffle
    quotas = per_user_quotas(counts, ratios)
    n_train = quotas[users, 0]
    n_train_val = n_train + quotas[users, 1]
    in_train = rank < n_train
    in_test = rank >= n_train_val
    in_val = ~in_train & ~in_test
    return (
        Interactions(users[in_train], items[in_train]),
        Interactions(users[in_val], items[in_val]),
        Interactions(users[in_test], items[in_test]),
    )


def split_per_user(
    users: np.ndarray,
    items: np.ndarray,
    *,
    ratios: Sequence[float] = (0.5, 0.25, 0.25),
    seed: int | None = 42,
) -> tuple[Interactions, Interactions, Interactions]:
    """Split (user, item) pairs per user at random into train, validation and test.

    The paper (§1.2, §4) splits each user's interactions 50/25/25 at random with seed 42; this
    reproduces that protocol with the quota rule of the module docstring. Duplicate pairs are
    dropped first so a pair can never be both a training positive and a test target.

    Args:
        users: (n,) integer user indices, ≥ 0.
        items: (n,) integer item indices, ≥ 0.
        ratios: (train, validation, test) proportions; non-negative, summing to 1, train > 0.
        seed: Seed of the shuffle. The same seed gives the identical split; ``None`` draws
            fresh entropy.

    Returns:
        ``(train, validation, test)``, each sorted by (user, item), disjoint, and together
        equal to the deduplicated input.

    Raises:
        ValueError: If ``ratios`` is invalid, the arrays differ in length or hold negative ids.
        TypeError: If the arrays are not integer.
    """
    r = check_ratios(ratios)
    check_seed(seed, "seed")
    users = _as_index_array(users, "users")
    items = _as_index_array(items, "items")
    if users.shape != items.shape:
        msg = (
            "`users` and `items` must have the same length, "
            f"got {users.shape[0]} and {items.shape[0]}."
        )
        raise InvalidArgumentError(msg)
    return _split_sorted(Interactions.from_arrays(users, items), r, seed)


def carve_validation(
    train: Interactions,
    test: Interactions,
    *,
    ratios: Sequence[float] = (0.5, 0.25, 0.25),
    seed: int | None = 42,
) -> tuple[Interactions, Interactions, Interactions]:
    """Keep a given test split and carve a per-user validation split out of the given train.

    This is the "pre-split" mode for LightGCN-style ``train.txt`` / ``test.txt`` pairs. The test
    share is fixed by the files, so only the train:validation proportion can follow ``ratios``:
    each user's training pairs are split ``r_train : r_val`` (normalised to sum to 1) with the
    quota rule of the module docstring. E.g. an 80/20 file split with ``ratios=(0.5, 0.25,
    0.25)`` becomes about 53.3/26.7/20. With ``r_val = 0`` the train split is returned whole.
    Pairs found in both files are dropped from train (the test file wins), and the number
    dropped is logged.

    Args:
        train: Training pairs of the files (indices already mapped).
        test: Test pairs of the files.
        ratios: Requested (train, validation, test) proportions; only the first two matter.
        seed: Seed of the per-user shuffle of the training pairs.

    Returns:
        ``(train, validation, test)``; ``test`` is the given one, sorted and deduplicated.
    """
    r = check_ratios(ratios)
    check_seed(seed, "seed")
    test = Interactions.from_arrays(test.users, test.items)
    train = Interactions.from_arrays(train.users, train.items)
    if len(train) and len(test):
        width = int(max(train.items.max(), test.items.max())) + 1
        overlap = np.isin(train.users * width + train.items, test.users * width + test.items)
        if np.any(overlap):
            logger.warning("%d pairs are in both train and test; kept in test only.", overlap.sum())
            train = Interactions(train.users[~overlap], train.items[~overlap])
    inner = np.array([r[0], r[1], 0.0]) / (r[0] + r[1])
    new_train, validation, _ = _split_sorted(train, inner, seed)
    return new_train, validation, test
