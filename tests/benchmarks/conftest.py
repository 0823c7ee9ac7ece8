"""The scripts of ``benchmarks/`` import each other by plain name (``from report import ...``),
as they do when run as ``python benchmarks/<script>.py``; their tests see them the same way.
"""

import sys
from pathlib import Path

BENCHMARKS = str(Path(__file__).resolve().parents[2] / "benchmarks")
if BENCHMARKS not in sys.path:
    sys.path.insert(0, BENCHMARKS)
