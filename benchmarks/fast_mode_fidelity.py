"""How well do cheap retraining designs rank size assignments like the paper's scratch runs?

The env's ``retrain="fast"`` must preserve the *ranking* of size assignments by quality (the
final masks are retrained from scratch anyway). This script scores ≥ 20
assignments spread over 70–97 % sparsity — equal sizes (ES) at several sizes, mixed random
(MR), popularity-proportional with positive and negative exponents, and random perturbations —
once with the paper's scratch retraining and once with each candidate design, all through the
env's own code (``ciess_env.retrain``), with the same seeds per assignment. It reports the
Spearman correlation of the quality under each design with scratch quality, and the cost ratio.

Run (the lead runs the full one on a GPU)::

    python benchmarks/fast_mode_fidelity.py --data-dir ../shared/data --device cuda
    python benchmarks/fast_mode_fidelity.py --quick   # synthetic data, tiny budgets, seconds
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from report import md_table
from scipy.stats import spearmanr

from ciess_env import spaces
from ciess_env.budget import sparsity
from ciess_env.env import EmbeddingSizeEnv
from ciess_env.retrain import RetrainDesign, retrain_and_evaluate

RESULTS = Path(__file__).parent / "results" / "env_fast_mode.md"


def fidelity_masks(
    user_freq: np.ndarray, item_freq: np.ndarray, d_max: int, rng: np.random.Generator
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """22 size assignments between about 70 % and 97 % sparsity (sizes scale with d_max)."""
    n_u, n_i = len(user_freq), len(item_freq)

    def scaled(mean: float) -> float:
        return mean * d_max / 128

    def clip(x: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(x), 1, d_max).astype(np.int64)

    def es(size: float) -> tuple[np.ndarray, np.ndarray]:
        s = max(1, round(scaled(size)))
        return np.full(n_u, s), np.full(n_i, s)

    def mr(mean: float) -> tuple[np.ndarray, np.ndarray]:
        hi = 2 * scaled(mean) - 1
        return clip(rng.uniform(1, hi, n_u)), clip(rng.uniform(1, hi, n_i))

    def pop(alpha: float, mean: float) -> tuple[np.ndarray, np.ndarray]:
        def side(freq: np.ndarray) -> np.ndarray:
            w = np.maximum(freq, 1).astype(np.float64) ** alpha
            return clip(w / w.mean() * scaled(mean))

        return side(user_freq), side(item_freq)

    def perturb(base: tuple[np.ndarray, np.ndarray], sd: float) -> tuple[np.ndarray, np.ndarray]:
        return tuple(clip(b + rng.normal(0, scaled(sd), b.shape)) for b in base)  # type: ignore[return-value]

    masks = [(f"ES {s}", *es(s)) for s in (4, 8, 13, 19, 25, 32, 38)]
    masks += [(f"MR mean {m}", *mr(m)) for m in (13, 19, 25, 38)]
    masks += [(f"pop^{a} mean {m}", *pop(a, m)) for a in (0.25, 0.5, 1.0, -0.25) for m in (13, 25)]
    masks += [
        ("ES 25 ± 8", *perturb(es(25), 8)),
        ("ES 13 ± 5", *perturb(es(13), 5)),
        ("pop^0.25 19 ± 6", *perturb(pop(0.25, 19), 6)),
    ]
    return masks


def run(args: argparse.Namespace) -> pd.DataFrame:
    kwargs: dict = {
        "dataset": args.dataset,
        "backbone": args.backbone,
        "data_dir": args.data_dir,
        "device": args.device,
        "d_max": args.d_max,
        "batches_per_step": args.scratch_batches,
        "batch_size": args.batch_size,
        "pretrain_max_batches": args.pretrain_max_batches,
        "pretrain_eval_every": args.pretrain_eval_every,
        "cache_dir": args.cache_dir,
    }
    if args.quick:
        kwargs["dataset_kwargs"] = {"n_users": 200, "n_items": 120, "mean_interactions": 12}
    env = EmbeddingSizeEnv(**{k: v for k, v in kwargs.items() if v is not None})
    data, config = env.data, env.train_config
    t0 = time.perf_counter()
    full = env.pretrained
    print(
        f"pretrained full-size model: {full.best_batches} batches, "
        f"{time.perf_counter() - t0:.1f} s, quality {full.eval.mean_user_quality:.4f}"
    )
    full_q = np.concatenate([full.eval.user_quality, full.eval.item_quality])
    designs = [RetrainDesign("scratch")] + [RetrainDesign.parse(d) for d in args.designs.split(",")]
    nested_state = None
    if any(d.needs_nested_model for d in designs):
        t0 = time.perf_counter()
        nested = env.nested_pretrained
        nested_state = nested.state_dict
        print(f"nested model: {nested.best_batches} batches, {time.perf_counter() - t0:.1f} s, "
              f"full-size quality {nested.eval.mean_user_quality:.4f}")  # fmt: skip

    rng = np.random.default_rng(args.seed)
    masks = fidelity_masks(data.user_freq, data.item_freq, env.d_max, rng)
    rows = []
    for i, (name, users, items) in enumerate(masks):
        row: dict = {"mask": name, "sparsity": sparsity(users, items, env.d_max)}
        for design in designs:
            outcome = retrain_and_evaluate(
                env.step_config.replace(train=config, retrain=str(design)), data=data,
                user_sizes=users, item_sizes=items, init_seed=1000 + i, train_seed=2000 + i,
                nested_state=nested_state,
            )  # fmt: skip
            ev = outcome.eval
            quality = np.concatenate([ev.user_quality, ev.item_quality])
            row[f"{design} quality"] = ev.mean_user_quality
            row[f"{design} q̄"] = float(spaces.quality_ratio(quality, full_q).mean())
            row[f"{design} train_s"] = outcome.train_seconds
            row[f"{design} total_s"] = outcome.train_seconds + ev.seconds
        rows.append(row)
        done = ", ".join(f"{d} {row[f'{d} quality']:.4f}" for d in designs)
        print(f"[{i + 1}/{len(masks)}] {name}: sparsity {row['sparsity']:.3f}, {done}", flush=True)
        if len(rows) >= 3:  # keep a partial report on disk in case the run is cut short
            write(report(pd.DataFrame(rows), designs, env), args.out)
    return pd.DataFrame(rows), designs, env


def write(text: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def report(df: pd.DataFrame, designs: list[RetrainDesign], env: EmbeddingSizeEnv) -> str:
    scratch = str(designs[0])
    lines = [
        "# Fast-mode fidelity: cheap retraining designs vs the paper's scratch retraining",
        "",
        f"Command: `python {' '.join(sys.argv)}`",
        "",
        f"Data: {env.data!r}; backbone {env.backbone}; device {env.device}; scratch = "
        f"{env.train_config.n_batches} batches of {env.train_config.batch_size}, lr "
        f"{env.train_config.lr} × {env.train_config.lr_decay} every "
        f"{env.train_config.decay_batches}. {len(df)} size assignments, sparsity "
        f"{df['sparsity'].min():.3f}–{df['sparsity'].max():.3f}.",
        "",
    ]
    table = []
    base_t = df[f"{scratch} train_s"].mean()
    base_total = df[f"{scratch} total_s"].mean()
    for d in designs:
        rho_u = spearmanr(df[f"{scratch} quality"], df[f"{d} quality"]).statistic
        rho_q = spearmanr(df[f"{scratch} q̄"], df[f"{d} q̄"]).statistic
        table.append([
            d, f"{rho_u:.3f}", f"{rho_q:.3f}", f"{df[f'{d} train_s'].mean():.2f}",
            f"{df[f'{d} train_s'].mean() / base_t:.3f}",
            f"{df[f'{d} total_s'].mean() / base_total:.3f}",
        ])  # fmt: skip
    lines += md_table(["design", "Spearman (mean user quality)", "Spearman (q̄)",
                       "train s / step", "cost ratio (train)", "cost ratio (train + eval)"],
                      table)  # fmt: skip
    lines += ["", "Per assignment (validation mean user quality):", ""]
    lines += md_table(
        ["mask", "sparsity", *(f"{d} quality" for d in designs)],
        [[r["mask"], f"{r['sparsity']:.3f}", *(r[f"{d} quality"] for d in designs)]
         for _, r in df.iterrows()],
    )  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dataset", default="ml-1m")
    p.add_argument("--backbone", default="lightgcn")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--designs", default="short:8,short:4,nested:0,nested:20,nested:100",
                   help="comma-separated designs compared with scratch")  # fmt: skip
    p.add_argument("--scratch-batches", type=int, default=None, help="default: paper (2,000)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--d-max", type=int, default=128)
    p.add_argument("--pretrain-max-batches", type=int, default=None)
    p.add_argument("--pretrain-eval-every", type=int, default=None)
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument(
        "--quick", action="store_true", help="synthetic 200 × 120 data, 16 scratch batches"
    )
    args = p.parse_args()
    if args.quick:
        args.dataset = "synthetic"
        args.scratch_batches = args.scratch_batches or 16
        args.batch_size = args.batch_size or 512
        args.pretrain_max_batches = args.pretrain_max_batches or 32
        args.pretrain_eval_every = args.pretrain_eval_every or 16
    df, designs, env = run(args)
    text = report(df, designs, env)
    write(text, args.out)
    print(text)


if __name__ == "__main__":
    main()
