"""Benchmark: load + per-user 50/25/25 split of the real data sets (best of N runs).

Usage::

    CIESS_DATA_DIR=/path/to/data python benchmarks/bench_data.py [--repeats 3] [--data-dir DIR]

Writes ``benchmarks/results/data.md``. Targets (issue 2): ML-1M load + split ≤ 1.5 s,
Yelp2018 ≤ 5 s. "load + split" is one ``load_dataset`` call (find files, parse, integrity check,
index, split); "split only" is ``split_per_user`` on the already indexed pairs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from jsonl_cache import REPO, command_line

from ciess_env.data import load_dataset, resolve_data_dir, split_per_user

DATASETS = {"ml-1m": 1.5, "yelp2018": 5.0}  # name → target seconds for load + split
RESULTS = Path(__file__).resolve().parent / "results" / "data.md"


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{cpu}, {cores} usable cores; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="default: $CIESS_DATA_DIR")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    data_dir = resolve_data_dir(args.data_dir)
    rows = []
    for name, target in DATASETS.items():
        data = load_dataset(name, data_dir=data_dir)  # warm-up (imports, page cache)
        load_s = best_of(lambda n=name: load_dataset(n, data_dir=data_dir), args.repeats)
        users = np.concatenate([data.train.users, data.validation.users, data.test.users])
        items = np.concatenate([data.train.items, data.validation.items, data.test.items])
        split_s = best_of(lambda u=users, i=items: split_per_user(u, i, seed=42), args.repeats)
        rows.append(
            f"| {name} | {data.n_users:,} | {data.n_items:,} | {data.n_interactions:,} | "
            f"{load_s:.2f} | {split_s:.2f} | ≤ {target:g} | {'yes' if load_s <= target else 'NO'} |"
        )
        print(rows[-1])
    command = command_line("benchmarks/bench_data.py", sys.argv[1:])
    text = "\n".join(
        [
            "# Data layer: load + split timings",
            "",
            f"- Date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
            f"- Machine: {machine()}",
            f"- Data: `{os.path.relpath(data_dir, REPO)}` (relative to the repository root)",
            f"- Command: `{command.strip()}` (best of {args.repeats}, after one warm-up run)",
            "",
            "| data set | users | items | interactions | load + split (s) | split only (s) "
            "| target (s) | met |",
            "|---|---:|---:|---:|---:|---:|---:|:---:|",
            *rows,
            "",
        ]
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text, encoding="utf-8")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
