"""The stopping rules the fidelity study replays from its probes, and where its files live.

Shared by ``fidelity_ground_truth.py`` (which probes) and ``fidelity_report.py`` (which reads
the probes); neither imports the other's module for these, so the two scripts form no circle.
Each rule is replayed by the env's own early stopping
(:meth:`ciess_env.recommenders.pretraining.EarlyStopping.replay`), not a copy of it.
"""

from __future__ import annotations

from pathlib import Path

from ciess_env.config import FinalRetrainRule
from ciess_env.recommenders.pretraining import EarlyStopping
from ciess_env.retrain import merged_batches

RESULTS = Path(__file__).parent / "results"

#: Stopping rules replayed from probes: label -> (eval_every, patience, scale_to_merged).
RULES: dict[str, tuple[int, int, bool]] = {
    "legacy (every 200, patience 2, same count)": (200, 2, False),
    "every 200, patience 2, scaled": (200, 2, True),
    "every 100, patience 4, scaled": (100, 4, True),
    "every 50, patience 4, scaled": (50, 4, True),
    "every 50, patience 8, same count": (50, 8, False),
    "every 50, patience 8, scaled (default)": (50, 8, True),
}
FIXED = (400,)  # a fixed train + validation count, for reference
DEFAULT = "every 50, patience 8, scaled (default)"


def replay(history: list, every: int, patience: int, cap: int) -> tuple[int, bool]:
    """(best batch, stopped) of "evaluate every ``every``, stop after ``patience``" on a curve.

    ``stopped`` is False when the curve ended before the rule would have stopped (the probe was
    cut short): the rule's choice is then the best so far.
    """
    return EarlyStopping.replay(history, eval_every=every, patience=patience, max_batches=cap)


def rule_count(history: list, data, rule: str, cap: int) -> tuple[int, int, bool]:
    """(best batch on validation, train + validation batches, stopped) of ``rule``."""
    every, patience, scale = RULES[rule]
    best, stopped = replay(history, every, patience, cap)
    return best, merged_batches(best, data, FinalRetrainRule(every, patience, scale)), stopped
