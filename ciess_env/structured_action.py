"""A structured action space: a few numbers per step → a mask that spends the budget exactly.

The env's own action sets one size per user and item (``N`` numbers). A search there must
learn to meet the budget, and per-entity noise scrambles the mask (the search diagnosis of
issue 29). :class:`StructuredAction` offers instead the four-number family that the structured
search of :mod:`agents.structured` searches (and that beats ES on ML-100K at 90 and 95 %):

* ``item_ratio`` ρ ∈ [−3, 3]: log2 of the items' mean size over the users' mean size; it fixes
  the items' share of the kept-size cap ``C = ⌊(1 − c)·d_max·N⌋`` (ρ = 0 is ES's split).
* ``user_power`` / ``item_power`` α ∈ [−1, 1.5]: within a side ``d ∝ f^α``, ``f`` the training
  frequency (MDE's rule per side; 0 is equal sizes, negative favours rare entities).
* ``floor`` φ ∈ [0, 1]: every size is at least ``d_min + ⌊φ (k − d_min)⌋``, ``k`` the side's
  mean size (1 is ES within the side). Optional (``floor=False`` fixes φ = 0).

Why this family: every member spends the budget *exactly* (each side is rounded by
:func:`~ciess_env.budget.fit_to_budget`, the rounding ES and MDE use), ES and MDE are members,
and popularity is the one signal the paper's state and MDE agree sizes should follow. It plays
the role of SCALL's action (CIKM 2024: the user/item budget split and one shape parameter per
side), whose sampled sizes only roughly meet the budget. The budget is part of the task (the
wrapper's ``c``), not a filter applied after the search.

The mapping (:func:`structured_sizes`) is the one :class:`agents.structured.StructuredSizes`
uses: the wrapper and the black-box searches share the family, so an RL agent on the wrapper and
structured TPE compare search algorithms, not search spaces.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ciess_env.budget import fit_to_budget, kept_budget
from ciess_env.checks import check_int
from ciess_env.errors import InvalidArgumentError, InvalidTypeError

__all__ = [
    "ACTION_CENTRE",
    "PARAMETER_RANGES",
    "StructuredAction",
    "item_share",
    "side_caps",
    "structured_sizes",
]

#: Ranges of the four parameters (inclusive). Powers above 1.5 or below −1 put almost every
#: entity at d_min or d_max at the paper's budgets; ρ = ±3 is an 8× size ratio.
PARAMETER_RANGES: dict[str, tuple[float, float]] = {
    "item_ratio": (-3.0, 3.0),
    "user_power": (-1.0, 1.5),
    "item_power": (-1.0, 1.5),
    "floor": (0.0, 1.0),
}

#: The parameters that action 0 maps to: ES's split with equal sizes within each side (ES's
#: mask; with both powers 0 the floor changes nothing), the floor half-way.
ACTION_CENTRE: dict[str, float] = {
    "item_ratio": 0.0,
    "user_power": 0.0,
    "item_power": 0.0,
    "floor": 0.5,
}

RewardKind = Literal["quality", "env"]


def item_share(item_ratio: float, n_users: int, n_items: int) -> float:
    """Items' share of the budget when their mean size is ``2^item_ratio`` × the users'."""
    w = n_items * 2.0 ** float(item_ratio)
    return w / (n_users + w)


def side_caps(
    item_ratio: float, *, n_users: int, n_items: int, cap: int, d_min: int, d_max: int
) -> tuple[int, int]:
    """``(users' total size, items' total size)`` for ``item_ratio``; they sum to ``cap``.

    The items' share is clipped so that both sides stay within ``[d_min, d_max]`` per entity.
    """
    share = item_share(item_ratio, n_users, n_items)
    lo = max(d_min * n_items, cap - d_max * n_users)
    hi = min(d_max * n_items, cap - d_min * n_users)
    items = min(max(round(share * cap), lo), hi)
    return cap - items, items


def _side(freq: np.ndarray, cap: int, power: float, floor: float, d_min: int, d_max: int):
    k = cap // freq.size
    smallest = d_min + math.floor(floor * (k - d_min))
    weights = np.maximum(freq, 1.0) ** power
    return fit_to_budget(weights, cap, smallest, d_max)


def structured_sizes(
    params: Mapping[str, float],
    *,
    user_freq: np.ndarray,
    item_freq: np.ndarray,
    cap: int,
    d_min: int,
    d_max: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The family's mask: ``(user_sizes, item_sizes)``, int64, summing to ``cap`` exactly.

    Args:
        params: The four parameters of :data:`PARAMETER_RANGES` (``floor`` may be left out: 0).
        user_freq: (n_users,) training interaction counts (counts below 1 count as 1).
        item_freq: (n_items,) training interaction counts.
        cap: Total kept size, ``d_min·N ≤ cap ≤ d_max·N``.
        d_min: Smallest size.
        d_max: Largest size.
    """
    user_freq = np.asarray(user_freq, dtype=np.float64).ravel()
    item_freq = np.asarray(item_freq, dtype=np.float64).ravel()
    user_cap, item_cap = side_caps(
        params["item_ratio"], n_users=user_freq.size, n_items=item_freq.size, cap=cap,
        d_min=d_min, d_max=d_max,
    )  # fmt: skip
    floor = float(params.get("floor", 0.0))
    users = _side(user_freq, user_cap, params["user_power"], floor, d_min, d_max)
    items = _side(item_freq, item_cap, params["item_power"], floor, d_min, d_max)
    return users, items


