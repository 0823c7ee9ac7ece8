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
import sys
import time
from pathlib import Path

import numpy as np
from jsonl_cache import REPO, command_line
from report import machine, md_table

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
        rows.append([
            name, f"{data.n_users:,}", f"{data.n_items:,}", f"{data.n_interactions:,}",
            f"{load_s:.2f}", f"{split_s:.2f}", f"≤ {target:g}", "yes" if load_s <= target else "NO",
        ])  # fmt: skip
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
            *md_table(
                [
                    "data set",
                    "users",
                    "items",
                    "interactions",
                    "load + split (s)",
                    "split only (s)",
                    "target (s)",
                    "met",
                ],
                rows,
                align=["---", *["---:"] * 6, ":---:"],
            ),
            "",
        ]
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text, encoding="utf-8")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
