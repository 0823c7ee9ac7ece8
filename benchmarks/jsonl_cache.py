"""The JSONL file of finished units that every resumable study in ``benchmarks/`` keeps.

A long study appends one line per finished unit of work (a retraining, a search, a sweep
cell) and skips, on restart, every unit already in the file, so it can span several sittings
and several processes: each process re-reads the file before each unit, and a line is
appended in one write once its unit is done.
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Any

from report import load_average  # recorded with each unit; re-exported for the studies

__all__ = ["REPO", "append_unit", "command_line", "load_average", "read_units"]

REPO = Path(__file__).resolve().parents[1]


def read_units(path: Path) -> list[dict[str, Any]]:
    """Every finished unit in ``path`` (empty before the first)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def append_unit(path: Path, row: dict[str, Any]) -> None:
    """Append one finished unit (creating the folder); NumPy scalars are written as floats."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(json.dumps(row, default=float) + "\n")


def command_line(script: str, argv: list[str] | tuple[str, ...]) -> str:
    """The command to record with a unit, runnable from the repository root on any machine.

    Absolute paths inside the clone or beside it are rewritten relative to the repository
    root (``/home/me/ciess-env/benchmarks/results`` is recorded as ``benchmarks/results``, a
    data folder beside the clone as ``../shared/data``): a results file must not carry one
    machine's layout. Paths elsewhere (``/tmp/...``) stay absolute.
    """
    args = []
    for arg in argv:
        key, sep, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
        if os.path.isabs(value):
            # As written first (a data folder may be a symlink beside the clone), then resolved.
            for path in (Path(os.path.normpath(value)), Path(value).resolve()):
                if path.is_relative_to(REPO.parent):
                    value = os.path.relpath(path, REPO)
                    break
        args.append(f"{key}{sep}{value}")
    return f"python {script} " + shlex.join(args)
