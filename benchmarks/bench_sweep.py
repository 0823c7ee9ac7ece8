"""Sequential vs ``ciess sweep`` on Ray: wall time of the same 8 synthetic cells.

Both runs execute the same cells (RW-TD3, seeds 0–7, one search episode each, selective
retraining at 80/90/95 %) from a warm pretraining cache, each in a fresh subprocess:

* ``sequential``: ``ciess sweep SPEC --sequential`` — one process, one cell after another,
  torch on one thread (``num_cpus = 1`` per cell);
* ``ray``: ``ciess sweep SPEC --num-cpus N`` — a local Ray with N CPUs, one cell per CPU.

The ratio sequential / ray is the speed-up (the ideal is N). Ray's start-up (tens of seconds on
a loaded machine) is inside the ray run's wall time. The results file records the command, the
load average before and after each run, and that the machine was shared.

Run::

    python benchmarks/bench_sweep.py --cpus 2 --note "shared with other jobs"
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import machine, md_table

RESULTS = Path(__file__).parent / "results" / "sweep.md"

SPEC = """
description = "bench_sweep: 8 synthetic cells"
env_id = "CIESS-LightGCN-Synthetic-v0"
agents = ["rw-td3"]
seeds = {cells}
episodes = {episodes}
top_l = 1
budgets = [0.8, 0.9, 0.95]
retrain_batches = 200

[env_kwargs]
preset = "tiny"
cache_dir = "{cache}"

[resources]
num_cpus = 1
"""


def _run(args: list[str]) -> tuple[float, float, float]:
    """Wall seconds of ``ciess ...`` in a subprocess, and the 1-min load before and after."""
    load0 = os.getloadavg()[0]
    _run.started = time.time()  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    cmd = [sys.executable, "-m", "agents.experiments.cli", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(proc.stdout + proc.stderr)
    return seconds, load0, os.getloadavg()[0]


def _spread(values: list[float]) -> str:
    return f"{min(values):.1f}–{max(values):.1f} (sum {sum(values):.0f})"


def main(argv: list[str] | None = None) -> int:
    """Warm the cache, run both modes, write ``benchmarks/results/sweep.md``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray")
    p.add_argument("--cells", type=int, default=8)
    p.add_argument("--episodes", type=int, default=1)
    p.add_argument("--note", default="", help="what else ran on the machine")
    p.add_argument("--output", type=Path, default=RESULTS)
    p.add_argument("--keep", action="store_true", help="keep the sweep folders (printed)")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    print(f"work folder: {work}", flush=True)
    spec = work / "bench.toml"
    spec.write_text(SPEC.format(cells=args.cells, episodes=args.episodes, cache=work / "cache"))
    # Warm the pretraining cache with one throw-away cell, so neither run pays for it.
    warm = work / "warm.toml"
    warm.write_text(SPEC.format(cells=1, episodes=1, cache=work / "cache"))
    _run(["sweep", str(warm), "--output", str(work / "warm"), "--sequential", "--no-progress"])
    seq = _run(["sweep", str(spec), "--output", str(work / "seq"), "--sequential",
                "--no-progress"])  # fmt: skip
    ray = _run(["sweep", str(spec), "--output", str(work / "ray"), "--num-cpus", str(args.cpus),
                "--no-progress"])  # fmt: skip
    # Ray's start-up: from the command's start to the first cell starting on a worker.
    first = min(
        dt.datetime.fromisoformat(json.loads(p.read_text())["started"]).timestamp()
        for p in (work / "ray" / "cells").glob("*/done.json")
    )
    startup = first - _run.started  # type: ignore[attr-defined]
    cell_s = {
        mode: [
            json.loads(p.read_text())["seconds"]
            for p in (work / mode / "cells").glob("*/done.json")
        ]
        for mode in ("seq", "ray")
    }
    same = (work / "seq" / "results.csv").read_text().count("\n") == (
        work / "ray" / "results.csv"
    ).read_text().count("\n")
    command = "python benchmarks/bench_sweep.py " + shlex.join(argv or sys.argv[1:])
    lines = [
        "# `ciess sweep` on Ray vs sequential: wall time of the same cells",
        "",
        f"- Command: `{command}`",
        f"- Date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {machine()}",
        f"- Cells: {args.cells} × RW-TD3 on `CIESS-LightGCN-Synthetic-v0` (`preset='tiny'`), "
        f"{args.episodes} episode(s), top-1 retraining (≤ 200 batches) at 80/90/95 %; "
        "warm pretraining cache; one torch thread per cell",
        *([f"- Note: {args.note}"] if args.note else []),
        "",
        *md_table(
            ["run", "wall s", "1-min load before", "after"],
            [
                [name, f"{s:.1f}", f"{before:.2f}", f"{after:.2f}"]
                for name, (s, before, after) in (
                    ("sequential (`--sequential`)", seq),
                    (f"`ciess sweep` (local Ray, {args.cpus} CPUs)", ray),
                )
            ],
        ),
        "",
        f"**Speed-up sequential / Ray: {seq[0] / ray[0]:.2f}×** (ideal {args.cpus}×; Ray's "
        f"start-up, ≈ {startup:.0f} s from the command to the first cell on a worker, is "
        f"included). Seconds per cell, sequential: {_spread(cell_s['seq'])}; on Ray: "
        f"{_spread(cell_s['ray'])} (each worker loads the data and the cached pretrained model "
        "once). Both runs wrote the same number of result rows: "
        f"{'yes' if same else 'NO'}.",
        "",
        "The machine is shared: the load averages above say how busy it was; a run with other "
        "jobs on the cores understates the speed-up.",
    ]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
