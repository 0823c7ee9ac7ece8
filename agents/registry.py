"""One :class:`AgentSpec` per agent, and the one registry every caller reads.

An agent is a name, a kind, a builder, an optional env wrapper and the way it proposes candidate
masks per budget (:class:`Proposal`). ``compare``, :class:`~agents.experiments.SearchSession`,
the sweep, ``ciess --help`` and ``docs/agents.md`` all read :data:`AGENT_SPECS`, and every name
is checked in one place (:func:`agent_spec`, with a close-match suggestion). Adding an agent is
one spec: :func:`register_agent` from any module, no file of this package touched
(``docs/agents.md`` walks an example, the pattern :class:`~ciess_env.recommenders.BackboneSpec`
set for backbones).

The built-in RL agents get the paper's hyperparameters (paper §2) converted from size units to
the env's [−1, 1] action units.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from agents.baselines import EqualSize, MixedRandom, PopularityProportional
from agents.protocol import (
    BudgetCandidates,
    Proposal,
    ProposeFn,
    budget_proposal,
    heuristic_proposal,
    pep_prefix_proposal,
    pruner_proposal,
    rl_proposal,
)
from ciess_env.errors import InvalidArgumentError, InvalidTypeError, UnknownNameError, suggest

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.noise import NormalActionNoise
    from stable_baselines3.common.vec_env import VecEnv

    from agents.pep import PEPMask
    from agents.structured import StructuredSearch

# The agents (torch, stable-baselines3) are imported inside the builders: the specs below are
# read by ``ciess --help``, which must answer without loading torch.

__all__ = [
    "AGENT_KINDS",
    "AGENT_SPECS",
    "PLUGIN_ERRORS",
    "PLUGIN_GROUP",
    "AgentKind",
    "AgentSpec",
    "BudgetCandidates",
    "Proposal",
    "agent_names",
    "agent_spec",
    "agents_help",
    "agents_markdown",
    "check_agent_kwargs",
    "check_user_kwargs",
    "kinds_help",
    "load_plugins",
    "make_agent",
    "make_budget_search",
    "register_agent",
    "wrap_env_for",
]


# --------------------------------------------------------------------------- kinds
@dataclass(frozen=True)
class AgentKind:
    """What the agents of one kind have in common: how they search and what the builder takes.

    Attributes:
        name: The kind's key (``AgentSpec.kind``).
        description: One plain-text line for ``--help`` and the docs.
        builder: The builder's signature, as the docs show it.
        searches: Whether its search runs ``episodes`` episodes (heuristics and pruners do not).
        per_budget: Whether each budget is proposed on its own, so a study can run one
            (agent, seed, budget) at a time with the same numbers.
        propose: How its agents propose candidate masks per budget (:mod:`agents.protocol`),
            unless a spec brings its own.
    """

    name: str
    description: str
    builder: str
    searches: bool
    per_budget: bool
    propose: ProposeFn


#: The kinds of agents, in the order help texts list them.
AGENT_KINDS: dict[str, AgentKind] = {
    k.name: k
    for k in (
        AgentKind(
            "heuristic",
            description="sizes from the budget and popularity alone, one assignment per budget",
            builder="builder(c, env, *, seed, **kw) -> object with sizes() and sparsity",
            searches=False, per_budget=True, propose=heuristic_proposal,
        ),
        AgentKind(
            "rl",
            description="searches the per-entity vector env once for all budgets",
            builder="builder(vec_env, **kw) -> SB3 model (checkpointed search), or any agent "
            "with predict (and learn)",
            searches=True, per_budget=False, propose=rl_proposal,
        ),
        AgentKind(
            "budget-rl",
            description="an RL agent aimed at one budget: one search per budget",
            builder="builder(vec_env, target_sparsity=c, **kw) -> SB3 model",
            searches=True, per_budget=True, propose=budget_proposal,
        ),
        AgentKind(
            "budget-search",
            description="a black-box search on the single env: one search per budget",
            builder="builder(env, c, **kw) -> object with learn(n_trials, progress_bar=...)",
            searches=True, per_budget=True, propose=budget_proposal,
        ),
        AgentKind(
            "pruner",
            description="prunes individual weights: one mask per budget from one search",
            builder="builder(env, budgets, *, seed, **kw) -> one mask per budget, each with "
            "budget, user_mask and item_mask",
            searches=False, per_budget=False, propose=pruner_proposal,
        ),
    )
}  # fmt: skip


# --------------------------------------------------------------------------- specs
@dataclass(frozen=True)
class AgentSpec:
    """Everything the package knows about one agent.

    Attributes:
        name: Lowercase key (``compare(agents=[name])``, sweep specs, the CLI).
        kind: A key of :data:`AGENT_KINDS`; it fixes the builder's signature and, unless
            ``propose`` is given, how the agent proposes candidate masks per budget.
        builder: Builds the agent; its signature is the kind's (``AGENT_KINDS[kind].builder``).
        summary: One plain-text line for the docs.
        env_wrapper: ``wrapper(env) -> env`` applied before the per-entity vector env is built,
            for an agent whose action space is not the env's Box (``"esapn"``).
        action_space: The action-space class the agent needs on the vector env.
        constructors: ``"module:Class"`` whose keyword arguments the agent accepts, so a bad
            one is refused before any search (:func:`check_agent_kwargs`); empty: unchecked.
        search_of: Another agent whose search this one reuses, and whose ``agent_kwargs`` it
            reads (``"pep-prefix"`` → ``"pep"``): one search per comparison serves both.
        propose: How it proposes candidate masks per budget (:data:`ProposeFn`); ``None``: its
            kind's (``AGENT_KINDS[kind].propose``).
    """

    name: str
    kind: str
    builder: Callable[..., Any]
    summary: str = ""
    env_wrapper: Callable[[gym.Env], gym.Env] | None = None
    action_space: type[spaces.Space] = spaces.Box
    constructors: tuple[str, ...] = ()
    search_of: str | None = None
    propose: ProposeFn | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if (
            not isinstance(self.name, str)
            or not self.name
            or self.name != self.name.lower()
            or any(ch.isspace() or ch in ":,=" for ch in self.name)
        ):
            msg = (
                "`name` must be a non-empty lowercase string without spaces, ':', ',' or '=' "
                f"(they separate module:builder and agent variants), got {self.name!r}."
            )
            raise InvalidArgumentError(msg)
        if self.kind not in AGENT_KINDS:
            raise suggest(self.kind, AGENT_KINDS, what=f"kind of agent {self.name!r}:")
        if not callable(self.builder):
            msg = f"`builder` of agent {self.name!r} must be callable, got {self.builder!r}."
            raise InvalidTypeError(msg)

    @property
    def kwargs_key(self) -> str:
        """The ``agent_kwargs`` key its settings are read from (``search_of`` if it shares)."""
        return self.search_of or self.name

    @property
    def proposer(self) -> ProposeFn:
        """How it proposes candidate masks per budget: its own ``propose`` or its kind's."""
        return self.propose or AGENT_KINDS[self.kind].propose

    @property
    def searches(self) -> bool:
        """Whether its search runs ``episodes`` episodes (its kind's)."""
        return AGENT_KINDS[self.kind].searches

    @property
    def per_budget(self) -> bool:
        """Whether each budget is proposed on its own (its kind's)."""
        return AGENT_KINDS[self.kind].per_budget

    def accepted_kwargs(self) -> set[str] | None:
        """The keyword arguments it takes (from ``constructors``); ``None``: unchecked."""
        if not self.constructors:
            return None
        # The searches take the size range too; heuristics and pruners only what they name.
        accepted = set() if self.kind in ("heuristic", "pruner") else {"d_min", "d_max"}
        for path in self.constructors:
            module, _, attr = path.partition(":")
            params = inspect.signature(getattr(importlib.import_module(module), attr)).parameters
            accepted |= {
                k
                for k, p in params.items()
                if p.kind is not p.VAR_KEYWORD and not k.startswith("_")
            }
        return accepted - _NOT_OVERRIDABLE


