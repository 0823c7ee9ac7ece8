"""Experiments built from agents: search sessions, selective retraining, comparisons, plots, CLI.

This is the top layer: it may import every agent and the env, and nothing below imports it.
Every name loads on first use (PEP 562), so the ``ciess`` command line
(:mod:`agents.experiments.cli`) answers ``--help`` without importing torch, and importing this
package needs no matplotlib.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ciess_env._lazy import lazy_exports

if TYPE_CHECKING:
    from agents.experiments.comparison import Comparison, compare
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

_EXPORTS = {
    "Comparison": "agents.experiments.comparison",
    "compare": "agents.experiments.comparison",
    "PAPER_BUDGETS": "agents.experiments.selective",
    "BudgetResult": "agents.experiments.selective",
    "selective_retrain": "agents.experiments.selective",
    "SearchSession": "agents.experiments.session",
    "best_entry": "agents.experiments.session",
    "search_curve": "agents.experiments.session",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
