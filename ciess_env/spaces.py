"""The MDP's definition as pure array maps: actions ↔ sizes, observation features, rewards.

They are free functions of arrays (no env, no model) so that the single env, the per-entity
vector env, the agents, the baselines, the search curves and the tests share exactly one
definition of each formula. :func:`validate_size_range` is the one rule for ``[d_min, d_max]``.
The budget arithmetic (:data:`PAPER_BUDGETS`, :func:`kept_budget`, :func:`fit_to_budget`) is
:mod:`ciess_env.budget`'s, re-exported here.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ciess_env._size_range import validate_size_range
from ciess_env.budget import PAPER_BUDGETS, fit_to_budget, kept_budget
from ciess_env.checks import check_real_array
from ciess_env.errors import InvalidArgumentError, InvalidTypeError

__all__ = [
    "PAPER_BUDGETS",
    "QUALITY_FLOOR",
    "REWARD_VARIANTS",
    "RewardVariant",
    "action_to_sizes",
    "entity_rewards",
    "fit_to_budget",
    "kept_budget",
    "quality_ratio",
    "scale_popularity",
    "scale_sizes",
    "sizes_to_action",
    "validate_size_range",
]

RewardVariant = Literal["paper", "code", "team"]

#: The reward variants :func:`entity_rewards` (and the env's ``reward=``) accept.
REWARD_VARIANTS: tuple[str, ...] = ("paper", "code", "team")

#: Floor on the full-size quality in the ratio's denominator (the reference code's 1e-5).
QUALITY_FLOOR = 1e-5


def action_to_sizes(action: np.ndarray, *, n: int, d_min: int, d_max: int) -> np.ndarray:
    """Map actions in [−1, 1] to integer sizes ``round(d_min + (a + 1)/2 · (d_max − d_min))``.

    Values outside [−1, 1] are clipped first (an unsquashed policy or exploration noise can
    overshoot; clipping is what the reference's ``clip(·, 1, 128)`` does). Halves round up, so
    the map is monotone and :func:`sizes_to_action` is its exact inverse on integers.

    Args:
        action: (n,) or (n, 1) real actions, one per entity (users first, then items).
        n: Expected number of entities.
        d_min: Smallest size.
        d_max: Largest size.

    Returns:
        (n,) int64 sizes in [d_min, d_max].

    Raises:
        InvalidTypeError: on bool, complex, string or object entries, a tensor that requires
            grad (numpy would cast the first three silently), or integers outside [−1, 1]
            (sizes passed where actions belong).
        InvalidArgumentError: on a wrong shape or a NaN/inf entry.
    """
    raw = np.asarray(action) if isinstance(action, np.ndarray) else action
    arr = check_real_array(raw, "action", hint="Actions are real numbers in [-1, 1].")
    if np.asarray(raw).dtype.kind in "iu" and arr.size and (arr.min() < -1 or arr.max() > 1):
        msg = (
            f"`action` holds integers that look like sizes ({int(arr.min())} to "
            f"{int(arr.max())}), not actions in [-1, 1]; convert sizes with "
            "sizes_to_action() (env.unwrapped.sizes_to_action(user_sizes, item_sizes))."
        )
        raise InvalidTypeError(msg)
    if arr.shape == (n, 1):
        arr = arr[:, 0]
    if arr.shape != (n,):
        msg = f"`action` must have shape ({n},) (one value per user and item), got {arr.shape}."
        raise InvalidArgumentError(msg)
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        msg = f"`action` must be finite (NaN and inf are not allowed), got {bad} non-finite values."
        raise InvalidArgumentError(msg)
    arr = np.clip(arr, -1.0, 1.0)
    sizes = np.floor(d_min + (arr + 1.0) / 2.0 * (d_max - d_min) + 0.5)
    return np.clip(sizes, d_min, d_max).astype(np.int64)


def sizes_to_action(sizes: np.ndarray, *, d_min: int, d_max: int) -> np.ndarray:
    """Map integer sizes to the actions that :func:`action_to_sizes` sends back to them.

    Args:
        sizes: Integer sizes in [d_min, d_max], any shape.
        d_min: Smallest size.
        d_max: Largest size.

    Returns:
        float32 actions in [−1, 1], same shape (all 0 when ``d_min == d_max``).

    Raises:
        ValueError: if a size is not a whole number or lies outside [d_min, d_max].
    """
    arr = np.asarray(sizes, dtype=np.float64)
    if arr.size and (not np.all(arr == np.round(arr)) or arr.min() < d_min or arr.max() > d_max):
        msg = (
            f"`sizes` must be whole numbers in [{d_min}, {d_max}], "
            f"got values in [{arr.min()}, {arr.max()}]."
        )
        raise InvalidArgumentError(msg)
    return scale_sizes(arr, d_min=d_min, d_max=d_max)


def scale_sizes(sizes: np.ndarray, *, d_min: int, d_max: int) -> np.ndarray:
    """``(d − d_min)/(d_max − d_min)·2 − 1`` as float32 (the observation's size feature)."""
    arr = np.asarray(sizes, dtype=np.float64)
    if d_max == d_min:
        return np.zeros(arr.shape, dtype=np.float32)
    return ((arr - d_min) / (d_max - d_min) * 2.0 - 1.0).astype(np.float32)


def scale_popularity(freq: np.ndarray) -> np.ndarray:
    """Min–max scale training frequencies to [−1, 1] (the reference's state scaling).

    A side whose entities all have the same frequency has no popularity signal; it maps to 0.
    """
    f = np.asarray(freq, dtype=np.float64)
    if f.size == 0:
        return np.zeros(0, dtype=np.float32)
    lo, hi = f.min(), f.max()
    if hi == lo:
        return np.zeros(f.shape, dtype=np.float32)
    return ((f - lo) / (hi - lo) * 2.0 - 1.0).astype(np.float32)


def quality_ratio(quality: np.ndarray, full_quality: np.ndarray) -> np.ndarray:
    """``q = min(quality / max(full_quality, 1e-5), 1)``, the paper's Eq. 7, in [0, 1].

    The floor follows the reference code; an entity whose full-size quality is 0 therefore has
    q = 0 whatever its size (it has nothing to lose).
    """
    den = np.maximum(np.asarray(full_quality, dtype=np.float64), QUALITY_FLOOR)
    return np.clip(np.asarray(quality, dtype=np.float64) / den, 0.0, 1.0)


def size_penalty(sizes: np.ndarray, *, d_max: int, variant: RewardVariant = "paper") -> np.ndarray:
    """The memory term that λ multiplies in :func:`entity_rewards`, per entity.

    ``(d/d_max)²`` for ``"paper"`` and ``"team"``, ``((d − 1)/d_max)²`` for ``"code"``. It
    depends on the size alone, so an agent that changes λ can relabel stored rewards exactly
    (:class:`agents.lagrangian.LagrangianRWTD3`).

    Raises:
        ValueError: on an unknown variant.
    """
    d = np.asarray(sizes, dtype=np.float64)
    if variant in ("paper", "team"):
        return (d / d_max) ** 2
    if variant == "code":
        return ((d - 1.0) / d_max) ** 2
    msg = f"`reward` must be one of {list(REWARD_VARIANTS)}, got {variant!r}."
    raise InvalidArgumentError(msg)


def entity_rewards(
    *,
    q: np.ndarray,
    quality: np.ndarray,
    sizes: np.ndarray,
    lam: float,
    d_max: int,
    variant: RewardVariant = "paper",
) -> np.ndarray:
    """Per-entity reward: paper Eq. 10, the authors' code variant, or the team reward.

    * ``"paper"``: ``r_n = q_n − λ·(d_n/d_max)²`` with the quality ratio ``q_n``.
    * ``"code"``: ``r_n = quality_n − λ·((d_n − 1)/d_max)²`` with the raw quality (mean of
      Recall/NDCG@5/10/20), as in the reference implementation.
    * ``"team"``: ``r_n = q̄ − λ·(d_n/d_max)²``, ``q̄`` the mean of ``q`` over all entities
      (the table-level quality of Eq. 15). An entity's own quality depends mostly on the other
      entities' sizes (an item's quality is its users' ranking quality), so under ``"paper"``
      each entity pays its whole memory cost but sees little of its size's effect on quality;
      under ``"team"`` every entity sees the collective quality its size contributes to. The
      mean over entities, the scalar reward, is the same as ``"paper"``'s.

    A difference reward ``G(z) − G(z with d_n replaced)`` is not offered: its exact form needs
    one counterfactual retraining per entity, and its one cheap estimate (every other entity's
    quality held fixed) is the ``"paper"`` reward up to a constant per entity.

    Args:
        q: (n,) quality ratios in [0, 1].
        quality: (n,) raw qualities.
        sizes: (n,) integer sizes.
        lam: The memory weight λ.
        d_max: The largest size.
        variant: One of :data:`REWARD_VARIANTS`.

    Returns:
        (n,) float64 rewards.

    Raises:
        ValueError: on an unknown variant.
    """
    penalty = lam * size_penalty(sizes, d_max=d_max, variant=variant)
    if variant == "paper":
        return np.asarray(q, dtype=np.float64) - penalty
    if variant == "code":
        return np.asarray(quality, dtype=np.float64) - penalty
    q_arr = np.asarray(q, dtype=np.float64)
    return (float(q_arr.mean()) if q_arr.size else 0.0) - penalty
