"""Every user and item as its own sub-environment, as a Gymnasium ``VectorEnv``.

CIESS treats each user and item as an MDP with a ``(4,)`` state, a scalar action (its size)
and its own reward (paper §1.2), while one recommender is retrained for all of them at once.
:class:`EntityVectorEnv` is that view for code written against ``gymnasium.vector.VectorEnv``
(cleanrl-style scripts, TorchRL's Gym wrappers): ``num_envs = N`` sub-environments backed by
**one** :class:`~ciess_env.env.EmbeddingSizeEnv`, stepped once per vector step, so there is one
copy of the dynamics. :class:`ciess_env.vector.EntityVecEnv` (the Stable-Baselines3 ``VecEnv``)
is built on it. Only gymnasium is imported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from ciess_env.errors import CallOrderError, InvalidArgumentError, InvalidTypeError

__all__ = ["EntityVectorEnv"]

#: The id used when no env is given.
DEFAULT_ENV_ID = "CIESS-LightGCN-ML1M-v1"


class EntityVectorEnv(VectorEnv):
    """One sub-environment per user and item, sharing one recommender (a Gymnasium ``VectorEnv``).

    Sub-environment ``n`` is user ``n`` for ``n < n_users`` and item ``n − n_users`` otherwise.

    | | single (one entity) | batched (``N`` entities) |
    |---|---|---|
    | observation | ``Box(-1, 1, (4,), float32)``: row ``n`` of the env's observation | ``(N, 4)`` |
    | action | ``Box(-1, 1, (1,), float32)``: the scalar ``a_n`` | ``(N, 1)`` (``(N,)`` too) |
    | action, under :class:`~ciess_env.wrappers.DiscreteSizes` | ``Discrete(K)`` | ``(N,)`` |
    | reward | ``info["entity_rewards"][n]`` of the env's step | ``(N,)`` float64 |

    The infos follow Gymnasium's vector format (``key`` → ``(N,)`` array plus a ``_key``
    mask): ``"size"`` (the size of each entity now, int64) and ``"quality_ratio"`` (its ``q``,
    float64). The table-level info of the last reset or step (recall, sparsity, ...) is
    :attr:`last_info`.

    **Episodes.** All sub-environments share one episode: they are truncated together on step
    ``max_episode_steps`` (``terminated`` is always False) and reset together. Autoreset follows
    ``autoreset_mode`` (https://farama.org/Vector-Autoreset-Mode), as in ``SyncVectorEnv``:

    * ``"next_step"`` (Gymnasium's default): the step after the truncating one ignores its
      actions, resets the env and returns the reset observation with reward 0 and
      ``terminated = truncated = False``; do not store that transition.
    * ``"same_step"``: the truncating step resets at once and returns the reset observation;
      the last observation of each entity is ``info["final_obs"][n]`` and the step's infos are
      ``info["final_info"]``.
    * ``"disabled"``: call :meth:`reset` yourself; stepping an ended episode raises
      ``RuntimeError`` (also when ``gym.make(..., max_episode_steps=T)`` shortened it).

    **Seeding.** ``reset(seed=s)`` resets the shared env with ``s``; a list of ``N`` seeds uses
    its first entry (there is one random stream), so both forms are reproducible.
    ``options["reset_mask"]`` must select every sub-environment or be left out.

    **Memory.** A transition of one entity is ``4 + 4 + 1`` floats (obs, next obs, action), so a
    replay buffer of ``B`` entity transitions takes about ``36·B`` bytes: the paper's 10⁶ is
    36 MB, while one table-level transition of ML-1M (N = 9,746) alone is 351 KB.

    Args:
        env: An :class:`~ciess_env.env.EmbeddingSizeEnv` (possibly wrapped, e.g. by
            ``gym.make`` or :class:`~ciess_env.wrappers.DiscreteSizes`), or a registered env id.
            ``None`` uses ``"CIESS-LightGCN-ML1M-v1"``.
        autoreset_mode: ``"next_step"``, ``"same_step"`` or ``"disabled"`` (or the
            ``gymnasium.vector.AutoresetMode``).
        **kwargs: With an id, passed to ``gym.make``; otherwise not allowed.

    Raises:
        TypeError: if ``env`` is not an EmbeddingSizeEnv or kwargs come with an env instance.
        ValueError: on an unknown ``autoreset_mode``.

    Examples:
        >>> import numpy as np
        >>> envs = EntityVectorEnv("CIESS-MF-Synthetic-v1", preset="tiny",
        ...                        dataset_kwargs={"n_users": 30, "n_items": 20,
        ...                                        "mean_interactions": 6})
        >>> envs.num_envs, envs.single_observation_space.shape, envs.single_action_space.shape
        (50, (4,), (1,))
        >>> obs, infos = envs.reset(seed=0)
        >>> obs, rewards, terminations, truncations, infos = envs.step(envs.action_space.sample())
        >>> obs.shape, rewards.shape, infos["size"].shape, bool(truncations.any())
        ((50, 4), (50,), (50,), False)
    """

    def __init__(
        self,
        env: gym.Env | str | None = None,
        *,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        **kwargs: Any,
    ) -> None:
        self.autoreset_mode = _autoreset_mode(autoreset_mode)
        self.env = _shared_env(env, kwargs)
        base = self.env.unwrapped
        self.n_users = int(base.n_users)
        self.n_items = int(base.n_items)
        self.num_envs = int(base.n_entities)
        self.single_observation_space = spaces.Box(-1.0, 1.0, (4,), np.float32)
        self.single_action_space = _entity_action_space(self.env.action_space, self.num_envs)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.metadata = {
            "autoreset_mode": self.autoreset_mode,
            "render_modes": list(self.env.metadata.get("render_modes", [])),
        }
        self.render_mode = self.env.render_mode
        #: The table-level info of the last reset or step (see EmbeddingSizeEnv's docstring).
        self.last_info: dict[str, Any] = {}
        self._needs_reset = False  # the last step ended the episode (next_step, disabled)

    # ------------------------------------------------------------- stepping
    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset the shared env (all sub-environments); ``(N, 4)`` obs and per-entity infos."""
        if seed is not None and not isinstance(seed, (int, np.integer)):
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                msg = (
                    f"`seed` must be an int, None or a list of {self.num_envs} seeds (one per "
                    f"sub-environment), got a list of {len(seeds)}."
                )
                raise InvalidArgumentError(msg)
            seed = seeds[0]
        options = _without_full_reset_mask(options, self.num_envs)
        obs, info = self.env.reset(seed=None if seed is None else int(seed), options=options)
        self._needs_reset = False
        self.last_info = info
        obs = self._rows(obs)
        return obs, self._entity_infos(info, obs)

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step the shared env once; per-entity obs, rewards, terminations, truncations, infos.

        Raises:
            ValueError: on actions of the wrong shape (see :meth:`check_actions`).
            RuntimeError: in ``"disabled"`` mode, when the episode ended and was not reset.
        """
        actions = self.check_actions(actions)
        n = self.num_envs
        if self._needs_reset and self.autoreset_mode == AutoresetMode.DISABLED:
            msg = (
                "the episode ended at the last step and autoreset_mode is 'disabled': call "
                "reset() before stepping again."
            )
            raise CallOrderError(msg)
        if self._needs_reset:  # next_step autoreset: this step only resets
            obs, infos = self.reset()
            false = np.zeros(n, dtype=np.bool_)
            return obs, np.zeros(n, dtype=np.float64), false, false.copy(), infos
        obs, _, terminated, truncated, info = self.env.step(actions)
        self.last_info = info
        obs = self._rows(obs)
        rewards = np.asarray(info["entity_rewards"], dtype=np.float64)
        terminations = np.full(n, bool(terminated), dtype=np.bool_)
        truncations = np.full(n, bool(truncated), dtype=np.bool_)
        infos = self._entity_infos(info, obs)
        if terminated or truncated:
            if self.autoreset_mode == AutoresetMode.SAME_STEP:
                final_obs = np.empty(n, dtype=object)
                final_obs[:] = list(obs)  # Gymnasium's format: one array per sub-environment
                step_infos, step_info = infos, info
                obs, infos = self.reset()
                self.last_info = step_info  # the step's table-level info, as in step()
                infos.update(
                    final_obs=final_obs, _final_obs=np.ones(n, dtype=np.bool_),
                    final_info=step_infos, _final_info=np.ones(n, dtype=np.bool_),
                )  # fmt: skip
            else:
                self._needs_reset = True
        return obs, rewards, terminations, truncations, infos

    def check_actions(self, actions: np.ndarray) -> np.ndarray:
        """The actions as ``(N,)``: one per user and item, ``(N, 1)`` or ``(N,)``.

        Raises:
            ValueError: on any other shape.
        """
        actions = np.asarray(actions)
        if actions.shape not in ((self.num_envs, 1), (self.num_envs,)):
            msg = (
                f"`actions` must have shape ({self.num_envs}, 1), one per user and item, "
                f"got {actions.shape}."
            )
            raise InvalidArgumentError(msg)
        return actions.reshape(self.num_envs)

    def _rows(self, obs: np.ndarray) -> np.ndarray:
        """The ``(N, 4)`` rows (also from a flattened table observation)."""
        return np.asarray(obs, dtype=np.float32).reshape(self.num_envs, 4)

    def _entity_infos(self, info: dict[str, Any], obs: np.ndarray) -> dict[str, Any]:
        """Gymnasium vector infos: each entity's size and quality ratio, with masks."""
        sizes = np.concatenate([info["user_sizes"], info["item_sizes"]]).astype(np.int64)
        q = (obs[:, 3].astype(np.float64) + 1.0) / 2.0
        every = np.ones(self.num_envs, dtype=np.bool_)
        return {"size": sizes, "_size": every, "quality_ratio": q, "_quality_ratio": every.copy()}

    # ---------------------------------------------------------- attributes
    def get_attr(self, name: str) -> tuple[Any, ...]:
        """The shared env's attribute, once per sub-environment (as ``SyncVectorEnv``)."""
        return (self.env.get_wrapper_attr(name),) * self.num_envs

    def set_attr(self, name: str, values: Any) -> None:
        """Set the attribute on the shared env, which every sub-environment sees.

        Raises:
            ValueError: for a list of per-sub-environment values that are not all equal.
        """
        if isinstance(values, (list, tuple)) and len(values) == self.num_envs:
            if any(v != values[0] for v in values[1:]):
                msg = (
                    f"`values` must be one value (or {self.num_envs} equal ones): the "
                    f"sub-environments share one env, got differing values for {name!r}."
                )
                raise InvalidArgumentError(msg)
            values = values[0]
        self.env.set_wrapper_attr(name, values)

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Call the method once on the shared env; its result is repeated per sub-environment."""
        attr = self.env.get_wrapper_attr(name)
        result = attr(*args, **kwargs) if callable(attr) else attr
        return (result,) * self.num_envs

    def render(self) -> tuple[Any, ...] | None:
        """The shared env's frame, once per sub-environment (the same object)."""
        frame = self.env.render()
        return None if frame is None else (frame,) * self.num_envs

    def close_extras(self, **kwargs: Any) -> None:
        """Close the shared env."""
        self.env.close()


# ---------------------------------------------------------------- helpers
def _shared_env(env: gym.Env | str | None, kwargs: dict[str, Any]) -> gym.Env:
    """``env`` itself, or ``gym.make(env, **kwargs)``; checked to wrap an EmbeddingSizeEnv."""
    if env is None or isinstance(env, str):
        env = gym.make(env or DEFAULT_ENV_ID, **kwargs)
    elif kwargs:
        msg = f"keyword arguments are only allowed with an env id, got {sorted(kwargs)}."
        raise InvalidTypeError(msg)
    base = getattr(env, "unwrapped", env)
    for attr in ("n_users", "n_items", "n_entities"):
        if not hasattr(base, attr):
            msg = f"`env` must be an EmbeddingSizeEnv (or wrap one), got {type(base).__name__}."
            raise InvalidTypeError(msg)
    return env


def _autoreset_mode(mode: AutoresetMode | str) -> AutoresetMode:
    """The mode from the enum, its value (``"NextStep"``) or its name (``"next_step"``)."""
    if isinstance(mode, AutoresetMode):
        return mode
    if isinstance(mode, str):
        for member in AutoresetMode:
            if mode in (member.value, member.name.lower()):
                return member
    names = [m.name.lower() for m in AutoresetMode]
    msg = f"`autoreset_mode` must be one of {names} (or a gymnasium AutoresetMode), got {mode!r}."
    raise InvalidArgumentError(msg)


def _without_full_reset_mask(options: dict[str, Any] | None, n: int) -> dict[str, Any] | None:
    """``options`` without a ``reset_mask`` that selects everything (the only one possible)."""
    if not options or "reset_mask" not in options:
        return options
    mask = np.asarray(options["reset_mask"])
    if mask.shape != (n,) or mask.dtype != np.bool_ or not mask.all():
        msg = (
            f"`options['reset_mask']` must be a ({n},) bool array of all True or be left out: "
            "every user and item shares one episode, so they can only reset together."
        )
        raise InvalidArgumentError(msg)
    rest = {k: v for k, v in options.items() if k != "reset_mask"}
    return rest or None


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
