"""Size-search agents for the CIESS environments: CIESS's random-walk TD3 and baselines.

Import :class:`RandomWalkTD3` and the heuristic baselines from here; :func:`make_agent` builds
any supported SB3 agent with paper-like defaults for the per-entity vector env. The size-graph
walk lives in :mod:`agents.random_walk` (not re-exported: the function shares the module's name).
What is built *from* agents — search sessions, selective retraining, comparisons, plots and the
``ciess`` CLI — lives one layer up, in :mod:`agents.experiments`.
"""

from agents.baselines import (
    BASELINES,
    EqualSize,
    MixedRandom,
    PopularityProportional,
    SizeBaseline,
    kept_budget,
)
from agents.lagrangian import LagrangianRWTD3
from agents.policies import EntityTD3Policy, GroupScaledAdam
from agents.registry import AGENTS, make_agent
from agents.rw_td3 import ExplorationStep, RandomWalkTD3
from agents.structured import StructuredSearch, StructuredSizes

__all__ = [
    "AGENTS",
    "BASELINES",
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
]
