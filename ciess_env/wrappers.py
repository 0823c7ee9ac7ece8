"""Gymnasium wrappers around :class:`~ciess_env.env.EmbeddingSizeEnv`.

The env is a pure MDP; what a search needs on top of it is opt-in here:
:class:`RecordBudgetLog` records the masks tried (in the spirit of Gymnasium's
``RecordEpisodeStatistics``), :class:`DiscreteSizes` offers a few candidate sizes instead of a
continuous action.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ciess_env.budget import PAPER_BUDGETS
from ciess_env.budget_log import BudgetLog
from ciess_env.errors import InvalidArgumentError, InvalidTypeError

__all__ = ["ESAPN_SIZES", "DiscreteSizes", "RecordBudgetLog"]


class RecordBudgetLog(gym.Wrapper):
    """Record every step's sizes, quality and reward into a :class:`BudgetLog`.

    Selective retraining reads :attr:`budget_log`. The log is bounded by default: it keeps the
    ``top_l`` best masks (by mean quality ratio q̄) for each of ``budgets`` plus a scalar
    summary of every step, so a long search on a large table stays small; ``budgets=None``
    keeps every mask. Episodes are counted from this wrapper's first ``reset``.

    Args:
        env: An :class:`~ciess_env.env.EmbeddingSizeEnv`, possibly wrapped (e.g. by ``gym.make``
            or :class:`DiscreteSizes`; its info reports the sizes applied).
        budgets: Target sparsities whose top masks are kept; ``None``: keep every mask.
        top_l: Masks kept per budget (the authors' code retrains 3).
        log: Record into this log instead of a new one (e.g. to continue a search).

    Examples:
        >>> import gymnasium as gym
        >>> env = RecordBudgetLog(gym.make("CIESS-MF-Synthetic-v1", preset="tiny",
        ...     dataset_kwargs={"n_users": 30, "n_items": 20, "mean_interactions": 6}))
        >>> _ = env.reset(seed=0)
        >>> _ = env.step(env.action_space.sample())
        >>> len(env.budget_log.steps)
        1
    """

    def __init__(
        self,
        env: gym.Env,
        *,
        budgets: Sequence[float] | None = PAPER_BUDGETS,
        top_l: int = 3,
        log: BudgetLog | None = None,
    ) -> None:
        super().__init__(env)
        base = env.unwrapped
        for attr in ("n_users", "n_items", "d_max"):
            if not hasattr(base, attr):
                msg = f"`env` must be an EmbeddingSizeEnv (or wrap one), got {type(base).__name__}."
                raise InvalidTypeError(msg)
        if log is None:
            log = BudgetLog(
                base.n_users, base.n_items, d_max=base.d_max, budgets=budgets, top_l=top_l
            )
        elif (log.n_users, log.n_items) != (base.n_users, base.n_items):
            msg = (
                f"`log` must have the env's shape ({base.n_users} users, {base.n_items} items), "
                f"got {log.n_users} users and {log.n_items} items."
            )
            raise InvalidArgumentError(msg)
        self.budget_log = log
        self._episode = max((s.episode for s in log.steps), default=-1)
        self._t = 0

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        """Reset the env and start a new episode in the log."""
        obs, info = self.env.reset(**kwargs)
        self._episode += 1
        self._t = 0
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Step the env and record the step (sizes and metrics from its info)."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._t += 1
        self.budget_log.record(
            episode=self._episode, step=self._t, user_sizes=info["user_sizes"],
            item_sizes=info["item_sizes"], sparsity=info["sparsity"],
            mean_quality=info["mean_quality_ratio"], recall_20=info["recall@20"],
            ndcg_20=info["ndcg@20"], reward=float(reward),
        )  # fmt: skip
        return obs, reward, terminated, truncated, info


#: Six candidate sizes, as ESAPN (Liu et al., SIGIR 2020) has six choices (CIESS paper §6).
#: The exact set is ours: powers of two from 2 to d_max = 128 with 32 left out to stay at six,
#: so every paper budget (mean size 25.6 / 12.8 / 6.4 at 80 / 90 / 95 %) lies between choices.
ESAPN_SIZES: tuple[int, ...] = (2, 4, 8, 16, 64, 128)


class DiscreteSizes(gym.ActionWrapper):
    """Every user and item picks one of a few candidate sizes (an ESAPN-style action space).

    The action is ``MultiDiscrete([K] * N)``: entry ``n`` is the index of entity ``n``'s size in
    ``sizes`` (users first, then items). It is turned into the wrapped env's Box action with the
    env's own ``sizes_to_action``, so the dynamics and rewards are unchanged.
    :class:`~ciess_env.vector.EntityVecEnv` splits it into ``N`` sub-environments with a
    ``Discrete(K)`` action each, for SB3's discrete algorithms (DQN, PPO).

    Args:
        env: An :class:`~ciess_env.env.EmbeddingSizeEnv`, possibly wrapped.
        sizes: Strictly increasing candidate sizes in ``[d_min, d_max]``.

    Raises:
        ValueError: if ``sizes`` is empty, not strictly increasing integers, or out of range.
    """

    def __init__(self, env: gym.Env, sizes: Sequence[int] = ESAPN_SIZES) -> None:
        super().__init__(env)
        base = env.unwrapped
        for attr in ("n_users", "n_items", "d_min", "d_max", "sizes_to_action"):
            if not hasattr(base, attr):
                msg = f"`env` must be an EmbeddingSizeEnv (or wrap one), got {type(base).__name__}."
                raise InvalidTypeError(msg)
        arr = np.asarray(sizes)
        if (
            arr.ndim != 1
            or arr.size == 0
            or not np.issubdtype(arr.dtype, np.integer)
            or np.any(np.diff(arr) <= 0)
        ):
            msg = f"`sizes` must be strictly increasing integers, got {list(sizes)!r}."
            raise InvalidArgumentError(msg)
        if arr[0] < base.d_min or arr[-1] > base.d_max:
            msg = (
                f"`sizes` must lie in [d_min, d_max] = [{base.d_min}, {base.d_max}], "
                f"got {arr.tolist()}."
            )
            raise InvalidArgumentError(msg)
        self.sizes = arr.astype(np.int64)
        self.sizes.setflags(write=False)
        self._n_users = int(base.n_users)
        n = self._n_users + int(base.n_items)
        self.action_space = spaces.MultiDiscrete(np.full(n, arr.size, dtype=np.int64))

    def action(self, action: np.ndarray) -> np.ndarray:
        """Candidate indices (N,) (or (N, 1)) → the wrapped env's [−1, 1] Box action.

        Raises:
            ValueError: on a wrong shape, a non-integer value or an index out of range.
        """
        a = np.asarray(action)
        n, k = self.action_space.shape[0], self.sizes.size
        if a.shape not in ((n,), (n, 1)):
            msg = f"`action` must have shape ({n},), one candidate index per entity, got {a.shape}."
            raise InvalidArgumentError(msg)
        a = a.reshape(n)
        if a.dtype.kind not in "iu" and not (
            a.dtype.kind == "f" and np.all(np.isfinite(a)) and np.all(a == np.round(a))
        ):
            msg = f"`action` must hold integer candidate indices, got dtype {a.dtype}."
            raise InvalidArgumentError(msg)
        idx = a.astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= k):
            msg = (
                f"`action` indices must lie in [0, {k}), got values in [{idx.min()}, {idx.max()}]."
            )
            raise InvalidArgumentError(msg)
        sizes = self.sizes[idx]
        return self.env.unwrapped.sizes_to_action(sizes[: self._n_users], sizes[self._n_users :])