#: Arguments the builders set themselves (the env, the policy, the budget, the method, and
#: the data a heuristic reads off the env).
_NOT_OVERRIDABLE = frozenset(
    {"self", "policy", "env", "c", "method", "n_users", "n_items", "user_freq", "item_freq"}
)

#: Every registered agent by name, in registration order.
AGENT_SPECS: dict[str, AgentSpec] = {}


def register_agent(spec: AgentSpec, *, replace: bool = False) -> AgentSpec:
    """Register ``spec`` so that ``compare``, sessions, sweeps and the CLI know its name.

    Raises:
        ValueError: if the name is taken (pass ``replace=True`` to re-register), or
            ``search_of`` names no registered agent.
    """
    if not isinstance(spec, AgentSpec):
        msg = f"`spec` must be an AgentSpec, got {type(spec).__name__}."
        raise InvalidTypeError(msg)
    if spec.name in AGENT_SPECS and not replace:
        msg = f"agent {spec.name!r} is already registered; pass replace=True to replace it."
        raise InvalidArgumentError(msg)
    if spec.search_of is not None and spec.search_of not in AGENT_SPECS:
        err = suggest(spec.search_of, AGENT_SPECS, what=f"agent for {spec.name!r}'s search_of")
        raise err
    AGENT_SPECS[spec.name] = spec
    return spec


