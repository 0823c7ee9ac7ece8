"""Every user and item as its own sub-environment: the paper's per-entity MDPs for SB3.

CIESS treats each user and item as an MDP with state ``(N, 4)`` row, a scalar action (its
size) and its own reward (paper §1.2), while one recommender is retrained for all of them at
once. :class:`EntityVecEnv` presents exactly that to Stable-Baselines3: ``num_envs = N``
sub-environments with observation ``(4,)`` and action ``(1,)``, all backed by **one**
:class:`~ciess_env.env.EmbeddingSizeEnv`. It is a thin SB3 face on
:class:`~ciess_env.entity_vector.EntityVectorEnv` (the Gymnasium ``VectorEnv`` of the same
view), so the per-entity split lives in one place; off-policy algorithms (TD3, DDPG, SAC) store
one transition per entity per step, as the paper's replay buffer does. This is the only module
that imports SB3.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.env_util import is_wrapped
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnv,
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
)

from ciess_env.entity_vector import EntityVectorEnv
from ciess_env.errors import CallOrderError, InvalidArgumentError, InvalidIndexError

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

    The spaces, the action check and the per-entity split of a step are those of
    :attr:`vector`, a :class:`~ciess_env.entity_vector.EntityVectorEnv` with autoreset
    disabled; use that class directly for Gymnasium-style (cleanrl, TorchRL) code.

    Args:
        env: An :class:`~ciess_env.env.EmbeddingSizeEnv` (possibly wrapped, e.g. by
            ``gym.make``), or a registered env id. ``None`` uses ``"CIESS-LightGCN-ML1M-v1"``.
        **kwargs: With an id, passed to ``gym.make``; otherwise not allowed.

    Examples:
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
        #: The Gymnasium per-entity vector env this one steps (autoreset here, SB3's way).
        self.vector = EntityVectorEnv(env, autoreset_mode="disabled", **kwargs)
        self.env = self.vector.env
        self.n_users = self.vector.n_users
        self.n_items = self.vector.n_items
        self._actions: np.ndarray | None = None
        super().__init__(
            num_envs=self.vector.num_envs,
            observation_space=self.vector.single_observation_space,
            action_space=self.vector.single_action_space,
        )

    def drop_pending_seeds(self) -> None:
        """Forget seeds set with :meth:`seed` that the next reset would apply.

        SB3's ``load`` reseeds through ``set_random_seed``, which leaves such a seed behind; a
        restored search drops it so that its next automatic reset does not reseed the env's
        ``np_random`` (:class:`agents.experiments.checkpoint.SearchRun`).
        """
        self._reset_seeds()

    @property
    def last_info(self) -> dict[str, Any]:
        """The table-level info of the last reset or step."""
        return self.vector.last_info

    # ------------------------------------------------------------- stepping
    def reset(self) -> VecEnvObs:
        """Reset the shared env (with sub-env 0's pending seed and options); (N, 4) obs."""
        obs, _ = self.vector.reset(seed=self._seeds[0], options=self._options[0] or None)
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        """Store the (N, 1) actions (or (N,); candidate indices for a Discrete space)."""
        self._actions = self.vector.check_actions(actions)

    def step_wait(self) -> VecEnvStepReturn:
        """Step the shared env once; per-entity obs, rewards, dones and infos."""
        if self._actions is None:
            msg = "step_async() must be called before step_wait()."
            raise CallOrderError(msg)
        actions, self._actions = self._actions, None
        obs, rewards, terminations, truncations, vinfo = self.vector.step(actions)
        infos: list[dict[str, Any]] = [
            {"size": int(d), "quality_ratio": float(qn)}
            for d, qn in zip(vinfo["size"], vinfo["quality_ratio"], strict=True)
        ]
        terminated, truncated = bool(terminations[0]), bool(truncations[0])
        dones = terminations | truncations
        if terminated or truncated:
            for n, item in enumerate(infos):
                item["terminal_observation"] = obs[n]
                item["TimeLimit.truncated"] = truncated and not terminated
            obs = self.reset()
        return obs, rewards.astype(np.float32), dones, infos

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
