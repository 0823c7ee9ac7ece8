"""The report toolkit of ``benchmarks/``: headers, markdown tables and intervals, written once.

Every results file in ``benchmarks/results/`` says how it was made (the command, the machine and
how busy it was) and holds GitHub markdown tables; the studies report means with 95 % intervals
over seeds. These helpers are the one way to write each of those, so that a results file reads
the same whichever script wrote it, and a speed benchmark records the same machine facts as a
study. Intervals come from :mod:`agents.experiments.stats` (never re-derived here).
"""

from __future__ import annotations

import datetime as dt
import math
import os
import platform
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "ci",
    "cpu_name",
    "diff",
    "fmt",
    "header",
    "load_average",
    "machine",
    "md_table",
    "utc_now",
]


def load_average() -> float:
    """The 1-minute load average (NaN where the platform has none).

    Timings on a shared machine are only comparable together with how busy it was.
    """
    return float(os.getloadavg()[0]) if hasattr(os, "getloadavg") else float("nan")


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: str | None = None, *, load: bool = True) -> str:
    """One line naming the machine a number was measured on.

    OS, CPU, usable cores, Python, torch and its threads, the package version, the device (and
    the GPU's name when it is CUDA) and, with ``load``, the 1-minute load average now.
    """
    import torch

    import ciess_env

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    text = (
        f"{platform.system()} {platform.machine()} ({cpu_name()}), {cores} usable cores, "
        f"Python {platform.python_version()}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), ciess-env {ciess_env.__version__}"
    )
    if device is not None:
        text += f", device {device}"
        if str(device).startswith("cuda") and torch.cuda.is_available():
            text += f" ({torch.cuda.get_device_name(torch.device(device))})"
    if load and hasattr(os, "getloadavg"):
        text += f"; 1-min load average {load_average():.2f}"
    return text


def utc_now() -> str:
    """``YYYY-MM-DD HH:MM UTC``: when a results file was written."""
    return f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC"


def header(
    title: str, *, command: str, machine_line: str | None = None, lines: Sequence[str] = ()
) -> list[str]:
    """A results file's opening: ``# title``, then the command, machine and more bullet lines.

    Args:
        title: The heading, without ``#``.
        command: The command that produced the numbers (as :func:`jsonl_cache.command_line`
            records it), shown verbatim in backticks.
        machine_line: :func:`machine`'s line; None leaves the bullet out (a file rendered from
            cached units, whose machine facts travel with each unit).
        lines: Further bullets (settings, seeds, notes), without the leading ``- ``.
    """
    out = [f"# {title}", "", f"- Command: `{command}`"]
    if machine_line is not None:
        out.append(f"- Machine: {machine_line}")
    out += [f"- {line}" for line in lines]
    return [*out, ""]


def fmt(value: object, spec: str = ".4f", missing: str = "—") -> str:
    """A table cell: floats with ``spec``, NaN or None as ``missing``, anything else as text."""
    if value is None:
        return missing
    if isinstance(value, float | np.floating):
        return missing if math.isnan(value) else format(value, spec)
    return str(value)


def md_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    align: Sequence[str] | None = None,
    spec: str = ".4f",
    missing: str = "—",
) -> list[str]:
    """A GitHub markdown table as lines: header, rule, one line per row.

    Cells go through :func:`fmt` (floats with ``spec``, NaN as ``missing``; strings as they are,
    so a caller formats a cell of its own kind before). ``align`` gives each column's rule
    (``"---"``, ``"---:"``, ``":---:"``); default ``---`` everywhere.

    Raises:
        ValueError: A row's length differs from the header's.
    """
    rule = list(align) if align is not None else ["---"] * len(headers)
    if len(rule) != len(headers):
        msg = f"`align` must give one rule per column ({len(headers)}), got {len(rule)}."
        raise ValueError(msg)
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join(rule) + "|"]
    for row in rows:
        if len(row) != len(headers):
            msg = f"each row must have {len(headers)} cells (the headers), got {len(row)}: {row!r}."
            raise ValueError(msg)
        out.append("| " + " | ".join(fmt(v, spec, missing) for v in row) + " |")
    return out


def ci(values: Sequence[float], spec: str = ".4f", *, missing: str = "—") -> str:
    """Mean over seeds [95 % percentile-bootstrap interval], via :mod:`agents.experiments.stats`.

    Below ``stats.MIN_SEEDS`` values the mean alone; no value: ``missing``.
    """
    from agents.experiments.stats import bootstrap_ci

    return bootstrap_ci(values).format(spec, missing=missing)


def diff(
    x: Sequence[float],
    y: Sequence[float],
    *,
    paired: bool = True,
    spec: str = "+.4f",
    missing: str = "—",
) -> str:
    """``mean(x) − mean(y)`` [95 % interval], ``*`` where the interval excludes 0."""
    from agents.experiments.stats import difference_ci

    return difference_ci(x, y, paired=paired).format(spec, star=True, missing=missing)
