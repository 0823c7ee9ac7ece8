"""Size-search agents for the CIESS environments: CIESS's random-walk TD3 and baselines.

Import :class:`RandomWalkTD3` and the heuristic baselines from here; :func:`make_agent` builds
any supported SB3 agent with paper-like defaults for the per-entity vector env. The size-graph
walk lives in :mod:`agents.random_walk` (not re-exported: the function shares the module's name).
"""

from agents._runner import SearchSession, search_curve
from agents.baselines import (
    BASELINES,
    EqualSize,
    MixedRandom,
    PopularityProportional,
    SizeBaseline,
    kept_budget,
)
from agents.compare import Comparison
from agents.policies import EntityTD3Policy, GroupScaledAdam
from agents.registry import AGENTS, make_agent
from agents.retrain import BudgetResult, selective_retrain
from agents.rw_td3 import ExplorationStep, RandomWalkTD3

__all__ = [
    "AGENTS",
    "BASELINES",
    "BudgetResult",
    "Comparison",
    "EntityTD3Policy",
    "EqualSize",
    "ExplorationStep",
    "GroupScaledAdam",
    "MixedRandom",
    "PopularityProportional",
    "RandomWalkTD3",
    "SearchSession",
    "SizeBaseline",
    "kept_budget",
    "make_agent",
    "search_curve",
    "selective_retrain",
]