def agent_names(*kinds: str) -> tuple[str, ...]:
    """Registered agent names, of ``kinds`` only if given, in registration order."""
    return tuple(n for n, s in AGENT_SPECS.items() if not kinds or s.kind in kinds)


def agent_spec(name: str, *, kinds: Sequence[str] | None = None, what: str = "agent") -> AgentSpec:
    """The spec of agent ``name``: the one place an agent name is checked.

    Args:
        name: The name the user gave.
        kinds: Kinds the caller can run (default: every kind).
        what: What the caller needs, for the message (e.g. ``"one-budget agent"``).

    Raises:
        UnknownNameError: (a ValueError) for an unknown name, listing the valid ones and the
            closest match; or for a registered agent of another kind, naming its kind.
    """
    choices = agent_names(*(kinds or ()))
    spec = AGENT_SPECS.get(name) if isinstance(name, str) else None
    if spec is None and name in PLUGIN_ERRORS:
        raise UnknownNameError(f"Agent {name!r} is not available: {PLUGIN_ERRORS[name]}.")
    if spec is None:
        raise suggest(str(name), choices, what=what)
    if name not in choices:
        wanted = " or ".join(repr(k) for k in kinds or ())
        msg = (
            f"Agent {name!r} is of kind {spec.kind!r} ({AGENT_KINDS[spec.kind].description}); "
            f"expected kind {wanted} ({what}): {', '.join(sorted(choices))}."
        )
        raise UnknownNameError(msg)
    return spec


def agents_help(*kinds: str) -> str:
    """The registered names per kind (of ``kinds`` if given) as one line, for ``--help``."""
    parts = []
    for kind in AGENT_KINDS:
        names = agent_names(kind)
        if names and (not kinds or kind in kinds):
            parts.append(f"{kind}: {' '.join(names)}")
    return "; ".join(parts)


def kinds_help() -> str:
    """One plain-text line per agent kind with its description, for a ``--help`` epilog."""
    return "\n".join(f"  {k.name}: {k.description}" for k in AGENT_KINDS.values())


def agents_markdown() -> str:
    """The registered agents as a markdown table (``docs/agents.md`` holds it; a test compares).

    ``python -m agents.registry`` prints it.
    """
    rows = ["| name | kind | what it is | shares the search of |", "|---|---|---|---|"]
    for spec in AGENT_SPECS.values():
        rows.append(f"| `{spec.name}` | {spec.kind} | {spec.summary} | {spec.search_of or ''} |")
    return "\n".join(rows)


def check_agent_kwargs(name: str, kwargs: dict[str, Any]) -> None:
    """Refuse a keyword argument agent ``name``'s constructor does not take, before any search.

    Agents whose spec names no ``constructors`` are not checked here.

    Raises:
        UnknownNameError: (a ValueError) naming the agent, the key, the closest valid keys and
            every accepted one.
    """
    accepted = agent_spec(name).accepted_kwargs()
    if accepted is None:
        return
    for key in kwargs:
        if key not in accepted:
            raise suggest(key, accepted, what=f"argument of agent {name!r}:")


def check_user_kwargs(name: str, kwargs: dict[str, Any]) -> None:
    """:func:`check_agent_kwargs` for settings a user gave (``agent_kwargs``, ``--agent-kw``).

    They may not set ``seed``: the run seeds every agent itself (and passes it on).

    Raises:
        InvalidArgumentError: for ``seed``; UnknownNameError: as :func:`check_agent_kwargs`.
    """
    if "seed" in kwargs:
        msg = (
            f"The settings of agent {name!r} may not set 'seed': every agent is seeded by the "
            "run's own seed (compare(seed=...), --seed, a sweep's seeds)."
        )
        raise InvalidArgumentError(msg)
    check_agent_kwargs(name, kwargs)


def make_budget_search(name: str, env: gym.Env, c: float, **kwargs: Any) -> StructuredSearch:
    """Build the one-budget black-box search ``name`` (kind ``"budget-search"``) on the single env.

    Raises:
        UnknownNameError: (a ValueError) for a name that is not such a search.
    """
    spec = agent_spec(name, kinds=("budget-search",), what="budget search")
    check_agent_kwargs(name, kwargs)
    return spec.builder(env, c, **kwargs)


def wrap_env_for(name: str, env: gym.Env) -> gym.Env:
    """``env`` as agent ``name`` needs it (its spec's ``env_wrapper``; unchanged otherwise)."""
    spec = AGENT_SPECS.get(name)
    return env if spec is None or spec.env_wrapper is None else spec.env_wrapper(env)


