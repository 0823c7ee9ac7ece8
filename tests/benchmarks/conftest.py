"""Tests of the scripts in ``benchmarks/``: that folder is on ``sys.path`` for them.

The scripts import each other by plain name (``from report import ...``), as they do when run
as ``python benchmarks/<script>.py``; their tests import them the same way.
"""

import sys
from pathlib import Path

BENCHMARKS = str(Path(__file__).resolve().parents[2] / "benchmarks")
if BENCHMARKS not in sys.path:
    sys.path.insert(0, BENCHMARKS)
