"""The agent protocol: what :func:`~agents.experiments.compare` and the CLI need from an agent.

An agent is anything with SB3's ``predict``; an agent that learns also has ``learn``. SB3
models (RandomWalkTD3, TD3, SAC, ...), the heuristic baselines and a hand-written policy all
qualify, so they enter comparisons the same way: as an :data:`AgentBuilder`, a callable that
builds the agent for the session's per-entity vector env. A learning agent's search is its
``learn``; any other agent's search is :func:`rollout` of its ``predict``. Either way the env's
:class:`~ciess_env.wrappers.RecordBudgetLog` records what it tried.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ciess_env.errors import InvalidArgumentError, InvalidTypeError

__all__ = ["Agent", "AgentBuilder", "LearningAgent", "rollout"]


@runtime_checkable
class Agent(Protocol):
    """Maps the (N, 4) observation (users first, then items) to N actions in [−1, 1].

    ``predict`` follows SB3: it returns ``(actions, state)``, actions of shape (N, 1) for the
    per-entity vector env (or (N,) for the single env); ``state`` is for recurrent policies.
    """

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        """Actions for ``observation``."""
        ...


@runtime_checkable
class LearningAgent(Agent, Protocol):
    """An :class:`Agent` that searches by learning on the env it was built for (SB3's API)."""

    def learn(self, total_timesteps: int, *args: Any, **kwargs: Any) -> Any:
        """Interact with the env for ``total_timesteps`` (entity-steps, as SB3 counts them)."""
        ...


#: Builds an agent for a per-entity vector env (:class:`~ciess_env.vector.EntityVecEnv`),
#: given the session's seed: ``builder(vec_env, seed) -> Agent``.
AgentBuilder = Callable[[Any, int], Agent]


def rollout(agent: Agent, vec_env: Any, steps: int, *, deterministic: bool = False) -> None:
    """Step ``vec_env`` ``steps`` times with ``agent.predict`` (the search of a non-learner).

    Raises:
        TypeError: if ``agent`` has no ``predict``.
        ValueError: if ``steps < 1``.
    """
    if not isinstance(agent, Agent):
        msg = f"`agent` must have predict(observation, ...), got {type(agent).__name__}."
        raise InvalidTypeError(msg)
    if steps < 1:
        msg = f"`steps` must be >= 1, got {steps!r}."
        raise InvalidArgumentError(msg)
    obs = vec_env.reset()
    state, starts = None, np.ones(vec_env.num_envs, dtype=bool)
    for _ in range(steps):
        actions, state = agent.predict(obs, state, starts, deterministic=deterministic)
        obs, _, starts, _ = vec_env.step(np.asarray(actions).reshape(vec_env.num_envs, -1))
