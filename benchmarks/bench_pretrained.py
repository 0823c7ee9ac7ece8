"""Full-size pretrained backbone vs popularity ranking on validation, per data set.

The environment normalises every quality by the pretrained full-size model, so that model
must be a real recommender: this script records how far it beats ranking items by training
popularity. Writes ``benchmarks/results/pretrained.md``.

Run::

    python benchmarks/bench_pretrained.py --data-dir ../shared/data --datasets ml-100k ml-1m
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from report import machine, md_table

from ciess_env.env import EmbeddingSizeEnv
from ciess_env.metrics import evaluate_popularity

RESULTS = Path(__file__).parent / "results" / "pretrained.md"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--datasets", nargs="+", default=["ml-100k", "ml-1m"])
    p.add_argument("--backbone", default="lightgcn")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    lines = [
        "# Pretrained full-size model vs popularity (validation split)",
        "",
        f"Command: `python {' '.join(sys.argv)}`",
        "",
        f"Machine: {machine()}",
        "",
    ]
    rows = []
    for name in args.datasets:
        env = EmbeddingSizeEnv(dataset=name, backbone=args.backbone, data_dir=args.data_dir)
        pre = env.pretrained
        seconds = "cached" if pre.from_cache else f"{pre.seconds:.1f}"
        pop = evaluate_popularity(env.data, "validation")
        ev = pre.eval
        cells = [name, args.backbone, f"{pre.best_batches:,}", seconds]
        cells += [f"{v:.4f}" for v in (ev.recall(20), pop.recall(20), ev.ndcg(20), pop.ndcg(20))]
        cells += [f"{ev.mean_user_quality:.4f}", f"{pop.mean_user_quality:.4f}"]
        rows.append(cells)
        print(cells, flush=True)
    lines += md_table(
        ["data set", "backbone", "batches to convergence", "pretrain s", "model Recall@20",
         "popularity Recall@20", "model NDCG@20", "popularity NDCG@20", "model quality",
         "popularity quality"], rows,
    )  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
