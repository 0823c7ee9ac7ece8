"""Diagnostics of searched masks: how structured are the sizes an agent assigns?

A policy that maps the state to a size gives entities in similar states similar sizes; masks
that are the policy's intent plus independent per-entity noise do not. The state's static part
is popularity, so the dispersion of sizes *within* popularity deciles measures how much of a
mask is noise rather than a function of the state.
"""

from __future__ import annotations

import numpy as np

from ciess_env.errors import InvalidArgumentError

__all__ = ["size_dispersion"]


def _bin_moments(sizes: np.ndarray, popularity: np.ndarray, n_bins: int) -> np.ndarray:
    """(n_bins, 3) count, sum and sum of squares of the sizes per popularity quantile bin."""
    ranks = np.argsort(np.argsort(popularity, kind="stable"), kind="stable")
    bins = ranks * n_bins // max(len(sizes), 1)
    sizes = sizes.astype(np.float64)
    return np.stack(
        [
            np.bincount(bins, minlength=n_bins).astype(np.float64),
            np.bincount(bins, weights=sizes, minlength=n_bins),
            np.bincount(bins, weights=sizes**2, minlength=n_bins),
        ],
        axis=1,
    )


def size_dispersion(
    user_sizes: np.ndarray,
    item_sizes: np.ndarray,
    user_freq: np.ndarray,
    item_freq: np.ndarray,
    *,
    n_bins: int = 10,
) -> dict[str, float]:
    """Spread of sizes among entities of similar popularity, pooled over users and items.

    Entities are binned into ``n_bins`` popularity quantiles per side (by rank, so ties are
    split by index); the within-bin variance is pooled over the ``2 · n_bins`` bins.

    Args:
        user_sizes: (n_users,) sizes.
        item_sizes: (n_items,) sizes.
        user_freq: (n_users,) training interactions per user.
        item_freq: (n_items,) training interactions per item.
        n_bins: Quantile bins per side (10: deciles).

    Returns:
        ``within_std``: pooled within-bin standard deviation of the sizes;
        ``total_std``: standard deviation of all sizes around each side's mean;
        ``explained``: share of the size variance explained by side and popularity bin,
        ``1 − within² / total²`` (1: sizes are a function of the bin; 0: unrelated).

    Raises:
        InvalidArgumentError: on mismatched lengths or ``n_bins < 1``.
    """
    if n_bins < 1:
        msg = f"`n_bins` must be >= 1, got {n_bins!r}."
        raise InvalidArgumentError(msg)
    pairs = (("user", user_sizes, user_freq), ("item", item_sizes, item_freq))
    moments, side_var, count = [], 0.0, 0
    for side, sizes, freq in pairs:
        sizes, freq = np.asarray(sizes), np.asarray(freq)
        if sizes.shape != freq.shape or sizes.ndim != 1:
            msg = (
                f"`{side}_sizes` and `{side}_freq` must be 1-D of the same length, "
                f"got {sizes.shape} and {freq.shape}."
            )
            raise InvalidArgumentError(msg)
        if sizes.size:
            moments.append(_bin_moments(sizes, freq, n_bins))
            side_var += float(np.var(sizes.astype(np.float64))) * sizes.size
            count += sizes.size
    if count == 0:
        return {"within_std": float("nan"), "total_std": float("nan"), "explained": float("nan")}
    m = np.concatenate(moments)
    n, s1, s2 = m[:, 0], m[:, 1], m[:, 2]
    filled = n > 0
    within = float(np.sum(s2[filled] - s1[filled] ** 2 / n[filled])) / count
    total = side_var / count
    explained = 1.0 - within / total if total > 0 else float("nan")
    return {
        "within_std": float(np.sqrt(max(within, 0.0))),
        "total_std": float(np.sqrt(total)),
        "explained": float(explained),
    }
