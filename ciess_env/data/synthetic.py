"""A small synthetic implicit-feedback data set shaped like MovieLens: the offline default.

Why synthetic data at all: the environment retrains a backbone at every step, so tests, the demo
and CI need a data set that is available offline, seeded, and small enough to train on two CPU
cores in about a second per step. It should still have the two properties CIESS exploits:

* **long tails** in both user activity and item popularity (paper §1.2: the state holds the
  entity's popularity because head and tail entities deserve different sizes), and
* **learnable structure**, so a trained model beats the popularity ranking and embedding sizes
  matter.

Generative model (all draws from one ``numpy`` generator seeded by ``seed``):

1. Activity: user ``u`` of random rank ``ρ_u`` gets weight ``(1 + ρ_u)^(−activity_exponent)``;
   its count is ``min_interactions + s · weight`` rounded and capped at ``n_items // 2``, with the
   scale ``s`` found by bisection so the mean count is ``mean_interactions`` (as closely as
   rounding and the cap allow).
2. Popularity: item ``i`` of random rank ``ρ_i`` has ``log p_i = −popularity_exponent · log(1 +
   ρ_i)`` (Zipf).
3. Preferences: user and item factors ``U, V ~ N(0, 1/√k)`` entrywise (``k = n_factors``), so
   ``u·v`` has unit variance.
4. Each user draws its count of distinct items without replacement with probability ∝
   ``p_i · exp(β · u·v_i)`` (``β = preference_strength``), vectorised as Gumbel-top-k over the
   dense ``(n_users, n_items)`` logit matrix (fine up to a few thousand × a few thousand).

The defaults (1,000 users × 500 items, ≈30,000 interactions, density ≈6% — ML-1M has 4.5%) give a
data set on which one BPR step of LightGCN takes about a second on two cores. Every user has at
least ``min_interactions = 4`` interactions, so with the 50/25/25 split every user has training,
validation and test items. All ``n_items`` items are kept even if a tail item is never drawn.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ciess_env.checks import check_seed
from ciess_env.data.interactions import InteractionData
from ciess_env.data.split import check_ratios, split_per_user
from ciess_env.errors import InvalidArgumentError

__all__ = ["make_synthetic"]


def _activity_counts(
    rng: np.random.Generator, n_users: int, mean: float, low: int, cap: int, exponent: float
) -> np.ndarray:
    """Power-law per-user counts in [low, cap] whose mean is as close to ``mean`` as possible."""
    weight = (1.0 + rng.permutation(n_users)) ** (-exponent)

    def counts(scale: float) -> np.ndarray:
        return np.clip(np.rint(low + scale * weight), low, cap).astype(np.int64)

    lo, hi = 0.0, 1.0
    while counts(hi).mean() < mean and hi < 1e12:
        hi *= 2.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if counts(mid).mean() < mean else (lo, mid)
    return counts(hi)


def _check_positive_int(value: int, name: str, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        msg = f"`{name}` must be an integer ≥ {minimum}, got {value!r}."
        raise InvalidArgumentError(msg)


def make_synthetic(
    *,
    n_users: int = 1000,
    n_items: int = 500,
    mean_interactions: float = 30.0,
    min_interactions: int = 4,
    n_factors: int = 8,
    popularity_exponent: float = 1.0,
    activity_exponent: float = 0.6,
    preference_strength: float = 2.5,
    seed: int = 0,
    ratios: Sequence[float] = (0.5, 0.25, 0.25),
    split_seed: int | None = None,
    name: str = "synthetic",
) -> InteractionData:
    """Generate a seeded long-tailed latent-factor data set and split it per user.

    See the module docstring for the generative model and why the defaults are what they are.

    Args:
        n_users: Number of users.
        n_items: Number of items; each user interacts with at most ``n_items // 2`` of them.
        mean_interactions: Target mean number of interactions per user.
        min_interactions: Fewest interactions of a user (≥ 4 gives every user validation and
            test items under 50/25/25).
        n_factors: Dimension ``k`` of the true user/item factors.
        popularity_exponent: Zipf exponent of item popularity (0 = uniform).
        activity_exponent: Power-law exponent of user activity (0 = all users equal).
        preference_strength: ``β``, weight of the factor affinity against popularity
            (0 = pure popularity, nothing to learn beyond it).
        seed: Seed of the generator; the same seed gives the identical data set.
        ratios: (train, validation, test) proportions of the per-user split.
        split_seed: Seed of the split; ``None`` uses ``seed``.
        name: Name of the returned data set.

    Returns:
        The split data set; raw ids equal indices (``user_ids = arange(n_users)``).

    Raises:
        ValueError: If a size is not a positive integer, the counts cannot fit
            (``min_interactions ≤ mean_interactions ≤ n_items // 2`` is required) or
            ``ratios`` is invalid.
    """
    _check_positive_int(n_users, "n_users")
    _check_positive_int(n_items, "n_items", minimum=2)
    _check_positive_int(min_interactions, "min_interactions")
    _check_positive_int(n_factors, "n_factors")
    check_ratios(ratios)
    check_seed(seed, "seed", allow_none=False)
    check_seed(split_seed, "split_seed")
    cap = n_items // 2
    if not min_interactions <= mean_interactions <= cap:
        msg = (
            "`mean_interactions` must lie in [min_interactions, n_items // 2] = "
            f"[{min_interactions}, {cap}], got {mean_interactions!r}."
        )
        raise InvalidArgumentError(msg)
    for value, label in (
        (popularity_exponent, "popularity_exponent"),
        (activity_exponent, "activity_exponent"),
        (preference_strength, "preference_strength"),
    ):
        if not np.isfinite(value) or value < 0:
            msg = f"`{label}` must be a finite number ≥ 0, got {value!r}."
            raise InvalidArgumentError(msg)

    rng = np.random.default_rng(seed)
    counts = _activity_counts(
        rng, n_users, mean_interactions, min_interactions, cap, activity_exponent
    )
    log_pop = -popularity_exponent * np.log1p(rng.permutation(n_items))
    scale = n_factors**-0.25  # entries N(0, k^-1/2) ⇒ u·v has variance 1
    user_f = rng.normal(0.0, scale, size=(n_users, n_factors))
    item_f = rng.normal(0.0, scale, size=(n_items, n_factors))
    logits = log_pop[None, :] + preference_strength * (user_f @ item_f.T)
    logits += rng.gumbel(size=logits.shape)
    order = np.argsort(-logits, axis=1, kind="stable")
    rows, cols = np.nonzero(np.arange(n_items)[None, :] < counts[:, None])
    users = rows.astype(np.int64)
    items = order[rows, cols].astype(np.int64)

    train, validation, test = split_per_user(
        users, items, ratios=ratios, seed=seed if split_seed is None else split_seed
    )
    return InteractionData(
        name=name,
        n_users=n_users,
        n_items=n_items,
        train=train,
        validation=validation,
        test=test,
        user_ids=np.arange(n_users, dtype=np.int64),
        item_ids=np.arange(n_items, dtype=np.int64),
    )
