"""Budget arithmetic: sparsity, kept parameters, fitting and filling sizes to a budget.

The paper's budget is a sparsity ``c`` (Eq. 5): the fraction of the ``d_max · (|U| + |V|)``
embedding parameters the masks zero. Everything that counts parameters against a budget or
makes sizes spend one exactly lives here, once: the env's ``info["sparsity"]``, the
baselines, the structured action space, PEP's prefix projection and selective retraining's
fill all call these functions. Pure numpy; it imports nothing of the package but its errors.
"""

from __future__ import annotations

import math
from typing import Protocol, TypeVar

import numpy as np

from ciess_env.errors import InvalidArgumentError

__all__ = [
    "PAPER_BUDGETS",
    "fill_to_budget",
    "fit_to_budget",
    "kept_budget",
    "kept_parameters",
    "sparsity",
    "sparsity_of_kept",
]

#: The paper's budgets c (Eq. 5): 80, 90 and 95 % of the embedding parameters pruned.
PAPER_BUDGETS: tuple[float, ...] = (0.8, 0.9, 0.95)


def kept_parameters(user_sizes: np.ndarray, item_sizes: np.ndarray, n_tables: int = 1) -> int:
    """Embedding parameters the prefix masks keep: ``n_tables · (Σ d_u + Σ d_v)``."""
    return int(n_tables) * (int(np.sum(user_sizes)) + int(np.sum(item_sizes)))


def sparsity_of_kept(kept: int, n_entities: int, d_max: int, n_tables: int = 1) -> float:
    """``1 − kept / (d_max · N · n_tables)``: the sparsity of ``kept`` parameters (Eq. 5).

    For elementwise masks too (PEP's): ``kept`` is then the count of surviving entries.
    """
    return 1.0 - kept / (int(d_max) * int(n_entities) * int(n_tables))


def sparsity(
    user_sizes: np.ndarray, item_sizes: np.ndarray, d_max: int, n_tables: int = 1
) -> float:
    """Fraction of the tables zeroed: ``1 − kept / (d_max · (|U| + |V|) · n_tables)`` (Eq. 5)."""
    kept = kept_parameters(user_sizes, item_sizes, n_tables)
    return sparsity_of_kept(kept, len(user_sizes) + len(item_sizes), d_max, n_tables)


def kept_budget(c: float, n_entities: int, d_max: int) -> int:
    """Largest total size allowed at sparsity ``c``: ``⌊(1 − c) · d_max · N⌋`` (paper Eq. 5).

    The product is rounded to 9 decimals before the floor, so that binary floating point does
    not turn an exact integer cap (e.g. ``0.1 · 128 · 10 = 128``) into 127.

    Args:
        c: Target sparsity in [0, 1).
        n_entities: ``|U| + |V|``.
        d_max: Largest size.

    Returns:
        The cap on ``Σ d_n``.

    Raises:
        ValueError: if ``c`` is outside [0, 1).
    """
    if not 0.0 <= c < 1.0:
        msg = f"`c` (target sparsity) must be in [0, 1), got {c!r}."
        raise InvalidArgumentError(msg)
    return math.floor(round((1.0 - c) * d_max * n_entities, 9))