def make_agent(name: str, env: VecEnv, **kwargs: Any) -> BaseAlgorithm:
    """Build RL agent ``name`` (kind ``"rl"`` or ``"budget-rl"``) for the per-entity vector env.

    The built-in agents, with paper-like defaults (:func:`agents_help` lists every name):

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
        name: A registered agent of kind ``"rl"`` or ``"budget-rl"``.
        env: The per-entity vector env.
        **kwargs: Overrides of the defaults, passed to the constructor (``d_min``/``d_max``
            are used to convert sizes to action units).

    Returns:
        The SB3 model (or whatever the spec's builder returns).

    Raises:
        UnknownNameError: (a ValueError) for an unknown name, suggesting the closest one.
        ValueError: if ``env`` is not a VecEnv with the action space the agent needs (its
            spec's ``action_space``).
    """
    spec = agent_spec(name, kinds=("rl", "budget-rl"), what="RL agent")
    from stable_baselines3.common.vec_env import VecEnv

    need = spec.action_space
    how = f" (build it from wrap_env_for({name!r}, env))" if spec.env_wrapper else ""
    if not isinstance(env, VecEnv) or not isinstance(env.action_space, need):
        space = getattr(env, "action_space", None)
        msg = (
            f"`env` must be a VecEnv with a {need.__name__} action space for agent {name!r}"
            f"{how}, got {type(env).__name__} with {space!r}."
        )
        raise InvalidArgumentError(msg)
    check_agent_kwargs(name, kwargs)
    return spec.builder(env, **kwargs)


# --------------------------------------------------------------------------- builders
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
    from agents.rw_td3 import env_size_bounds, sizes_per_action_unit

    d_min, d_max = env_size_bounds(env, kw.pop("d_min", None), kw.pop("d_max", None))
    scale = sizes_per_action_unit(d_min, d_max)
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
    from agents.rw_td3 import env_size_bounds, sizes_per_action_unit

    d_min, d_max = env_size_bounds(env, kw.pop("d_min", None), kw.pop("d_max", None))
    scale = sizes_per_action_unit(d_min, d_max)
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


def _structured_rl(algorithm: str) -> Callable[..., Any]:
    def build(env: gym.Env, c: float, **kw: Any) -> Any:
        from agents.structured_rl import StructuredRL

        return StructuredRL(env, c, algorithm=algorithm, **kw)

    return build


def _wrap_esapn(env: gym.Env) -> gym.Env:
    from agents.esapn import wrap_esapn_env

    return wrap_esapn_env(env)


def _pep(env: gym.Env, budgets: Sequence[float], *, seed: int, **kw: Any) -> list[PEPMask]:
    """PEP's masks for ``budgets`` on ``env``'s data, backbone and per-step schedule."""
    from agents.pep import PEPConfig, pep_search

    base = env.unwrapped
    return pep_search(
        base.data, base.step_config, budgets=budgets, config=PEPConfig(**kw), seed=seed,
    )  # fmt: skip


def _lazy(path: str) -> Callable[..., Any]:
    """``"module:function"`` imported on first call (the specs load without torch)."""
    module, _, attr = path.partition(":")

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), attr)(*args, **kwargs)

    call.__name__ = call.__qualname__ = attr
    return call


