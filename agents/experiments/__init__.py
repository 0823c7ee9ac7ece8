"""Experiments built from agents: search sessions, selective retraining, comparisons, plots, CLI.

This is the top layer: it may import every agent and the env, and nothing below imports it.
The figures (:mod:`agents.experiments.plots`) and the ``ciess`` command line
(:mod:`agents.experiments.cli`) load on demand, so importing this package needs no matplotlib.
"""

from agents.experiments.compare import Comparison, compare
from agents.experiments.selective import PAPER_BUDGETS, BudgetResult, selective_retrain
from agents.experiments.session import SearchSession, best_entry, search_curve

__all__ = [
    "PAPER_BUDGETS",
    "BudgetResult",
    "Comparison",
    "SearchSession",
    "best_entry",
    "compare",
    "search_curve",
    "selective_retrain",
]
