"""Agent names → SB3 models with paper-like defaults for the per-entity vector env.

One registry for the CLI, ``compare`` and the notebooks, so every caller builds an agent the
same way: the paper's hyperparameters (paper §2) converted from size units to the
env's [−1, 1] action units.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ciess_env.errors import InvalidArgumentError, suggest

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.noise import NormalActionNoise
    from stable_baselines3.common.vec_env import VecEnv

    from agents.structured import StructuredSearch

# The agents (torch, stable-baselines3) are imported inside the factories: the names below are
# read by ``ciess --help``, which must answer without loading torch.

__all__ = [
    "AGENTS",
    "BUDGET_AGENTS",
    "BUDGET_SEARCHES",
    "ENV_WRAPPERS",
    "check_agent_kwargs",
    "make_agent",
    "make_budget_search",
    "wrap_env_for",
]


def _off_policy_defaults(env: VecEnv) -> dict[str, Any]:
    return {
        "learning_rate": 1e-3,
        "buffer_size": 100 * env.num_envs,
        "learning_starts": 0,
        "batch_size": 4096,
        "tau": 0.005,
        "gamma": 0.99,
        "train_freq": 1,
        "gradient_steps": 1,
    }


def _entity_noise(sigma: float) -> NormalActionNoise:
    """N(0, σ²) in action units; SB3 wraps it in a VectorizedActionNoise (one per entity)."""
    from stable_baselines3.common.noise import NormalActionNoise

    return NormalActionNoise(np.zeros(1), np.full(1, sigma))


def _make_rw_td3(env: VecEnv, **kw: Any) -> BaseAlgorithm:
    from agents.rw_td3 import RandomWalkTD3

    return RandomWalkTD3("EntityPolicy", env, **kw)


def _make_rw_td3_lagrange(env: VecEnv, **kw: Any) -> BaseAlgorithm:
    if "target_sparsity" not in kw:
        msg = (
            "`target_sparsity` is required for 'rw-td3-lagrange' (one search per budget), "
            "e.g. make_agent('rw-td3-lagrange', env, target_sparsity=0.9)."
        )
        raise InvalidArgumentError(msg)
    from agents.lagrangian import LagrangianRWTD3

    return LagrangianRWTD3("EntityPolicy", env, **kw)


def _make_td3(env: VecEnv, **kw: Any) -> BaseAlgorithm:
    from stable_baselines3 import TD3

    from agents.policies import EntityTD3Policy
    from agents.rw_td3 import _sizes_per_action_unit, env_size_bounds

    d_min, d_max = env_size_bounds(env, kw.pop("d_min", None), kw.pop("d_max", None))
    scale = _sizes_per_action_unit(d_min, d_max)
    params: dict[str, Any] = {
        **_off_policy_defaults(env),
        "policy_delay": 2,
        "target_policy_noise": 2.0 / scale,
        "target_noise_clip": 5.0 / scale,
        "action_noise": _entity_noise(6.0 / scale),
        "policy_kwargs": {"net_arch": [256, 256], "critic_lr_scale": 3.0},
    }
    params.update(kw)
    return TD3(EntityTD3Policy, env, **params)


def _make_ddpg(env: VecEnv, **kw: Any) -> BaseAlgorithm:
    from stable_baselines3 import DDPG

    from agents.policies import EntityTD3Policy
    from agents.rw_td3 import _sizes_per_action_unit, env_size_bounds

    d_min, d_max = env_size_bounds(env, kw.pop("d_min", None), kw.pop("d_max", None))
    scale = _sizes_per_action_unit(d_min, d_max)
    params: dict[str, Any] = {
        **_off_policy_defaults(env),
        "action_noise": _entity_noise(6.0 / scale),
        "policy_kwargs": {"net_arch": [256, 256], "critic_lr_scale": 3.0},
    }
    params.update(kw)
    return DDPG(EntityTD3Policy, env, **params)


def _make_sac(env: VecEnv, **kw: Any) -> BaseAlgorithm:
    from stable_baselines3 import SAC

    kw.pop("d_min", None)
    kw.pop("d_max", None)
    params: dict[str, Any] = {
        **_off_policy_defaults(env),
        "policy_kwargs": {"net_arch": [256, 256]},
    }
    params.update(kw)
    return SAC("MlpPolicy", env, **params)


def _make_ppo(env: VecEnv, **kw: Any) -> BaseAlgorithm:
    from stable_baselines3 import PPO

    kw.pop("d_min", None)
    kw.pop("d_max", None)
    n_steps = int(kw.pop("n_steps", 10))
    params: dict[str, Any] = {
        "learning_rate": 3e-4,
        "n_steps": n_steps,
        "batch_size": min(4096, n_steps * env.num_envs),
        "n_epochs": 10,
        "gamma": 0.99,
        "policy_kwargs": {"net_arch": [256, 256]},
    }
    params.update(kw)
    return PPO("MlpPolicy", env, **params)


def _make_esapn(env: VecEnv, **kw: Any) -> BaseAlgorithm:
    from agents.esapn import make_esapn

    return make_esapn(env, **kw)


def _structured(method: str) -> Callable[..., StructuredSearch]:
    def build(env: gym.Env, c: float, **kw: Any) -> StructuredSearch:
        from agents.structured import StructuredSearch

        return StructuredSearch(env, c, method=method, **kw)

    return build


def _wrap_esapn(env: gym.Env) -> gym.Env:
    from agents.esapn import wrap_esapn_env

    return wrap_esapn_env(env)


#: Agent names → factories ``(env, **kw) -> model`` with paper-like defaults for the
#: per-entity vector env.
AGENTS: dict[str, Callable[..., BaseAlgorithm]] = {
    "rw-td3": _make_rw_td3,
    "rw-td3-lagrange": _make_rw_td3_lagrange,
    "td3": _make_td3,
    "ddpg": _make_ddpg,
    "sac": _make_sac,
    "ppo": _make_ppo,
    "esapn": _make_esapn,
}

#: Agents of :data:`AGENTS` that search for one budget: ``make_agent`` needs
#: ``target_sparsity=c`` and a comparison runs one search per budget.
BUDGET_AGENTS: tuple[str, ...] = ("rw-td3-lagrange",)

#: Non-RL searches for one budget on the single env: name → ``factory(env, c, **kw)``
#: returning an object with ``learn(n_trials)`` and ``predict`` (one trial = one env step).
BUDGET_SEARCHES: dict[str, Callable[..., StructuredSearch]] = {
    "structured-tpe": _structured("tpe"),
    "structured-cem": _structured("cem"),
}


#: Per agent name, the constructors (``"module:Class"``) whose keyword arguments it accepts;
#: the factories above also take ``d_min`` / ``d_max``.
_CONSTRUCTORS: dict[str, tuple[str, ...]] = {
    "rw-td3": ("agents.rw_td3:RandomWalkTD3",),
    "rw-td3-lagrange": ("agents.lagrangian:LagrangianRWTD3", "agents.rw_td3:RandomWalkTD3"),
    "td3": ("stable_baselines3:TD3",),
    "ddpg": ("stable_baselines3:DDPG",),
    "sac": ("stable_baselines3:SAC",),
    "ppo": ("stable_baselines3:PPO",),
    "esapn": ("stable_baselines3:DQN",),
    "structured-tpe": ("agents.structured:StructuredSearch",),
    "structured-cem": ("agents.structured:StructuredSearch",),
}
#: Arguments the factories set themselves (the env, the policy, the budget, the method).
_NOT_OVERRIDABLE = frozenset({"self", "policy", "env", "c", "method"})


def _accepted_kwargs(name: str) -> set[str]:
    import importlib
    import inspect

    accepted = {"d_min", "d_max"}
    for path in _CONSTRUCTORS[name]:
        module, _, attr = path.partition(":")
        params = inspect.signature(getattr(importlib.import_module(module), attr)).parameters
        accepted |= {
            k for k, p in params.items() if p.kind is not p.VAR_KEYWORD and not k.startswith("_")
        }
    return accepted - _NOT_OVERRIDABLE


def check_agent_kwargs(name: str, kwargs: dict[str, Any]) -> None:
    """Refuse a keyword argument agent ``name``'s constructor does not take, before any search.

    Raises:
        UnknownNameError: (a ValueError) naming the agent, the key, the closest valid keys and
            every accepted one.
    """
    if name not in _CONSTRUCTORS:
        raise suggest(name, _CONSTRUCTORS, what="agent")
    accepted = _accepted_kwargs(name)
    for key in kwargs:
        if key not in accepted:
            raise suggest(key, accepted, what=f"argument of agent {name!r}:")


def make_budget_search(name: str, env: gym.Env, c: float, **kwargs: Any) -> StructuredSearch:
    """Build the one-budget search ``name`` of :data:`BUDGET_SEARCHES` on the single env.

    Raises:
        UnknownNameError: (a ValueError) for an unknown name, suggesting the closest one.
    """
    if name not in BUDGET_SEARCHES:
        raise suggest(name, BUDGET_SEARCHES, what="budget search")
    check_agent_kwargs(name, kwargs)
    return BUDGET_SEARCHES[name](env, c, **kwargs)


#: Agents that see the env through a wrapper (their action space is not the env's Box):
#: name → ``wrapper(env) -> env``, applied before the per-entity vector env is built.
ENV_WRAPPERS: dict[str, Callable[[gym.Env], gym.Env]] = {
    "esapn": _wrap_esapn,
}


def wrap_env_for(name: str, env: gym.Env) -> gym.Env:
    """``env`` as agent ``name`` needs it (wrapped for ``"esapn"``; unchanged otherwise)."""
    wrapper = ENV_WRAPPERS.get(name)
    return env if wrapper is None else wrapper(env)


def make_agent(name: str, env: VecEnv, **kwargs: Any) -> BaseAlgorithm:
    """Build an SB3 agent for the per-entity vector env with paper-like defaults.

    * ``"rw-td3"``: :class:`RandomWalkTD3` (CIESS, paper §2–§3).
    * ``"rw-td3-lagrange"``: :class:`~agents.lagrangian.LagrangianRWTD3`, RW-TD3 whose λ
      is steered to one target sparsity (pass ``target_sparsity=c``).
    * ``"td3"``: SB3 ``TD3`` with :class:`~agents.policies.EntityTD3Policy`, the same
      hyperparameters, and plain per-entity Gaussian action noise (σ = 6 sizes).
    * ``"ddpg"``: SB3 ``DDPG`` likewise (one critic head, no policy delay or target smoothing).
    * ``"sac"``: SB3 ``SAC`` with one shared 256-256 ``MlpPolicy`` (SAC's squashed-Gaussian
      actor has no two-sided variant here; the type flag is an input feature).
    * ``"ppo"``: SB3 ``PPO``, one rollout = one episode of 10 steps for every entity.
    * ``"esapn"``: an ESAPN-style SB3 ``DQN`` over six candidate sizes
      (:mod:`agents.esapn`); the env must be wrapped first (:func:`wrap_env_for`).

    Args:
        name: One of :data:`AGENTS`.
        env: The per-entity vector env.
        **kwargs: Overrides of the defaults, passed to the constructor (``d_min``/``d_max``
            are used to convert sizes to action units).

    Returns:
        The SB3 model.

    Raises:
        UnknownNameError: (a ValueError) for an unknown name, suggesting the closest one.
        ValueError: if ``env`` is not a VecEnv with the action space the agent needs (Box;
            Discrete for agents in :data:`ENV_WRAPPERS`).
    """
    if name not in AGENTS:
        raise suggest(name, AGENTS, what="agent")
    from stable_baselines3.common.vec_env import VecEnv

    if name in ENV_WRAPPERS:
        need, how = spaces.Discrete, f" (build it from wrap_env_for({name!r}, env))"
    else:
        need, how = spaces.Box, ""
    if not isinstance(env, VecEnv) or not isinstance(env.action_space, need):
        space = getattr(env, "action_space", None)
        msg = (
            f"`env` must be a VecEnv with a {need.__name__} action space for agent {name!r}"
            f"{how}, got {type(env).__name__} with {space!r}."
        )
        raise InvalidArgumentError(msg)
    check_agent_kwargs(name, kwargs)
    return AGENTS[name](env, **kwargs)