_SB3 = "stable_baselines3:"
_STRUCTURED = ("agents.structured:StructuredSearch",)
for _spec in (
    AgentSpec("es", "heuristic", EqualSize.from_env, "ES: one size for everyone",
              constructors=("agents.baselines:EqualSize",)),
    AgentSpec("mr", "heuristic", MixedRandom.from_env, "MR: uniformly random sizes",
              constructors=("agents.baselines:MixedRandom",)),
    AgentSpec("mde", "heuristic", PopularityProportional.from_env, "MDE: d ∝ frequency^α",
              constructors=("agents.baselines:PopularityProportional",)),
    AgentSpec("rw-td3", "rl", _make_rw_td3, "CIESS: TD3 with random-walk exploration",
              constructors=("agents.rw_td3:RandomWalkTD3",)),
    AgentSpec("td3", "rl", _make_td3, "SB3 TD3, per-entity Gaussian noise",
              constructors=(_SB3 + "TD3",)),
    AgentSpec("ddpg", "rl", _make_ddpg, "SB3 DDPG", constructors=(_SB3 + "DDPG",)),
    AgentSpec("sac", "rl", _make_sac, "SB3 SAC, one shared MLP", constructors=(_SB3 + "SAC",)),
    AgentSpec("ppo", "rl", _make_ppo, "SB3 PPO, one rollout = one episode",
              constructors=(_SB3 + "PPO",)),
    AgentSpec("esapn", "rl", _make_esapn, "ESAPN-style DQN over six candidate sizes",
              env_wrapper=_wrap_esapn, action_space=spaces.Discrete,
              constructors=(_SB3 + "DQN",)),
    AgentSpec("rw-td3-lagrange", "budget-rl", _make_rw_td3_lagrange,
              "RW-TD3 with λ steered to one target sparsity",
              constructors=("agents.lagrangian:LagrangianRWTD3", "agents.rw_td3:RandomWalkTD3")),
    AgentSpec("structured-tpe", "budget-search", _structured("tpe"),
              "TPE over a 5-parameter size family", constructors=_STRUCTURED),
    AgentSpec("structured-cem", "budget-search", _structured("cem"),
              "CEM over a 5-parameter size family", constructors=_STRUCTURED),
    AgentSpec("sac-structured", "budget-search", _structured_rl("sac"),
              "SB3 SAC on the structured action (StructuredAction: 4 numbers, budget-exact)",
              constructors=("agents.structured_rl:StructuredRL", _SB3 + "SAC")),
    AgentSpec("ppo-structured", "budget-search", _structured_rl("ppo"),
              "SB3 PPO on the structured action (StructuredAction: 4 numbers, budget-exact)",
              constructors=("agents.structured_rl:StructuredRL", _SB3 + "PPO")),
    AgentSpec("pep", "pruner", _pep, "PEP: learnable soft thresholds, lottery-ticket retraining",
              constructors=("agents.pep:PEPConfig",)),
    AgentSpec("pep-prefix", "pruner", _pep, "PEP's masks projected onto prefix sizes",
              search_of="pep", propose=pep_prefix_proposal, constructors=("agents.pep:PEPConfig",)),
    AgentSpec("magprune", "pruner", _lazy("agents.magprune:magprune_masks"),
              "MagPrune as published (Tran et al. 2024): smallest weights of the trained "
              "table zeroed per table, no retraining",
              constructors=("agents.magprune:MagPruneConfig",),
              propose=_lazy("agents.magprune:published_proposal")),
    AgentSpec("magprune-retrain", "pruner", _lazy("agents.magprune:magprune_masks"),
              "MagPrune's masks through the final retraining", search_of="magprune",
              constructors=("agents.magprune:MagPruneConfig",)),
    AgentSpec("optembed", "pruner", _lazy("agents.optembed:optembed_search"),
              "OptEmbed: random-size supernet + evolutionary search of sizes at the budget",
              constructors=("agents.optembed:OptEmbedConfig",),
              propose=_lazy("agents.optembed:optembed_proposal")),
):  # fmt: skip
    register_agent(_spec)
del _spec


# --------------------------------------------------------------------------- plugins
#: The entry-point group through which an installed package adds agents (see docs/agents.md).
PLUGIN_GROUP = "ciess_env.agents"
#: Entry points that failed to load: ``{entry point name: why}`` (each was warned about once).
PLUGIN_ERRORS: dict[str, str] = {}


def load_plugins(group: str = PLUGIN_GROUP) -> list[str]:
    """Register the agents that installed packages declare in the ``group`` entry points.

    An entry point names an :class:`AgentSpec`, a sequence of them, or a callable returning
    either; its agents then work wherever a built-in one does — ``compare``, the CLI and the
    workers of a Ray sweep, which import this module afresh and so load the plugins too. A
    plugin that fails to load is skipped with a warning (one broken package must not disable
    every agent), and asking for its entry point's name afterwards raises an error that says
    why (:data:`PLUGIN_ERRORS`).

    Returns:
        The names registered.
    """
    import warnings
    from importlib.metadata import entry_points

    added: list[str] = []
    for ep in entry_points(group=group):
        where = f"entry point {ep.name!r} ({ep.value}) of {getattr(ep.dist, 'name', '?')}"
        try:
            obj = ep.load()
            obj = obj() if callable(obj) and not isinstance(obj, AgentSpec) else obj
            specs = [obj] if isinstance(obj, AgentSpec) else list(obj)
            for spec in specs:
                if AGENT_SPECS.get(spec.name) is spec:
                    continue  # the plugin module registered it itself on import
                added.append(register_agent(spec).name)
        except Exception as err:  # any error of a plugin is reported, not raised
            why = f"{where} failed to load: {type(err).__name__}: {err}"
            PLUGIN_ERRORS[ep.name] = why
            warnings.warn(why, stacklevel=2)
    return added


load_plugins()


if __name__ == "__main__":  # the table of docs/agents.md
    print(agents_markdown())
