"""Every user and item as its own sub-environment: the paper's per-entity MDPs for SB3.

CIESS treats each user and item as an MDP with state ``(N, 4)`` row, a scalar action (its
size) and its own reward (paper §1.2), while one recommender is retrained for all of them at
once. :class:`EntityVecEnv` presents exactly that to Stable-Baselines3: ``num_envs = N``
sub-environments with observation ``(4,)`` and action ``(1,)``, all backed by **one**
:class:`~ciess_env.env.EmbeddingSizeEnv`. A vector step calls the single env's ``step`` once,
so there is one copy of the dynamics, and off-policy algorithms (TD3, DDPG, SAC) store one
transition per entity per step, as the paper's replay buffer does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.env_util import is_wrapped
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnv,
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
)

from ciess_env.errors import (
    CallOrderError,
    InvalidArgumentError,
    InvalidIndexError,
    InvalidTypeError,
)

__all__ = ["EntityVecEnv"]


class EntityVecEnv(VecEnv):
    """One sub-environment per user and item, sharing one recommender (an SB3 ``VecEnv``).

    Sub-environment ``n`` is user ``n`` for ``n < n_users`` and item ``n − n_users`` otherwise;
    its observation is row ``n`` of the single env's ``(N, 4)`` observation (see
    :class:`~ciess_env.env.EmbeddingSizeEnv` for the columns), its action the scalar ``a_n``
    in [−1, 1] and its reward the per-entity reward ``info["entity_rewards"][n]``. Wrapped in
    :class:`~ciess_env.wrappers.DiscreteSizes` (a ``MultiDiscrete([K] * N)`` table action), each
    sub-environment's action is instead ``Discrete(K)``, the index of its candidate size.

    All sub-environments step together and end their episodes together: on the step that
    truncates the single env, every ``done`` is True, every info holds
    ``"terminal_observation"`` (that entity's last observation) and
    ``"TimeLimit.truncated" = True``, and the returned observations are those of the automatic
    reset, as SB3 expects. Per-entity infos also carry ``"size"`` (the size just applied) and
    ``"quality_ratio"`` (its q); the table-level info of the step is ``self.last_info``.

    Because the sub-environments share one env, ``set_attr`` and ``env_method`` act on it once
    whatever ``indices`` says, ``get_attr`` returns the shared value for each index, and
    ``seed`` seeds the shared env with the seed of sub-environment 0.

    Args:
        env: An :class:`~ciess_env.env.EmbeddingSizeEnv` (possibly wrapped, e.g. by
            ``gym.make``), or a registered env id. ``None`` uses ``"CIESS-LightGCN-ML1M-v1"``.
        **kwargs: With an id, passed to ``gym.make``; otherwise not allowed.

    Example:
        >>> import numpy as np
        >>> venv = EntityVecEnv("CIESS-MF-Synthetic-v1", preset="tiny",
        ...                     dataset_kwargs={"n_users": 30, "n_items": 20,
        ...                                     "mean_interactions": 6})
        >>> venv.num_envs, venv.reset().shape
        (50, (50, 4))
        >>> obs, rewards, dones, infos = venv.step(np.zeros((50, 1), dtype=np.float32))
        >>> rewards.shape, bool(dones.any())
        ((50,), False)
    """

    def __init__(self, env: gym.Env | str | None = None, **kwargs: Any) -> None:
        if env is None or isinstance(env, str):
            env = gym.make(env or "CIESS-LightGCN-ML1M-v1", **kwargs)
        elif kwargs:
            msg = f"keyword arguments are only allowed with an env id, got {sorted(kwargs)}."
            raise InvalidTypeError(msg)
        base = env.unwrapped
        for attr in ("n_users", "n_items", "n_entities"):
            if not hasattr(base, attr):
                msg = f"`env` must be an EmbeddingSizeEnv (or wrap one), got {type(base).__name__}."
                raise InvalidTypeError(msg)
        self.env = env
        self.n_users = int(base.n_users)
        self.n_items = int(base.n_items)
        self.last_info: dict[str, Any] = {}
        self._actions: np.ndarray | None = None
        super().__init__(
            num_envs=int(base.n_entities),
            observation_space=spaces.Box(-1.0, 1.0, (4,), np.float32),
            action_space=_entity_action_space(env.action_space, int(base.n_entities)),
        )

    # ------------------------------------------------------------- stepping
    def reset(self) -> VecEnvObs:
        """Reset the shared env (with sub-env 0's pending seed and options); (N, 4) obs."""
        obs, info = self.env.reset(seed=self._seeds[0], options=self._options[0] or None)
        self._reset_seeds()
        self._reset_options()
        self.last_info = info
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        """Store the (N, 1) actions (or (N,); candidate indices for a Discrete space)."""
        actions = np.asarray(actions)
        if actions.shape not in ((self.num_envs, 1), (self.num_envs,)):
            msg = (
                f"`actions` must have shape ({self.num_envs}, 1), one per user and item, "
                f"got {actions.shape}."
            )
            raise InvalidArgumentError(msg)
        self._actions = actions.reshape(self.num_envs)

    def step_wait(self) -> VecEnvStepReturn:
        """Step the shared env once; per-entity obs, rewards, dones and infos."""
        if self._actions is None:
            msg = "step_async() must be called before step_wait()."
            raise CallOrderError(msg)
        actions, self._actions = self._actions, None
        obs, _, terminated, truncated, info = self.env.step(actions)
        self.last_info = info
        rewards = np.asarray(info["entity_rewards"], dtype=np.float32)
        sizes = np.concatenate([info["user_sizes"], info["item_sizes"]])
        q = (obs[:, 3].astype(np.float64) + 1.0) / 2.0
        done = bool(terminated or truncated)
        dones = np.full(self.num_envs, done, dtype=bool)
        infos: list[dict[str, Any]] = [
            {"size": int(d), "quality_ratio": float(qn)} for d, qn in zip(sizes, q, strict=True)
        ]
        if done:
            for n, item in enumerate(infos):
                item["terminal_observation"] = obs[n]
                item["TimeLimit.truncated"] = bool(truncated and not terminated)
            obs = self.reset()
        return obs, rewards, dones, infos

    def close(self) -> None:
        """Close the shared env."""
        self.env.close()

    # ---------------------------------------------------------- attributes
    def _indices(self, indices: VecEnvIndices) -> list[int]:
        out = list(self._get_indices(indices))
        for i in out:
            if not 0 <= int(i) < self.num_envs:
                msg = f"`indices` must lie in [0, {self.num_envs}), got {i!r}."
                raise InvalidIndexError(msg)
        return out

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The shared env's attribute, once per requested index."""
        value = self.env.get_wrapper_attr(attr_name)
        return [value for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set the attribute on the shared env (every sub-environment sees it)."""
        self._indices(indices)
        self.env.set_wrapper_attr(attr_name, value)

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        """Call the method once on the shared env; its result is repeated per index."""
        idx = self._indices(indices)
        result = self.env.get_wrapper_attr(method_name)(*method_args, **method_kwargs)
        return [result for _ in idx]

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        """Whether the shared env is wrapped by ``wrapper_class``, once per index."""
        wrapped = is_wrapped(self.env, wrapper_class)
        return [wrapped for _ in self._indices(indices)]

    # -------------------------------------------------------------- render
    def get_images(self) -> Sequence[np.ndarray | None]:
        """The shared env's frame for every sub-environment (the same array object)."""
        image = self.env.render() if self.render_mode == "rgb_array" else None
        return [image] * self.num_envs

    def render(self, mode: str | None = None) -> np.ndarray | str | None:
        """Render the shared env once (tiling N copies of one frame would be pointless)."""
        if mode is not None and mode != self.render_mode:
            msg = f"`mode` must be None or the render_mode {self.render_mode!r}, got {mode!r}."
            raise InvalidArgumentError(msg)
        return self.env.render()


def _entity_action_space(table: spaces.Space, n: int) -> spaces.Space:
    """One entity's action space: ``Box(-1, 1, (1,))``, or ``Discrete(K)``.

    ``Discrete(K)`` for a wrapper such as :class:`~ciess_env.wrappers.DiscreteSizes`, whose
    table action is ``MultiDiscrete([K] * N)``.
    """
    if isinstance(table, spaces.MultiDiscrete):
        nvec = np.asarray(table.nvec)
        if nvec.shape != (n,) or np.any(nvec != nvec[0]):
            msg = (
                f"a MultiDiscrete action space must have {n} equal entries (one per user and "
                f"item), got nvec of shape {nvec.shape}."
            )
            raise InvalidArgumentError(msg)
        return spaces.Discrete(int(nvec[0]))
    return spaces.Box(-1.0, 1.0, (1,), np.float32)
