"""Heuristic size assignments that meet a memory budget exactly (paper §6 baselines).

Each baseline fixes one size per user and item for a target sparsity ``c``; the kept-parameter
cap is ``(1 − c) · d_max · (|U| + |V|)`` (paper §1.1, Eq. 5). All three spend the budget
*exactly*: the total kept size is the cap rounded down, so it never exceeds the cap and falls
short of it by less than one size unit. That makes the comparison with CIESS fair — a baseline
that leaves part of its budget unused would be handicapped.

* :class:`EqualSize` (ES): everyone gets ``k = ⌊cap / N⌋``; the remainder ``cap − kN`` entities,
  spread evenly over the index, get ``k + 1``.
* :class:`MixedRandom` (MR): sizes drawn uniformly, then scaled so that the clipped sizes sum to
  the cap (for 80 % sparsity at ``d_max = 128`` they are uniform on about ``[1, 51]``). The paper
  does not say how MR's range is chosen; scaling a uniform draw is the natural reading.
* :class:`PopularityProportional` (MDE, Ginart et al. 2021, "Mixed Dimension Embeddings"):
  ``d ∝ f^α`` with training frequency ``f``, scaled to the budget and clipped to
  ``[d_min, d_max]``. Default ``α = 0.3``, the temperature of the authors' DLRM implementation
  (``--md-temperature 0.3``). Users and items share one scale: every interaction counts once for
  its user and once for its item, so raw counts are comparable across sides.

Scaled sizes are made integral with a vectorised largest-remainder rule: floor everything, then
add one to the entities with the largest fractional parts until the total equals the cap
(:func:`ciess_env.budget.fit_to_budget`; the cap is :func:`ciess_env.budget.kept_budget`, both
re-exported here).

Every baseline also behaves like a trained SB3 model: ``predict(observation)`` returns the
[−1, 1] actions that the env maps back to exactly these sizes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ciess_env.budget import fit_to_budget, kept_budget, sparsity_of_kept
from ciess_env.errors import InvalidArgumentError
from ciess_env.spaces import sizes_to_action, validate_size_range

__all__ = [
    "EqualSize",
    "FrequencyBaseline",
    "MixedRandom",
    "PopularityProportional",
    "SizeBaseline",
    "fit_to_budget",
    "kept_budget",
]


class SizeBaseline:
    """Common part of the baselines: the budget, the sizes and an SB3-like ``predict``.

    Args:
        c: Target sparsity, e.g. 0.8, 0.9 or 0.95 (paper §4).
        n_users: Number of users.
        n_items: Number of items.
        d_min: Smallest size.
        d_max: Largest size.
        flat_actions: ``predict`` returns (N,) actions instead of (N, 1); use it for an env
            whose action space is a single (N,) Box rather than the per-entity (1,) Box.

    Raises:
        ValueError: if the budget cannot give every entity at least ``d_min``.
    """

    def __init__(
        self,
        c: float,
        *,
        n_users: int,
        n_items: int,
        d_min: int = 1,
        d_max: int = 128,
        flat_actions: bool = False,
    ) -> None:
        if n_users < 1 or n_items < 1:
            msg = f"`n_users` and `n_items` must be ≥ 1, got {n_users} and {n_items}."
            raise InvalidArgumentError(msg)
        d_min, d_max = validate_size_range(d_min, d_max)
        self.c = float(c)
        self.n_users, self.n_items = int(n_users), int(n_items)
        self.d_min, self.d_max = int(d_min), int(d_max)
        self.flat_actions = flat_actions
        self.budget = kept_budget(c, self.n_entities, self.d_max)
        if self.budget < self.d_min * self.n_entities:
            msg = (
                f"`c` must leave at least d_min={self.d_min} per entity, got c={c} "
                f"(cap {self.budget} < {self.d_min} × {self.n_entities})."
            )
            raise InvalidArgumentError(msg)
        self._sizes: np.ndarray | None = None

    @classmethod
    def from_env(cls, c: float, env: Any, *, seed: int = 0, **kwargs: Any) -> SizeBaseline:
        """The baseline for ``env`` (an ``EmbeddingSizeEnv``, possibly wrapped) at budget ``c``.

        The builder of a heuristic's :class:`~agents.registry.AgentSpec` (kind
        ``"heuristic"``), so a new heuristic is its class plus one spec. ``seed`` is for
        baselines that draw random numbers (:meth:`MixedRandom.from_env` passes it on).
        """
        base = env.unwrapped
        sizes = {"d_min": base.d_min, "d_max": base.d_max, **kwargs}  # an override wins
        return cls(c, n_users=base.n_users, n_items=base.n_items, **sizes)

    @property
    def n_entities(self) -> int:
        """``|U| + |V|``."""
        return self.n_users + self.n_items

    def _assign(self) -> np.ndarray:
        raise NotImplementedError

    def _all_sizes(self) -> np.ndarray:
        if self._sizes is None:
            self._sizes = self._assign()
            self._sizes.setflags(write=False)
        return self._sizes

    def sizes(self) -> tuple[np.ndarray, np.ndarray]:
        """The assignment: ``(user_sizes (n_users,), item_sizes (n_items,))``, int64."""
        sizes = self._all_sizes()
        return sizes[: self.n_users].copy(), sizes[self.n_users :].copy()

    @property
    def sparsity(self) -> float:
        """Achieved sparsity ``1 − Σd / (d_max · N)``, at least ``c``."""
        return sparsity_of_kept(int(self._all_sizes().sum()), self.n_entities, self.d_max)

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, None]:
        """Return the [−1, 1] actions that reproduce :meth:`sizes`, like SB3's ``predict``.

        Args:
            observation: (N, obs_dim) — the single env's observation or the per-entity vector
                env's batch; rows are users first, then items, and column 0 is the entity
                type (−1 user, +1 item), which is checked.
            state: Ignored (no recurrent state).
            episode_start: Ignored.
            deterministic: Ignored (the assignment is fixed).

        Returns:
            ``(actions, None)`` with float32 actions of shape (N, 1), or (N,) when
            ``flat_actions``.

        Raises:
            ValueError: if the observation does not have one row per user and item, in order.
        """
        obs = np.asarray(observation)
        if obs.ndim != 2 or obs.shape[0] != self.n_entities:
            msg = (
                f"`observation` must have shape ({self.n_entities}, obs_dim) (one row per user "
                f"and item), got {obs.shape}."
            )
            raise InvalidArgumentError(msg)
        if np.any(obs[: self.n_users, 0] >= 0) or np.any(obs[self.n_users :, 0] <= 0):
            msg = (
                "`observation` rows must be users (type −1) first, then items (type +1), "
                "got a different type column."
            )
            raise InvalidArgumentError(msg)
        actions = sizes_to_action(self._all_sizes(), d_min=self.d_min, d_max=self.d_max)
        return (actions if self.flat_actions else actions[:, None]), None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(c={self.c}, n_users={self.n_users}, "
            f"n_items={self.n_items}, d_min={self.d_min}, d_max={self.d_max})"
        )


class EqualSize(SizeBaseline):
    """ES: one size for everyone, ``k`` or ``k + 1`` so that the total equals the cap.

    Args:
        c: Target sparsity.
        n_users: Number of users.
        n_items: Number of items.
        d_min: Smallest size.
        d_max: Largest size.
        fill_remainder: Give ``k + 1`` to ``cap − kN`` entities (spread evenly over the index)
            so the budget is spent exactly; False gives everyone ``k`` (the paper's plain ES).
        flat_actions: See :class:`SizeBaseline`.
    """

    def __init__(
        self,
        c: float,
        *,
        n_users: int,
        n_items: int,
        d_min: int = 1,
        d_max: int = 128,
        fill_remainder: bool = True,
        flat_actions: bool = False,
    ) -> None:
        super().__init__(
            c, n_users=n_users, n_items=n_items, d_min=d_min, d_max=d_max, flat_actions=flat_actions
        )
        self.fill_remainder = fill_remainder

    def _assign(self) -> np.ndarray:
        n = self.n_entities
        k, remainder = divmod(self.budget, n)
        sizes = np.full(n, min(k, self.d_max), dtype=np.int64)
        if self.fill_remainder and remainder:
            sizes[(np.arange(remainder) * n) // remainder] += 1
        return sizes


class MixedRandom(SizeBaseline):
    """MR: uniformly random sizes, scaled so that the total equals the cap.

    Args:
        c: Target sparsity.
        n_users: Number of users.
        n_items: Number of items.
        d_min: Smallest size.
        d_max: Largest size.
        seed: Seed or generator of the uniform draw.
        flat_actions: See :class:`SizeBaseline`.
    """

    def __init__(
        self,
        c: float,
        *,
        n_users: int,
        n_items: int,
        d_min: int = 1,
        d_max: int = 128,
        seed: int | np.random.Generator | None = None,
        flat_actions: bool = False,
    ) -> None:
        super().__init__(
            c, n_users=n_users, n_items=n_items, d_min=d_min, d_max=d_max, flat_actions=flat_actions
        )
        self._rng = np.random.default_rng(seed)

    @classmethod
    def from_env(cls, c: float, env: Any, *, seed: int = 0, **kwargs: Any) -> SizeBaseline:
        """As :meth:`SizeBaseline.from_env`, drawing with ``seed``.

        (``SizeBaseline.from_env`` takes ``seed`` for the baselines that draw and passes it to
        none, so it must reach the constructor here.)
        """
        base = env.unwrapped
        settings = {"d_min": base.d_min, "d_max": base.d_max, "seed": seed, **kwargs}
        return cls(c, n_users=base.n_users, n_items=base.n_items, **settings)

    def _assign(self) -> np.ndarray:
        weights = 1.0 - self._rng.random(self.n_entities)  # in (0, 1]
        return fit_to_budget(weights, self.budget, self.d_min, self.d_max)


class FrequencyBaseline(SizeBaseline):
    """A baseline that reads the training frequencies of users and items (MDE, structured).

    Args:
        c: Target sparsity.
        user_freq: (n_users,) training interaction counts of the users.
        item_freq: (n_items,) training interaction counts of the items.
        d_min: Smallest size.
        d_max: Largest size.
        flat_actions: See :class:`SizeBaseline`.

    Raises:
        ValueError: on a NaN/inf frequency, or as :class:`SizeBaseline`.
    """

    def __init__(
        self,
        c: float,
        *,
        user_freq: np.ndarray,
        item_freq: np.ndarray,
        d_min: int = 1,
        d_max: int = 128,
        flat_actions: bool = False,
    ) -> None:
        self.user_freq = np.asarray(user_freq, dtype=np.float64).ravel()
        self.item_freq = np.asarray(item_freq, dtype=np.float64).ravel()
        super().__init__(
            c,
            n_users=self.user_freq.size,
            n_items=self.item_freq.size,
            d_min=d_min,
            d_max=d_max,
            flat_actions=flat_actions,
        )
        if not np.all(np.isfinite(np.r_[self.user_freq, self.item_freq])):
            msg = "`user_freq` and `item_freq` must be finite, got NaN or inf."
            raise InvalidArgumentError(msg)

    @classmethod
    def from_env(cls, c: float, env: Any, *, seed: int = 0, **kwargs: Any) -> SizeBaseline:
        """As :meth:`SizeBaseline.from_env`, with the env's training frequencies."""
        base = env.unwrapped
        sizes = {"d_min": base.d_min, "d_max": base.d_max, **kwargs}  # an override wins
        return cls(c, user_freq=base.data.user_freq, item_freq=base.data.item_freq, **sizes)


class PopularityProportional(FrequencyBaseline):
    """MDE-style sizes ``d ∝ f^α`` (Ginart et al. 2021), scaled to the cap and clipped.

    Args:
        c: Target sparsity.
        user_freq: (n_users,) training interaction counts of the users.
        item_freq: (n_items,) training interaction counts of the items.
        d_min: Smallest size.
        d_max: Largest size.
        alpha: Temperature ``α`` (DLRM default 0.3; 0 gives equal sizes, 1 proportional to
            frequency, a negative value favours rare entities). Counts below 1 count as 1.
        flat_actions: See :class:`SizeBaseline`.
    """

    def __init__(
        self,
        c: float,
        *,
        user_freq: np.ndarray,
        item_freq: np.ndarray,
        d_min: int = 1,
        d_max: int = 128,
        alpha: float = 0.3,
        flat_actions: bool = False,
    ) -> None:
        super().__init__(
            c,
            user_freq=user_freq,
            item_freq=item_freq,
            d_min=d_min,
            d_max=d_max,
            flat_actions=flat_actions,
        )
        self.alpha = float(alpha)

    def _assign(self) -> np.ndarray:
        freq = np.maximum(np.r_[self.user_freq, self.item_freq], 1.0)
        return fit_to_budget(freq**self.alpha, self.budget, self.d_min, self.d_max)
