"""Budget arithmetic (ciess_env.budget): one implementation, worked examples, clear errors."""

from __future__ import annotations

import ast
import inspect
import re

import numpy as np
import pytest

from ciess_env import budget
from ciess_env.budget_log import BudgetLog
from ciess_env.errors import InvalidArgumentError


def test_every_old_location_is_the_one_implementation() -> None:
    """metrics, spaces, baselines and selective retraining re-export budget's objects."""
    import agents.baselines
    import agents.experiments.selective
    import ciess_env.metrics
    import ciess_env.spaces

    assert ciess_env.metrics.sparsity is budget.sparsity
    assert ciess_env.metrics.kept_parameters is budget.kept_parameters
    assert ciess_env.spaces.PAPER_BUDGETS is budget.PAPER_BUDGETS
    assert agents.baselines.kept_budget is budget.kept_budget
    assert agents.baselines.fit_to_budget is budget.fit_to_budget
    assert agents.experiments.selective.fill_to_budget is budget.fill_to_budget
    assert agents.experiments.selective.PAPER_BUDGETS is budget.PAPER_BUDGETS


def test_budget_is_a_leaf() -> None:
    """It imports nothing of the package but the error classes (any layer may use it)."""
    tree = ast.parse(inspect.getsource(budget))
    imported = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ciess_env")
    }
    assert imported == {"ciess_env.errors"}


def test_sparsity_and_kept_parameters_on_a_worked_example() -> None:
    """Sizes 2 and 4 for 3 users, 1 and 3 for 2 items at d_max 8: 2+4+2+1+3 = 12 of 40 kept."""
    users, items = np.array([2, 4, 2]), np.array([1, 3])
    assert budget.kept_parameters(users, items) == 12
    assert budget.kept_parameters(users, items, n_tables=2) == 24
    assert budget.sparsity(users, items, d_max=8) == 1 - 12 / 40
    assert budget.sparsity(users, items, d_max=8, n_tables=2) == 1 - 24 / 80
    # An elementwise mask (PEP's) with 7 surviving entries of 5 × 8.
    assert budget.sparsity_of_kept(7, 5, 8) == 1 - 7 / 40


def test_paper_budgets_and_their_exact_caps() -> None:
    assert budget.PAPER_BUDGETS == (0.8, 0.9, 0.95)
    # 0.1 · 128 · 10 = 128 exactly, not 127 (the rounding before the floor).
    assert budget.kept_budget(0.9, 10, 128) == 128
    assert [budget.kept_budget(c, 9746, 128) for c in budget.PAPER_BUDGETS] == [
        249_497,
        124_748,
        62_374,
    ]
    with pytest.raises(InvalidArgumentError, match=re.escape("must be in [0, 1), got 1.0")):
        budget.kept_budget(1.0, 10, 128)


def test_fit_to_budget_spends_the_cap_exactly_within_the_range() -> None:
    weights = np.array([1.0, 2.0, 4.0, 8.0, 100.0])
    sizes = budget.fit_to_budget(weights, 30, 1, 16)
    assert sizes.dtype == np.int64
    assert sizes.sum() == 30
    assert sizes.min() >= 1
    assert sizes.max() <= 16
    assert list(sizes) == sorted(sizes)  # larger weight, at least as large a size
    with pytest.raises(InvalidArgumentError, match=re.escape("= [5, 80] for 5 entities, got 81")):
        budget.fit_to_budget(weights, 81, 1, 16)


def test_fill_to_budget_grows_a_logged_mask_to_the_exact_cap() -> None:
    log = BudgetLog(3, 2, d_max=8)
    users, items = np.array([2, 4, 2], np.int16), np.array([1, 3], np.int16)
    log.record(episode=0, step=1, user_sizes=users, item_sizes=items,
               sparsity=budget.sparsity(users, items, 8), mean_quality=0.5)  # fmt: skip
    filled = budget.fill_to_budget(log[0], 0.5, d_max=8)
    assert int(filled.user_sizes.sum() + filled.item_sizes.sum()) == budget.kept_budget(0.5, 5, 8)
    assert filled.sparsity == 0.5
    assert filled.user_sizes.dtype == log[0].user_sizes.dtype  # the log's storage type
    assert filled.mean_quality == 0.5  # the logged score stays
    with pytest.raises(InvalidArgumentError, match=r"more than budget 0\.9 allows"):
        budget.fill_to_budget(log[0], 0.9, d_max=8)


def test_no_module_spells_the_sparsity_formula_itself() -> None:
    """Backbones, masks, baselines and benchmarks call budget's functions (one formula).

    A hand-written ``1 - kept / (d_max · N)`` drifts (a hard-coded 128, a forgotten table
    count); this scan finds the shape ``1 - <sum or count> /`` outside ``ciess_env/budget.py``.
    """
    import re
    from pathlib import Path

    root = Path(budget.__file__).resolve().parents[1]
    formula = re.compile(r"\b1(?:\.0)?\s*-\s*(?:float\()?\(?[\w.\[\]()]*(?:sum\(|kept|numel\()")
    found = [
        f"{path.relative_to(root)}:{n}: {line.strip()}"
        for folder in ("ciess_env", "agents", "benchmarks")
        for path in sorted((root / folder).rglob("*.py"))
        if path.name != "budget.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if formula.search(line)
    ]
    assert found == []