class StructuredAction(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Act with the structured family's 3–4 numbers; observe fixed-length popularity histograms.

    **Action:** ``Box(−1, 1, (4,))`` (``(3,)`` with ``floor=False``), in the order of
    :data:`PARAMETER_RANGES`; each entry maps piecewise linearly onto its range, −1 to the low
    end, 0 to :data:`ACTION_CENTRE`, 1 to the high end (values outside [−1, 1] are clipped).
    Action 0 is ES's mask, so an agent whose first actions are near 0 (an untrained Gaussian
    policy) explores around ES rather than around an arbitrary mid-range mask. Every action
    becomes the mask :func:`structured_sizes` gives at the wrapper's budget ``c``, so every
    step's mask keeps exactly ``⌊(1 − c)·d_max·N⌋`` sizes (``info["sparsity"]`` is ``c`` up to
    one size unit) and every size is in ``[d_min, d_max]``.

    **Observation:** ``Box(−1, 1, (4·G + P + 2,))``, whatever the number of users and items:
    users and items are each ranked by training frequency and cut into ``G`` equal-count
    popularity groups (rarest first); per group the mean scaled size and the mean ``2q − 1``
    (the env's columns 2 and 3, i.e. the mask applied and the quality it reached), users' sizes,
    users' qualities, items' sizes, items' qualities; then the last action (``P`` numbers, 0
    after a reset), ``2c − 1`` and the episode's progress ``2t/T − 1``. Any MLP agent reads it.

    **Reward:** ``"quality"`` (default) is ``q̄`` (``info["mean_quality_ratio"]``), the score
    selective retraining ranks masks by: at a fixed budget the memory term only rewards equal
    sizes, which is not what a search for the best mask at ``c`` should learn. ``"env"`` passes
    the env's reward through. ``info`` is the env's, plus ``"structured_params"`` (the four
    parameters applied).

    Args:
        env: An :class:`~ciess_env.env.EmbeddingSizeEnv`, possibly wrapped (e.g. by
            :class:`~ciess_env.wrappers.RecordBudgetLog`, which then logs every mask).
        c: Target sparsity in [0, 1) (paper budgets 0.8, 0.9, 0.95).
        floor: Include the floor parameter in the action (else φ = 0).
        groups: Popularity groups per side ``G`` (≥ 1). A group of a side with fewer entities
            than ``G`` may be empty; its features are 0.
        reward: ``"quality"`` or ``"env"`` (above).

    Raises:
        InvalidTypeError: if ``env`` is not a CIESS env or ``c`` is not a number.
        InvalidArgumentError: if ``c`` is outside [0, 1) or leaves less than ``d_min`` per
            entity, or on a bad ``groups`` / ``reward``.

    Examples:
        >>> import gymnasium as gym
        >>> env = StructuredAction(gym.make("CIESS-MF-Synthetic-v1", preset="tiny",
        ...     dataset_kwargs={"n_users": 30, "n_items": 20, "mean_interactions": 6}), c=0.9)
        >>> env.action_space.shape, env.observation_space.shape
        ((4,), (38,))
    """

    def __init__(
        self,
        env: gym.Env,
        c: float,
        *,
        floor: bool = True,
        groups: int = 8,
        reward: RewardKind = "quality",
    ) -> None:
        # Recorded so that gym's spec (and check_env) can rebuild the wrapped env.
        gym.utils.RecordConstructorArgs.__init__(
            self, c=c, floor=floor, groups=groups, reward=reward
        )
        gym.Wrapper.__init__(self, env)
        base = env.unwrapped
        for attr in ("n_users", "n_items", "d_min", "d_max", "data", "sizes_to_action"):
            if not hasattr(base, attr):
                msg = f"`env` must be an EmbeddingSizeEnv (or wrap one), got {type(base).__name__}."
                raise InvalidTypeError(msg)
        if isinstance(c, bool) or not isinstance(c, (int, float, np.integer, np.floating)):
            msg = f"`c` (target sparsity) must be a number in [0, 1), got {c!r}."
            raise InvalidTypeError(msg)
        check_int(groups, "groups", minimum=1)
        if reward not in ("quality", "env"):
            msg = f"`reward` must be 'quality' or 'env', got {reward!r}."
            raise InvalidArgumentError(msg)
        self.c = float(c)
        self.n_users, self.n_items = int(base.n_users), int(base.n_items)
        self.d_min, self.d_max = int(base.d_min), int(base.d_max)
        n = self.n_users + self.n_items
        #: Total kept size of every mask (the budget's cap).
        self.cap = kept_budget(self.c, n, self.d_max)
        if self.cap < self.d_min * n:
            msg = (
                f"`c` must leave at least d_min={self.d_min} per entity, got c={c} "
                f"(cap {self.cap} < {self.d_min} × {n})."
            )
            raise InvalidArgumentError(msg)
        self.user_freq = np.asarray(base.data.user_freq, dtype=np.float64)
        self.item_freq = np.asarray(base.data.item_freq, dtype=np.float64)
        self.names = [k for k in PARAMETER_RANGES if floor or k != "floor"]
        self.groups = int(groups)
        self.reward_kind = reward
        self._labels = np.concatenate(
            [_group_labels(self.user_freq, self.groups),
             _group_labels(self.item_freq, self.groups) + self.groups]
        )  # fmt: skip
        self._counts = np.bincount(self._labels, minlength=2 * self.groups).astype(np.float64)
        self._max_steps = int(getattr(base, "max_episode_steps", 1))
        self._last = np.zeros(len(self.names), dtype=np.float32)
        self._t = 0
        p = len(self.names)
        self.action_space = spaces.Box(-1.0, 1.0, (p,), np.float32)
        self.observation_space = spaces.Box(-1.0, 1.0, (4 * self.groups + p + 2,), np.float32)

    # ------------------------------------------------------------ mappings
    def action_to_params(self, action: Any) -> dict[str, float]:
        """The family's parameters of ``action`` (clipped to [−1, 1]); ``floor`` 0 if absent.

        Raises:
            InvalidArgumentError: on a wrong shape or a NaN/inf entry.
        """
        a = np.asarray(action, dtype=np.float64)
        p = len(self.names)
        if a.shape not in ((p,), (1, p)):
            msg = f"`action` must have shape ({p},), one number per parameter, got {a.shape}."
            raise InvalidArgumentError(msg)
        a = a.reshape(p)
        if not np.all(np.isfinite(a)):
            msg = f"`action` must be finite, got {a.tolist()}."
            raise InvalidArgumentError(msg)
        a = np.clip(a, -1.0, 1.0)
        params = {"floor": 0.0}
        for name, x in zip(self.names, a, strict=True):
            lo, hi = PARAMETER_RANGES[name]
            mid = ACTION_CENTRE[name]
            params[name] = float(mid + x * (mid - lo if x < 0 else hi - mid))
        return params

    def params_to_action(self, params: Mapping[str, float]) -> np.ndarray:
        """The action that :meth:`action_to_params` maps to ``params`` (clipped to the ranges)."""
        out = []
        for name in self.names:
            lo, hi = PARAMETER_RANGES[name]
            mid, value = ACTION_CENTRE[name], float(params.get(name, 0.0))
            out.append((value - mid) / (mid - lo if value < mid else hi - mid))
        return np.clip(np.asarray(out, dtype=np.float32), -1.0, 1.0)

    def sizes(self, action: Any) -> tuple[np.ndarray, np.ndarray]:
        """The mask ``(user_sizes, item_sizes)`` that ``action`` applies (sums to :attr:`cap`)."""
        return structured_sizes(
            self.action_to_params(action), user_freq=self.user_freq, item_freq=self.item_freq,
            cap=self.cap, d_min=self.d_min, d_max=self.d_max,
        )  # fmt: skip

    # ------------------------------------------------------------- gym API
    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset the env; the observation summarises its full-size start."""
        obs, info = self.env.reset(**kwargs)
        self._t = 0
        self._last = np.zeros(len(self.names), dtype=np.float32)
        return self._observation(obs), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply the action's mask (exactly the budget) through the wrapped env."""
        params = self.action_to_params(action)
        users, items = structured_sizes(
            params, user_freq=self.user_freq, item_freq=self.item_freq, cap=self.cap,
            d_min=self.d_min, d_max=self.d_max,
        )  # fmt: skip
        obs, env_reward, terminated, truncated, info = self.env.step(
            self.env.unwrapped.sizes_to_action(users, items)
        )
        self._t += 1
        self._last = self.params_to_action(params)
        info = dict(info, structured_params=params)
        reward = float(info["mean_quality_ratio"]) if self.reward_kind == "quality" else env_reward
        return self._observation(obs), float(reward), terminated, truncated, info

    def _observation(self, env_obs: np.ndarray) -> np.ndarray:
        rows = np.asarray(env_obs, dtype=np.float64).reshape(self.n_users + self.n_items, -1)
        g2 = 2 * self.groups
        with np.errstate(invalid="ignore", divide="ignore"):
            size = np.bincount(self._labels, weights=rows[:, 2], minlength=g2) / self._counts
            quality = np.bincount(self._labels, weights=rows[:, 3], minlength=g2) / self._counts
        size, quality = np.nan_to_num(size), np.nan_to_num(quality)
        g = self.groups
        progress = 2.0 * min(self._t, self._max_steps) / max(self._max_steps, 1) - 1.0
        out = np.concatenate(
            [size[:g], quality[:g], size[g:], quality[g:], self._last, [2 * self.c - 1, progress]]
        )
        return np.clip(out, -1.0, 1.0).astype(np.float32)


def _group_labels(freq: np.ndarray, groups: int) -> np.ndarray:
    """Popularity group of each entity: rank by frequency (stable), ``G`` equal-count groups."""
    n = freq.size
    ranks = np.empty(n, dtype=np.int64)
    ranks[np.argsort(freq, kind="stable")] = np.arange(n)
    return (ranks * groups) // max(n, 1)
