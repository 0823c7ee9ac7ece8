"""Training cost proportional to what is kept (issue 13); writes benchmarks/results/active_width.md.

Usage:
    python benchmarks/bench_active_width.py batch [--data-dir DIR]
    python benchmarks/bench_active_width.py masks --log RUN/budget_log [--data-dir DIR]
    python benchmarks/bench_active_width.py step [--data-dir DIR] [--epochs 5]
    python benchmarks/bench_active_width.py rss [--data-dir DIR] [--steps 100]
    python benchmarks/bench_active_width.py heap [--data-dir DIR] [--steps 15]
    python benchmarks/bench_active_width.py report

Every part compares the two computations of the backbones in ONE process: ``before`` is
``Backbone.full_width = True`` (all ``d_max`` columns, float masks rebuilt from bool every
batch, L2 over gathered rows, plain Adam: the code before issue 13) and ``after`` the default
(active width ``max(sizes)``, cached masks, ``bincount`` L2, fused Adam).

* ``batch``: seconds per 10,000-triple BPR batch of every backbone at full size (d = 128, so
  only the per-batch savings act), old and new interleaved chunk by chunk, best chunk each.
* ``masks``: takes three masks from a real RW-TD3 search log (the last step of each episode)
  and saves them to ``benchmarks/results/rwtd3_masks_ml1m.npz`` (committed).
* ``step``: one scratch env step (fresh model, BPR training, full validation evaluation,
  through ``retrain_and_evaluate``) on ML-1M for ES masks at 80 / 90 / 95 % and the three RW-TD3
  masks, before and after, same seeds; records both validation metrics.
* ``rss``: resident memory of an ML-1M fast-mode env over ``--steps`` steps (seeded random
  actions).
* ``heap``: resident memory along ``--steps`` short retraining steps without, then with, the
  heap release between steps (what made the env's memory drift).

Each measured unit is appended to ``benchmarks/results/active_width.jsonl`` as soon as it
finishes (a rerun skips units already there), and ``report`` (run after each part) rewrites the
markdown from it. The machine is shared (2 cores, other jobs running), so every unit records
the 1-minute load average; timings are best-of-chunks for that reason.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from jsonl_cache import append_unit, command_line, load_average, read_units
from report import machine, md_table

from ciess_env.budget_log import BudgetLog
from ciess_env.config import StepConfig
from ciess_env.data import load_dataset
from ciess_env.metrics import evaluate
from ciess_env.recommenders import BACKBONES, Backbone, BPRTrainer, TrainConfig, make_backbone
from ciess_env.recommenders.trainer import paper_train_config

RESULTS = Path(__file__).parent / "results"
JSONL = RESULTS / "active_width.jsonl"
MASKS = RESULTS / "rwtd3_masks_ml1m.npz"
REPORT = RESULTS / "active_width.md"
SEED = 0
ENV_IDS = {"ml-1m": "CIESS-LightGCN-ML1M-v0", "ml-100k": "CIESS-LightGCN-ML100K-v0"}


def _rss_mb() -> float:
    """Resident set size of this process in MB (Linux /proc; nan elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except OSError:
        return float("nan")
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _done() -> set[str]:
    return {r["unit"] for r in read_units(JSONL)}


def _append(record: dict) -> None:
    record |= {
        "load_1min": round(load_average(), 2),
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": command_line("benchmarks/bench_active_width.py", sys.argv[1:]),
        "threads": torch.get_num_threads(),
    }
    append_unit(JSONL, record)
    print(json.dumps(record), flush=True)


class full_width:
    """Within the block every backbone computes the old way (``Backbone.full_width``)."""

    def __init__(self, on: bool) -> None:
        self.on = on

    def __enter__(self) -> None:
        Backbone.full_width = self.on

    def __exit__(self, *exc: object) -> None:
        Backbone.full_width = False


# ------------------------------------------------------------------ batch
def part_batch(data, args) -> None:
    done = _done()
    for name in args.backbones or BACKBONES:
        unit = f"batch/{name}"
        if unit in done:
            continue
        best = {}
        trainers = {}
        for path in ("before", "after"):
            with full_width(path == "before"):
                model = make_backbone(name, data, seed=SEED)
                trainers[path] = BPRTrainer(model, data, TrainConfig(n_batches=1), seed=SEED)
                trainers[path].run(2)  # warm-up
            best[path] = math.inf
        evals = {"before": math.inf, "after": math.inf}
        if name == "ncf":  # the scoring block size before issue 13
            trainers["before"].model.score_chunk_elems = 1 << 24
        for _ in range(args.chunks):  # interleaved, so load changes hit both paths alike
            for path in ("before", "after"):
                with full_width(path == "before"):
                    r = trainers[path].run(args.batches)
                best[path] = min(best[path], r.seconds_per_batch)
        for _ in range(args.eval_repeats):
            for path in ("before", "after"):
                with full_width(path == "before"):
                    seconds = evaluate(trainers[path].model, data, "validation").seconds
                evals[path] = min(evals[path], seconds)
        _append({
            "unit": unit, "part": "batch", "backbone": name,
            "before_s": best["before"], "after_s": best["after"],
            "ratio": best["before"] / best["after"],
            "eval_before_s": evals["before"], "eval_after_s": evals["after"],
            "eval_repeats": args.eval_repeats,
            "chunks": args.chunks, "batches_per_chunk": args.batches,
        })  # fmt: skip


# ------------------------------------------------------------------ masks
def part_masks(data, args) -> None:
    log = BudgetLog.load(args.log)
    episodes = log.column("episode")
    steps = log.column("step")
    picks = []
    for ep in np.unique(episodes)[-3:]:
        rows = np.flatnonzero(episodes == ep)
        picks.append(int(rows[np.argmax(steps[rows])]))
    arrays = {}
    for k, i in enumerate(picks):
        e = log[i]
        arrays[f"user_sizes_{k}"] = np.asarray(e.user_sizes, dtype=np.uint8)
        arrays[f"item_sizes_{k}"] = np.asarray(e.item_sizes, dtype=np.uint8)
        arrays[f"info_{k}"] = np.array(
            [e.episode, e.step, e.sparsity, e.mean_quality], dtype=np.float64
        )
    np.savez_compressed(MASKS, source=str(args.log), **arrays)
    print(f"wrote {MASKS} from entries {picks}")


def _masks(data) -> list[tuple[str, np.ndarray, np.ndarray]]:
    from agents.baselines import EqualSize

    out = []
    for c in (0.9, 0.8, 0.95):  # the goal's mask first
        es = EqualSize(c, n_users=data.n_users, n_items=data.n_items)
        out.append((f"ES {c:.0%}", *es.sizes()))
    if MASKS.exists():
        z = np.load(MASKS)
        for k in range(3):
            ep, step, sp, _ = z[f"info_{k}"]
            label = f"RW-TD3 ep {int(ep)} step {int(step)} ({sp:.1%})"
            out.append((label, z[f"user_sizes_{k}"].astype(np.int64),
                        z[f"item_sizes_{k}"].astype(np.int64)))  # fmt: skip
    return out


# ------------------------------------------------------------------- step
def part_step(data, args) -> None:
    from ciess_env.retrain import retrain_and_evaluate

    base = paper_train_config("lightgcn", data)
    n_batches = round(args.epochs * len(data.train) / base.batch_size)
    config = base.replace(n_batches=n_batches)
    done = _done()
    for path in ("before", "after"):  # warm-up (thread pools, allocator), not recorded
        with full_width(path == "before"):
            retrain_and_evaluate(
                StepConfig("lightgcn", config.replace(n_batches=2)), data=data,
                user_sizes=np.full(data.n_users, 64), item_sizes=np.full(data.n_items, 64),
                init_seed=SEED, train_seed=SEED,
            )  # fmt: skip
    for label, users, items in _masks(data):
        if args.only and not any(label.startswith(o) for o in args.only):
            continue
        for path in ("before", "after"):
            unit = f"step/{label}/{path}/{n_batches}"
            if unit in done:
                continue
            gc.collect()
            with full_width(path == "before"):
                start = time.perf_counter()
                out = retrain_and_evaluate(
                    StepConfig("lightgcn", config), data=data, user_sizes=users,
                    item_sizes=items, init_seed=SEED, train_seed=SEED,
                )  # fmt: skip
                seconds = time.perf_counter() - start
            _append({
                "unit": unit, "part": "step", "mask": label, "path": path,
                "n_batches": n_batches, "epochs": args.epochs,
                "step_s": seconds, "train_s": out.train_seconds, "eval_s": out.eval.seconds,
                "width": int(max(users.max(), items.max())),
                "mean_size": float(np.concatenate([users, items]).mean()),
                "validation": out.eval.summary(),
            })  # fmt: skip
            del out


# -------------------------------------------------------------------- rss
def part_rss(data, args) -> None:
    import gymnasium as gym

    import ciess_env  # noqa: F401 (registers the ids)

    unit = f"rss/{args.retrain}/{args.steps}"
    if unit in _done():
        return
    env = gym.make(ENV_IDS[args.dataset], retrain=args.retrain, data_dir=args.data_dir)
    env.reset(seed=SEED)
    env.action_space.seed(SEED)
    rss, seconds = [], []
    for t in range(args.steps):
        start = time.perf_counter()
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        seconds.append(time.perf_counter() - start)
        if terminated or truncated:
            env.reset()
        rss.append(_rss_mb())
        if t % 10 == 9:
            print(f"step {t + 1}: rss {rss[-1]:.1f} MB, {seconds[-1]:.2f} s", flush=True)
    env.close()
    _append({
        "unit": unit, "part": "rss", "steps": args.steps, "retrain": args.retrain,
        "rss_mb": rss, "step_s": seconds,
        "rss_10": rss[9], "rss_last": rss[-1], "growth": rss[-1] / rss[9] - 1.0,
    })  # fmt: skip


# ------------------------------------------------------------------- heap
def part_heap(data, args) -> None:
    """RSS along short retraining steps without, then with, the heap release between steps."""
    import ciess_env.retrain as retrain

    unit = f"heap/{args.steps}"
    if unit in _done():
        return
    config = TrainConfig(n_batches=2)
    rng = np.random.default_rng(SEED)
    release = retrain.release_free_memory
    rss = {}
    for mode in ("without", "with"):
        retrain.release_free_memory = release if mode == "with" else (lambda: False)
        rss[mode] = []
        for t in range(args.steps):
            users = rng.integers(1, 129, size=data.n_users)
            items = rng.integers(1, 129, size=data.n_items)
            out = retrain.retrain_and_evaluate(
                StepConfig("lightgcn", config), data=data, user_sizes=users, item_sizes=items,
                init_seed=t, train_seed=t,
            )  # fmt: skip
            del out
            rss[mode].append(_rss_mb())
    retrain.release_free_memory = release
    _append({"unit": unit, "part": "heap", "steps": args.steps, "rss_mb": rss})


# ----------------------------------------------------------------- report
def _records() -> list[dict]:
    return read_units(JSONL)


def part_report(data, args) -> None:
    recs = _records()
    loads = [r["load_1min"] for r in recs] or [float("nan")]
    lines = [
        "# Training cost proportional to what is kept (issue 13)",
        "",
        "Written by `python benchmarks/bench_active_width.py report` from "
        "`benchmarks/results/active_width.jsonl`; each row's command, time and 1-minute load "
        "average are in that file (the load column below). Every job ran at one torch thread "
        f"on a 2-core machine (1-minute load {min(loads):.1f}–{max(loads):.1f} across the "
        "rows; at a load near 2 each job had a core of its own, above that absolute times "
        "stretch); before and after ran in the same process, interleaved, so the ratios are "
        "fairer than the absolute times.",
        "",
        f"- Machine: {machine('cpu', load=False)}; seed 0; ML-1M (split 50/25/25, seed 42).",
        "- before = `Backbone.full_width = True` (all 128 columns, masks rebuilt every batch, "
        "L2 over gathered rows, plain Adam); after = the default (active width `max(sizes)`, "
        "cached masks, `bincount` L2, fused Adam).",
        "",
    ]
    n_masks = len({r["mask"] for r in recs if r["part"] == "step"})
    n_batch = len({r["backbone"] for r in recs if r["part"] == "batch"})
    has_rss = any(r["part"] == "rss" for r in recs)
    if n_masks < 6 or n_batch < len(BACKBONES) or not has_rss:
        lines += [
            f"**(partial: per-batch {n_batch} of {len(BACKBONES)} backbones, step {n_masks} of "
            f"6 masks, RSS {'done' if has_rss else 'not run'}; the rest waits for CPU time, "
            "rerun the same commands to resume.)**",
            "",
        ]
    batch = [r for r in recs if r["part"] == "batch"]
    if batch:
        lines += [
            "## Per batch at one thread, d = 128 (per-batch savings only)",
            "",
            "Best of C interleaved chunks of B batches of 10,000 triples (C × B per row); full "
            "validation evaluation best of 2 (NeuMF before: its old 2^24-element scoring "
            "blocks). Runs of the same unit on a busier machine are kept in "
            "`active_width_loaded.jsonl` (LightGCN there: 0.88–1.32× at load 3.6–22).",
            "",
            *md_table(
                ["backbone", "C × B", "before s/batch", "after s/batch", "ratio", "before eval s",
                 "after eval s", "eval ratio", "load"],
                [[r["backbone"], f"{r['chunks']} × {r['batches_per_chunk']}", r["before_s"],
                  r["after_s"], f"**{r['ratio']:.2f}×**", f"{r['eval_before_s']:.2f}",
                  f"{r['eval_after_s']:.2f}", f"{r['eval_before_s'] / r['eval_after_s']:.2f}×",
                  f"{r['load_1min']:.1f}"] for r in batch],
            ),
            "",
        ]  # fmt: skip
    steps = [r for r in recs if r["part"] == "step"]
    if steps:
        n = steps[0]["n_batches"]
        lines += [
            f"## Scratch step on ML-1M, LightGCN, {n} batches ({steps[0]['epochs']:g} epochs)",
            "",
            f"The paper's 5-epoch schedule: 5 · |train| / 10,000 = {n} batches of 10,000 "
            "(lr 0.03 × 0.9 every 200), run directly as the batch count; step = model build + "
            "training + full validation evaluation.",
            "",
        ]
        head = [
            "mask",
            "max size W",
            "mean size",
            "before step s",
            "after step s",
            "ratio",
            "train ratio",
            "before R@20",
            "after R@20",
            "max abs diff (val. metrics)",
            "load",
        ]
        table = []
        by = {(r["mask"], r["path"]): r for r in steps}  # fmt: skip
        for mask in dict.fromkeys(r["mask"] for r in steps):
            b, a = by.get((mask, "before")), by.get((mask, "after"))
            if not (a and b):
                table.append([mask, "(partial: one path of two)", *[""] * 9])
                continue
            diff = max(abs(a["validation"][k] - b["validation"][k]) for k in a["validation"])
            table.append([
                mask, a["width"], f"{a['mean_size']:.1f}", f"{b['step_s']:.1f}",
                f"{a['step_s']:.1f}", f"**{b['step_s'] / a['step_s']:.2f}×**",
                f"{b['train_s'] / a['train_s']:.2f}×", b["validation"]["recall@20"],
                a["validation"]["recall@20"], f"{diff:.1e}", f"{a['load_1min']:.1f}",
            ])  # fmt: skip
        lines += [*md_table(head, table), ""]
    for r in (r for r in recs if r["part"] == "rss"):
        rss = r["rss_mb"]
        marks = [s for s in (1, 10, 25, 50, 75, 100) if s <= len(rss)]
        lines += [
            f"## Resident memory over {r['steps']} steps, `retrain='{r['retrain']}'` (ML-1M env)",
            "",
            f"`gym.make('CIESS-LightGCN-ML1M-v0', retrain='{r['retrain']}')`, seeded random "
            "actions, reset every 10 steps; RSS of the process after each step.",
            "",
            *md_table(
                ["after step", *map(str, marks)],
                [["RSS MB", *(f"{rss[s - 1]:.0f}" for s in marks)]],
            ),
            "",
            f"RSS after {len(rss)} steps / after 10: {1 + r['growth']:.3f} "
            f"({r['growth']:+.1%}; goal within ±5 %); median step {np.median(r['step_s']):.2f} s.",
            "",
        ]
    for r in (r for r in recs if r["part"] == "heap"):
        a, b = np.array(r["rss_mb"]["without"]), np.array(r["rss_mb"]["with"])
        lines += [
            "### Where the drift comes from: the allocator, not a leak",
            "",
            f"{r['steps']} short scratch steps (2 batches + full evaluation, random sizes) "
            "without, then with, `release_free_memory()` (glibc `malloc_trim`) before each "
            "step, in one process (`bench_active_width.py heap`):",
            "",
            *md_table(
                ["RSS MB", "min", "max", "last"],
                [
                    [k, *(f"{v:.0f}" for v in (x.min(), x.max(), x[-1]))]
                    for k, x in (("without", a), ("with", b))
                ],
            ),
            "",
        ]
    REPORT.write_text("\n".join(lines) + "\n")
    print(f"wrote {REPORT}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["batch", "masks", "step", "rss", "heap", "report"])
    parser.add_argument("--data-dir", default=None, help="default: $CIESS_DATA_DIR or the cache")
    parser.add_argument("--dataset", default="ml-1m", choices=sorted(ENV_IDS))
    parser.add_argument("--results", default=str(RESULTS), help="folder of the results files")
    parser.add_argument("--batches", type=int, default=5, help="batch: batches per chunk")
    parser.add_argument("--chunks", type=int, default=4, help="batch: chunks per path")
    parser.add_argument("--epochs", type=float, default=5.0, help="step: epochs per step")
    parser.add_argument("--steps", type=int, default=100, help="rss, heap: env steps")
    parser.add_argument("--retrain", default="fast", help="rss: the env's step design")
    parser.add_argument("--backbones", nargs="*", default=None, help="batch: which")
    parser.add_argument("--only", nargs="*", default=None, help="step: mask labels to run")
    parser.add_argument("--eval-repeats", type=int, default=2, help="batch: evaluations")
    parser.add_argument("--log", default=None, help="masks: a saved BudgetLog")
    args = parser.parse_args(argv)
    global JSONL, MASKS, REPORT
    folder = Path(args.results)
    JSONL, MASKS, REPORT = (folder / p.name for p in (JSONL, MASKS, REPORT))
    data = None
    if args.part in ("batch", "masks", "step", "heap"):
        data = load_dataset(args.dataset, data_dir=args.data_dir, split_seed=42)
    {"batch": part_batch, "masks": part_masks, "step": part_step, "rss": part_rss,
     "heap": part_heap, "report": part_report}[args.part](data, args)  # fmt: skip


if __name__ == "__main__":
    main()
