"""Size-search agents for the CIESS environments: CIESS's random-walk TD3 and baselines.

Import :class:`RandomWalkTD3` and the heuristic baselines from here; :func:`make_agent` builds
any supported SB3 agent with paper-like defaults for the per-entity vector env. Every agent is
one :class:`AgentSpec` in :data:`AGENT_SPECS`; :func:`register_agent` adds one. The size-graph
walk lives in :mod:`agents.random_walk` (not re-exported: the function shares the module's name).
What is built *from* agents — search sessions, selective retraining, comparisons, plots and the
``ciess`` CLI — lives one layer up, in :mod:`agents.experiments`.

The names load on first use (they import torch and stable-baselines3), so ``import agents``
and the ``ciess`` CLI's ``--help`` stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ciess_env._lazy import lazy_exports

if TYPE_CHECKING:
    from agents.baselines import (
        EqualSize,
        MixedRandom,
        PopularityProportional,
        SizeBaseline,
        kept_budget,
    )
    from agents.lagrangian import LagrangianRWTD3
    from agents.policies import EntityTD3Policy, GroupScaledAdam
    from agents.registry import AGENT_SPECS, AgentSpec, make_agent, register_agent
    from agents.rw_td3 import ExplorationStep, RandomWalkTD3
    from agents.structured import StructuredSearch, StructuredSizes

__all__ = [
    "AGENT_SPECS",
    "AgentSpec",
    "EntityTD3Policy",
    "EqualSize",
    "ExplorationStep",
    "GroupScaledAdam",
    "LagrangianRWTD3",
    "MixedRandom",
    "PopularityProportional",
    "RandomWalkTD3",
    "SizeBaseline",
    "StructuredSearch",
    "StructuredSizes",
    "kept_budget",
    "make_agent",
    "register_agent",
]

_EXPORTS = {
    "EqualSize": "agents.baselines",
    "MixedRandom": "agents.baselines",
    "PopularityProportional": "agents.baselines",
    "SizeBaseline": "agents.baselines",
    "kept_budget": "agents.baselines",
    "LagrangianRWTD3": "agents.lagrangian",
    "EntityTD3Policy": "agents.policies",
    "GroupScaledAdam": "agents.policies",
    "AGENT_SPECS": "agents.registry",
    "AgentSpec": "agents.registry",
    "make_agent": "agents.registry",
    "register_agent": "agents.registry",
    "ExplorationStep": "agents.rw_td3",
    "RandomWalkTD3": "agents.rw_td3",
    "StructuredSearch": "agents.structured",
    "StructuredSizes": "agents.structured",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