def fit_to_budget(weights: np.ndarray, cap: int, d_min: int, d_max: int) -> np.ndarray:
    """Integer sizes ``≈ clip(s · w, d_min, d_max)`` whose sum is exactly ``cap``.

    The one budget-exact rounding of the package: the baselines (:mod:`agents.baselines`),
    the structured family and selective retraining's fill (:func:`fill_to_budget`) all build
    their masks with it. ``s`` is found by bisection (the clipped sum is non-decreasing in
    ``s``), then the largest-remainder rule makes the sizes integral without changing the
    total.

    Args:
        weights: (N,) positive float64 weights.
        cap: Target total, ``d_min · N ≤ cap ≤ d_max · N``.
        d_min: Smallest size.
        d_max: Largest size.

    Returns:
        (N,) int64 sizes in [d_min, d_max] summing to ``cap``.

    Raises:
        ValueError: if a weight is not positive and finite, or ``cap`` is outside
            ``[d_min · N, d_max · N]``.
    """
    weights = np.asarray(weights, dtype=np.float64)
    if weights.size == 0 or not np.all(np.isfinite(weights) & (weights > 0)):
        msg = "`weights` must be a non-empty array of positive finite numbers."
        raise InvalidArgumentError(msg)
    n = weights.size
    if not d_min * n <= cap <= d_max * n:
        msg = (
            f"`cap` must lie in [d_min · N, d_max · N] = [{d_min * n}, {d_max * n}] for "
            f"{n} entities, got {cap}."
        )
        raise InvalidArgumentError(msg)
    lo, hi = 0.0, d_max / float(weights.min())
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if np.clip(mid * weights, d_min, d_max).sum() < cap:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-15 * hi:
            break
    real = np.clip(hi * weights, d_min, d_max)
    sizes = np.floor(real).astype(np.int64)
    remainder = cap - int(sizes.sum())
    if remainder > 0:
        frac = np.where(sizes < d_max, real - sizes, -1.0)
        top = np.argpartition(-frac, remainder - 1)[:remainder]
        sizes[top] += 1
    return sizes


class SizedMask(Protocol):
    """What :func:`fill_to_budget` needs of a mask (a :class:`ciess_env.budget_log.BudgetEntry`)."""

    user_sizes: np.ndarray
    item_sizes: np.ndarray
    sparsity: float

    def _replace(self, **changes: object) -> SizedMask: ...


M = TypeVar("M", bound=SizedMask)


def fill_to_budget(entry: M, c: float, *, d_min: int = 1, d_max: int = 128) -> M:
    """``entry`` with its sizes grown by one common factor until the table meets ``c`` exactly.

    A search's masks only have to be *at least* as sparse as ``c``, and an agent that does not
    steer to the budget leaves part of it unspent (a mask at sparsity 0.87 kept for c = 0.8
    wastes 7 % of the table), so it is compared with baselines that spend all of it. Growing
    every size in proportion, capped at ``d_max``, keeps the agent's allocation (who is larger
    than whom) and adds only the unspent budget; :func:`fit_to_budget` does the budget-exact
    rounding, as for the baselines. The search's scores (``mean_quality``, ...) stay those of
    the mask as logged: the grown mask was never evaluated.

    Args:
        entry: A logged mask (:class:`~ciess_env.budget_log.BudgetEntry`) with sparsity ≥ ``c``.
        c: Target sparsity.
        d_min: Smallest size.
        d_max: Largest size.

    Returns:
        The entry with new ``user_sizes`` / ``item_sizes`` (same dtype) and ``sparsity``.

    Raises:
        InvalidArgumentError: if the mask is denser than ``c`` already (shrinking it would
            change the allocation, not fill it).
    """
    users, items = np.asarray(entry.user_sizes), np.asarray(entry.item_sizes)
    sizes = np.concatenate([users, items]).astype(np.int64)
    cap = kept_budget(c, sizes.size, d_max)
    if int(sizes.sum()) > cap:
        msg = (
            f"fill_to_budget: the mask keeps {int(sizes.sum())} of {d_max * sizes.size} "
            f"parameters (sparsity {entry.sparsity:.4f}), more than budget {c} allows ({cap}); "
            "only a mask at least as sparse as c can be filled."
        )
        raise InvalidArgumentError(msg)
    filled = fit_to_budget(sizes, cap, d_min, d_max)
    u = filled[: users.size].astype(users.dtype)
    v = filled[users.size :].astype(items.dtype)
    return entry._replace(user_sizes=u, item_sizes=v, sparsity=sparsity(u, v, d_max))  # type: ignore[return-value]
