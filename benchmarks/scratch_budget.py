"""Is the scratch step's batch budget right for each data set? Quality along one scratch step.

The paper fixes a scratch step at 2,000 batches of 10,000 for LightGCN on ML-1M (4,000 on
Yelp2018); the package uses the ML-1M budget for every other data set, ML-100K included. That is
40 passes over ML-1M's training split but 400 over ML-100K's, so this script trains LightGCN with
the env's scratch schedule at a few uniform sizes (the ES sizes of the paper's budgets) and
records the validation quality every ``--eval-every`` batches. If the full-size model peaks early
and then declines while small tables keep improving, the step over-trains large tables and a
search rewards shrinking for the wrong reason (implicit regularisation, not memory). Writes
``benchmarks/results/scratch_budget.md``.

Run::

    python benchmarks/scratch_budget.py --data-dir ../shared/data --datasets ml-100k ml-1m
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from report import md_table

from ciess_env.data import InteractionData, load_dataset
from ciess_env.metrics import evaluate
from ciess_env.recommenders import BPRTrainer, TrainConfig, make_backbone, paper_train_config

RESULTS = Path(__file__).parent / "results" / "scratch_budget.md"


def quality_along_step(
    data: InteractionData,
    config: TrainConfig,
    size: int,
    *,
    eval_every: int,
    seed: int,
    max_batches: int | None = None,
) -> tuple[list[int], list[float], list[float]]:
    """Validation mean user quality and Recall@20 every ``eval_every`` batches of one step.

    ``max_batches`` stops the step early (smoke tests); the schedule stays ``config``'s.

    Returns:
        Batch counts, qualities and recalls.
    """
    model = make_backbone("lightgcn", data, seed=seed)
    sizes = np.full(data.n_users, size), np.full(data.n_items, size)
    model.set_sizes(*sizes)
    trainer = BPRTrainer(model, data, config, seed=seed)
    end = config.n_batches if max_batches is None else min(max_batches, config.n_batches)
    batches, quality, recall = [], [], []
    while trainer.batches_done < end:
        trainer.run(min(eval_every, end - trainer.batches_done))
        result = evaluate(model, data, "validation")
        batches.append(trainer.batches_done)
        quality.append(result.mean_user_quality)
        recall.append(result.recall(20))
    return batches, quality, recall


def main(argv: list[str] | None = None) -> int:
    """Run every (data set, size) pair and write one table per data set."""
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--datasets", nargs="+", default=["ml-100k", "ml-1m"])
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 26, 13, 6])
    p.add_argument("--eval-every", type=int, default=200)
    p.add_argument("--max-batches", type=int, default=None, help="stop early (smoke runs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    lines = [
        "# Validation quality along one scratch step (LightGCN, uniform sizes)",
        "",
        f"Command: `python benchmarks/scratch_budget.py {shlex.join(argv)}` "
        f"({dt.datetime.now(dt.timezone.utc):%Y-%m-%d}, seed {args.seed}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s))",
        "",
        "Sizes 128 / 26 / 13 / 6 are full size and equal sizes (ES) at 80 / 90 / 95 % sparsity. "
        "Each cell: validation mean user quality (the env's quality) / Recall@20 after that many "
        "batches of the paper's scratch schedule (lr 0.03 × 0.9 every 200; the env's for the "
        "real data sets). "
        "**Bold**: each size's best quality.",
    ]
    for dataset in args.datasets:
        data = load_dataset(dataset, data_dir=args.data_dir)
        config = paper_train_config("lightgcn", data)
        n_train, batch_size = len(data.train.users), config.batch_size
        curves = {}
        for size in args.sizes:
            b, q, r = quality_along_step(
                data, config, size, eval_every=args.eval_every, seed=args.seed,
                max_batches=args.max_batches,
            )  # fmt: skip
            curves[size] = (b, q, r)
            print(f"{dataset} d={size}: best quality {max(q):.4f} at {b[int(np.argmax(q))]}")
        batches = curves[args.sizes[0]][0]
        lines += [
            "",
            f"## {dataset} ({n_train:,} training pairs; one batch = {batch_size:,} triples)",
            "",
        ]
        table = []
        for i, n in enumerate(batches):
            cells = []
            for s in args.sizes:
                _, q, r = curves[s]
                text = f"{q[i]:.4f} / {r[i]:.4f}"
                cells.append(f"**{text}**" if i == int(np.argmax(q)) else text)
            table.append([f"{n:,}", f"{n * batch_size / n_train:.0f}", *cells])
        head = ["batches", "passes over train", *(f"d = {s}" for s in args.sizes)]
        lines += md_table(head, table)
        end = {s: curves[s][1][-1] / max(curves[s][1]) for s in args.sizes}
        lines += [
            "",
            "End of step ÷ best quality: "
            + ", ".join(f"d = {s}: {v:.3f}" for s, v in end.items())
            + ".",
        ]
    lines += ["", f"Run time: {time.perf_counter() - t0:,.0f} s."]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
