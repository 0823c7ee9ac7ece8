"""Gymnasium wrappers around :class:`~ciess_env.env.EmbeddingSizeEnv`."""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ciess_env.errors import InvalidArgumentError, InvalidTypeError

__all__ = ["ESAPN_SIZES", "DiscreteSizes"]

#: Six candidate sizes, as ESAPN (Liu et al., SIGIR 2020) has six choices (CIESS paper §6).
#: The exact set is ours: powers of two from 2 to d_max = 128 with 32 left out to stay at six,
#: so every paper budget (mean size 25.6 / 12.8 / 6.4 at 80 / 90 / 95 %) lies between choices.
ESAPN_SIZES: tuple[int, ...] = (2, 4, 8, 16, 64, 128)


class DiscreteSizes(gym.ActionWrapper):
    """Every user and item picks one of a few candidate sizes (an ESAPN-style action space).

    The action is ``MultiDiscrete([K] * N)``: entry ``n`` is the index of entity ``n``'s size in
    ``sizes`` (users first, then items). It is turned into the wrapped env's Box action with the
    env's own ``sizes_to_action``, so the dynamics, rewards and budget log are unchanged.
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
