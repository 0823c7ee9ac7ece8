"""Wall-clock time of one EmbeddingSizeEnv step (retrain + evaluate), per data set and mode.

Cases: the synthetic default (the registered ``CIESS-*-Synthetic-v0`` settings, which must
stay ≤ 2 s per step on two cores), and LightGCN on ML-100K, ML-1M and Yelp2018 in scratch
mode (the paper's 2,000 / 4,000 batches, the ``-v0`` step), ``converge:50/4`` (the ``-v1``
step: the same cap, stopped on validation) and fast mode. Pretraining is excluded (cached); each
case reports the median of ``--steps`` steps at random sizes around 80–90 % sparsity.

Run::

    python benchmarks/bench_env.py --data-dir ../shared/data           # full (minutes per step)
    python benchmarks/bench_env.py --quick                             # seconds: smoke test
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from report import machine, md_table, utc_now

from ciess_env.env import EmbeddingSizeEnv

RESULTS = Path(__file__).parent / "results" / "env.md"


def cases(quick: bool) -> list[tuple[str, dict]]:
    synthetic = [(f"{b} synthetic default", {"dataset": "synthetic", "backbone": b})
                 for b in ("lightgcn", "mf", "ncf", "ngcf")]  # fmt: skip
    real = []
    for ds in ("ml-100k", "ml-1m", "yelp2018"):
        # scratch is -v0's step, converge:50/4 is -v1's, fast is the nested deviation.
        for mode in ("scratch", "fast", "converge:50/4"):
            kw: dict = {"dataset": ds, "backbone": "lightgcn", "retrain": mode}
            if quick:  # tiny budgets: checks the plumbing, not the speed
                kw |= {"batches_per_step": 128 if mode == "fast" else 16, "batch_size": 1024}
            real.append((f"lightgcn {ds} {mode}", kw))
    return synthetic + real


def time_steps(kwargs: dict, *, steps: int, device: str, data_dir: str | None,
               cache_dir: str | None, quick: bool) -> dict:  # fmt: skip
    extra: dict = {"device": device, "cache_dir": cache_dir, "report_train_seconds": True}
    if data_dir is not None and kwargs["dataset"] != "synthetic":
        extra["data_dir"] = data_dir
    if quick:
        extra |= {"pretrain_max_batches": 8, "pretrain_eval_every": 8}
    env = EmbeddingSizeEnv(**kwargs, **extra)
    t0 = time.perf_counter()
    env.reset(seed=0)
    reset_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    step_s, train_s = [], []
    for _ in range(steps):
        action = rng.uniform(-1.0, -0.6, env.n_entities).astype(np.float32)
        t0 = time.perf_counter()
        _, _, _, truncated, info = env.step(action)
        step_s.append(time.perf_counter() - t0)
        train_s.append(info["train_seconds"])
        if truncated:
            env.reset()
    return {
        "entities": env.n_entities,
        "batches": env.design.config(env.train_config).n_batches,
        "batch_size": env.train_config.batch_size,
        "reset_s": reset_s,
        "step_s": float(np.median(step_s)),
        "train_s": float(np.median(train_s)),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-dir", default=os.environ.get("CIESS_DATA_DIR"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--only", default=None, help="comma-separated substrings of case names")
    p.add_argument("--quick", action="store_true", help="tiny budgets; seconds per case")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument(
        "--threads", type=int, default=None, help="torch threads (1 avoids oversubscription)"
    )
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for name, kwargs in cases(args.quick):
        if args.only and not any(part in name for part in args.only.split(",")):
            continue
        if kwargs["dataset"] != "synthetic" and args.data_dir is None:
            print(f"skip {name}: no --data-dir / CIESS_DATA_DIR")
            continue
        r = time_steps(kwargs, steps=args.steps, device=args.device, data_dir=args.data_dir,
                       cache_dir=args.cache_dir, quick=args.quick)  # fmt: skip
        print(f"{name}: {r}", flush=True)
        rows.append((name, r))
    lines = [
        "# EmbeddingSizeEnv step time",
        "",
        f"Command: `python {' '.join(sys.argv)}`",
        "",
        f"Machine (load at the end): {machine(args.device)}."
        + (" **--quick: tiny budgets, not representative.**" if args.quick else ""),
        f"Written {utc_now()}.",
        "",
        *md_table(
            ["case", "entities", "batches × size", "first reset s", "step s (median)", "train s"],
            [
                [
                    name,
                    f"{r['entities']:,}",
                    f"{r['batches']:,} × {r['batch_size']:,}",
                    f"{r['reset_s']:.2f}",
                    f"{r['step_s']:.2f}",
                    f"{r['train_s']:.2f}",
                ]
                for name, r in rows
            ],
        ),
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
