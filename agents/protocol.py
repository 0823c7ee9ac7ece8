"""The agent protocol: what :func:`~agents.experiments.compare` and the CLI need from an agent.

An agent is anything with SB3's ``predict``; an agent that learns also has ``learn``. SB3
models (RandomWalkTD3, TD3, SAC, ...), the heuristic baselines and a hand-written policy all
qualify, so they enter comparisons the same way: as an :data:`AgentBuilder`, a callable that
builds the agent for the session's per-entity vector env. A learning agent's search is its
``learn``; any other agent's search is :func:`rollout` of its ``predict``. Either way the env's
:class:`~ciess_env.wrappers.RecordBudgetLog` records what it tried.

Whatever a registered agent is (a heuristic, an RL search, a search aimed at one budget, a
pruner), a comparison asks it one thing: a :class:`Proposal`, i.e. per budget the candidate
masks to retrain (:class:`BudgetCandidates`). Size assignments go through selective retraining
(the ``top_l`` best that meet the budget); an elementwise mask (PEP's) is retrained as it is.
The retraining is the comparison's, the same for every agent. The ``*_proposal`` functions
below are each kind's default ``propose(session, spec, budgets, *, episodes, **kwargs)``
(:data:`agents.registry.AGENT_KINDS`); ``session`` is an :class:`agents.experiments.SearchSession`
(the env, the checkpointed search loop, the one-budget search loop, the shared pruning search),
``spec`` the agent's :class:`~agents.registry.AgentSpec`. A spec may bring its own
(``AgentSpec.propose``), as ``"pep-prefix"`` does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from ciess_env.errors import InvalidArgumentError, InvalidTypeError

if TYPE_CHECKING:
    import pandas as pd

    from agents.registry import AgentSpec
    from ciess_env.budget_log import BudgetLog

__all__ = [
    "Agent",
    "AgentBuilder",
    "BudgetCandidates",
    "LearningAgent",
    "Proposal",
    "ProposeFn",
    "budget_proposal",
    "heuristic_proposal",
    "pep_prefix_proposal",
    "pruner_proposal",
    "rl_proposal",
    "rollout",
    "search_proposal",
]


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


# --------------------------------------------------------------------------- proposals
@dataclass(frozen=True)
class BudgetCandidates:
    """An agent's candidate masks for one budget, as the final retraining takes them.

    Exactly one of ``log`` (size assignments: the ``top_l`` best that meet the budget are
    retrained and the best on validation kept), ``element_masks`` (one elementwise mask,
    PEP's, retrained as it is) and ``result`` (a finished row, reported without retraining:
    MagPrune as its benchmark publishes it) is set.

    Attributes:
        budget: The target sparsity c.
        log: A budget log of prefix-size assignments.
        top_l: Masks retrained from ``log``; ``None``: the comparison's ``top_l``.
        fillable: Whether ``compare(fill_budget=True)`` grows these masks to the budget
            (False for proposals that meet it exactly already).
        element_masks: ``(user_mask (n_users, d_max), item_mask (n_items, d_max))`` booleans.
        result: A finished :class:`~ciess_env.retrain.BudgetResult` (no retraining).
    """

    budget: float
    log: BudgetLog | None = None
    top_l: int | None = None
    fillable: bool = True
    element_masks: tuple[np.ndarray, np.ndarray] | None = None
    result: Any = None

    def __post_init__(self) -> None:
        held = [k for k in ("log", "element_masks", "result") if getattr(self, k) is not None]
        if len(held) != 1:
            msg = (
                "`BudgetCandidates` must hold exactly one of `log`, `element_masks` and "
                f"`result`, got {' and '.join(held) or 'none'} (budget {self.budget})."
            )
            raise InvalidArgumentError(msg)


@dataclass
class Proposal:
    """What one agent proposes at every budget.

    Attributes:
        candidates: One :class:`BudgetCandidates` per budget, in the budgets' order.
        search_s: Seconds of search (a search shared by two agents counts for both).
        log: Every size assignment it tried (``Comparison.logs``), if any.
        curve: Per-step search statistics (``Comparison.curves``), if it searched on the env.
        pruned: Its elementwise masks (``Comparison.pruned``), for a pruner.
    """

    candidates: list[BudgetCandidates]
    search_s: float = 0.0
    log: BudgetLog | None = None
    curve: pd.DataFrame | None = None
    pruned: list[Any] | None = None


#: ``propose(session, spec, budgets, *, episodes, **kwargs) -> Proposal``: how an agent yields
#: its candidate masks per budget, given a :class:`~agents.experiments.SearchSession`.
ProposeFn = Callable[..., Proposal]


def heuristic_proposal(
    session: Any, spec: AgentSpec, budgets: Sequence[float], *, episodes: int, **kwargs: Any
) -> Proposal:
    """One assignment per budget, no search: each is retrained at its own budget as it is."""
    t0 = time.perf_counter()
    log = session.heuristic_log(spec.name, budgets, **kwargs)
    search_s = time.perf_counter() - t0
    candidates = [
        BudgetCandidates(
            c, session.heuristic_log(spec.name, [c], **kwargs), top_l=1, fillable=False
        )
        for c in budgets
    ]
    return Proposal(candidates, search_s, log=log)


def search_proposal(
    session: Any, agent: Any, budgets: Sequence[float], *, episodes: int, **kwargs: Any
) -> Proposal:
    """One search for all budgets (``session.search``); each budget reads the same log.

    ``agent`` is a registered name or an :data:`~agents.protocol.AgentBuilder`.
    """
    t0 = time.perf_counter()
    log, curve = session.search(agent, episodes=episodes, **kwargs)
    search_s = time.perf_counter() - t0
    return Proposal([BudgetCandidates(c, log) for c in budgets], search_s, log=log, curve=curve)


def rl_proposal(
    session: Any, spec: AgentSpec, budgets: Sequence[float], *, episodes: int, **kwargs: Any
) -> Proposal:
    """Kind ``"rl"``: :func:`search_proposal` of the registered name."""
    return search_proposal(session, spec.name, budgets, episodes=episodes, **kwargs)


def budget_proposal(
    session: Any, spec: AgentSpec, budgets: Sequence[float], *, episodes: int, **kwargs: Any
) -> Proposal:
    """One search aimed at each budget (``session.budget_search``), ``episodes`` each."""
    import pandas as pd

    candidates, parts, logs, search_s = [], [], [], 0.0
    for c in budgets:
        t0 = time.perf_counter()
        log, curve = session.budget_search(spec.name, c, episodes=episodes, **kwargs)
        search_s += time.perf_counter() - t0
        parts.append(curve.assign(budget=c))
        logs.append(log)
        candidates.append(BudgetCandidates(c, log))
    curve = pd.concat(parts, ignore_index=True)
    return Proposal(candidates, search_s, log=_concat_logs(logs), curve=curve)


def pruner_proposal(
    session: Any, spec: AgentSpec, budgets: Sequence[float], *, episodes: int, **kwargs: Any
) -> Proposal:
    """One pruning search for all budgets (shared by ``search_of``); one mask per budget."""
    masks, search_s = session.prune(spec, budgets, **kwargs)
    candidates = [
        BudgetCandidates(m.budget, element_masks=(m.user_mask, m.item_mask)) for m in masks
    ]
    return Proposal(candidates, search_s, pruned=masks)


def pep_prefix_proposal(
    session: Any, spec: AgentSpec, budgets: Sequence[float], *, episodes: int, **kwargs: Any
) -> Proposal:
    """PEP's masks as prefix sizes, retrained like a heuristic's assignment.

    Each entity's size is its surviving count, fitted to the budget
    (:func:`agents.pep.pep_prefix_log`).
    """
    from agents.pep import pep_prefix_log

    masks, search_s = session.prune(spec, budgets, **kwargs)
    candidates = [
        BudgetCandidates(m.budget, pep_prefix_log([m]), top_l=1, fillable=False) for m in masks
    ]
    return Proposal(candidates, search_s, log=pep_prefix_log(masks))


def _concat_logs(logs: Sequence[BudgetLog]) -> BudgetLog:
    """One log holding every entry of ``logs`` in order (one-budget searches, one per budget)."""
    from ciess_env.budget_log import BudgetLog

    first = logs[0]
    merged = BudgetLog(first.n_users, first.n_items, d_max=first.d_max)
    for log in logs:
        for e in log:
            merged.record(**e._asdict())
    return merged
