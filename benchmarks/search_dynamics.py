"""Per-episode search dynamics of RandomWalkTD3 on the synthetic default (fast mode).

Prints and records the per-episode mean reward, quality ratio, sizes and sparsity, with and
without a random warm-up (``learning_starts`` in episodes), to show how the policy's sizes
evolve. Writes ``benchmarks/results/search_dynamics.md``.

Run::

    OMP_NUM_THREADS=1 python benchmarks/search_dynamics.py --warmups 0 3 --episodes 10
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from report import md_table

from agents.experiments import SearchSession

RESULTS = Path(__file__).parent / "results" / "search_dynamics.md"
COLUMNS = ["reward", "mean_quality", "mean_user_size", "mean_item_size", "sparsity"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--env-id", default="CIESS-LightGCN-Synthetic-v0")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--warmups", type=int, nargs="+", default=[0, 3], help="warm-up episodes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()
    lines = ["# RandomWalkTD3 search dynamics", "", f"Command: `python {' '.join(sys.argv)}`", ""]
    for warmup in args.warmups:
        session = SearchSession(args.env_id, seed=args.seed, progress_bar=False,
                                env_kwargs={"retrain": "fast"})  # fmt: skip
        n = session.env.n_entities
        t0 = time.perf_counter()
        _, curve = session.search("rw-td3", episodes=args.episodes, learning_starts=warmup * 10 * n)
        per = curve.groupby("episode")[COLUMNS].mean()
        lines += [
            f"## {warmup} warm-up episode(s) of uniformly random sizes "
            f"({time.perf_counter() - t0:.0f} s)",
            "",
            *md_table(
                ["episode", *COLUMNS],
                [[ep, *(row[c] for c in COLUMNS)] for ep, row in per.iterrows()],
                spec=".3f",
            ),
        ]
        lines.append("")
        print("\n".join(lines[-len(per) - 5 :]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
