"""benchmarks/scratch_budget.py: one table per data set, each size's best batch count in bold."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "scratch_budget.py"


def test_scratch_budget_writes_quality_along_the_step(tmp_path):
    spec = importlib.util.spec_from_file_location("scratch_budget", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["scratch_budget"] = module
    try:
        spec.loader.exec_module(module)
        out = tmp_path / "budget.md"
        argv = ["--datasets", "synthetic", "--sizes", "16", "2", "--eval-every", "2",
                "--max-batches", "6", "--out", str(out)]  # fmt: skip
        assert module.main(argv) == 0
    finally:
        sys.modules.pop("scratch_budget", None)
    text = out.read_text()
    assert "## synthetic (" in text
    assert "| batches | passes over train | d = 16 | d = 2 |" in text
    rows = [line for line in text.splitlines() if re.match(r"\| \d", line)]
    assert [row.split("|")[1].strip() for row in rows] == ["2", "4", "6"]
    for col in (3, 4):  # exactly one best (bold) cell per size
        assert sum("**" in row.split("|")[col] for row in rows) == 1
    cells = re.findall(r"(\d\.\d{4}) / (\d\.\d{4})", text)
    assert len(cells) == 6
    assert all(0.0 <= float(q) <= 1.0 and 0.0 <= float(r) <= 1.0 for q, r in cells)
    assert re.search(r"End of step ÷ best quality: d = 16: [01]\.\d{3}, d = 2: [01]\.\d{3}\.", text)
