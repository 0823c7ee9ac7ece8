"""Measured footprint of exported mixed-size tables: bytes, resident memory, latency (issue 32).

For ES and a searched-family heterogeneous mask at 80 / 90 / 95 % sparsity on ML-1M LightGCN:

1. *model* unit: final-retrain the mask (:func:`ciess_env.retrain.final_retrain`, the default
   stopping rule with one seed, ``keep_model=True``) and save the train + validation model
   (reused when saved);
2. *artefact* unit, per variant (``buckets``, ``ragged``, ``buckets:int8``): export it
   (:func:`ciess_env.export.export`), score test from the artefact alone, and measure in a
   fresh subprocess (one torch thread): the resident-memory increase of :func:`load`, the
   latency of scoring every user against every item and of one user's top-20 (medians of
   repeats). Bytes on disk are the files' sizes. The same variant of the full 128-wide table
   (an initialised LightGCN with every size 128: bytes, memory and latency do not depend on
   the trained values) is measured beside it; latencies alternate the two call by call in one
   process, so both see the same machine load.

The heterogeneous masks are the committed ``split 0.2`` family of
``benchmarks/results/fidelity_masks_ml-1m.json`` (items get 20 % of the budget, equal sizes
within a side), the structured family that beats ES there
(``benchmarks/results/final_retraining_ml-1m.md``).

LightGCN serves its *propagated* tables (a server has no graph), whose rows are as wide as the
widest size a row's neighbourhood holds; the report also writes the masked *input* tables
(what retraining needs) ragged, to show the bytes the searched sizes save there.

Each unit goes to ``benchmarks/results/export_footprint_<dataset>.jsonl`` as it finishes (the
models and artefacts under ``--work``), so the study resumes. Run (single thread)::

    OMP_NUM_THREADS=1 python benchmarks/export_footprint.py --data-dir ../shared/data
    python benchmarks/export_footprint.py --data-dir ../shared/data --report
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from jsonl_cache import REPO, append_unit, command_line, load_average, read_units

RESULTS = Path(__file__).parent / "results"
ENV_IDS = {"ml-100k": "CIESS-LightGCN-ML100K-v0", "ml-1m": "CIESS-LightGCN-ML1M-v0"}
FAMILIES = ("ES", "split 0.2")
VARIANTS = ("buckets", "ragged", "buckets:int8")
FULL = "full-128"


# ------------------------------------------------------------------------- measuring
def _rss() -> int:
    """Resident set size of this process in bytes (Linux /proc)."""
    gc.collect()
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def measure_rss(folder: str) -> dict:
    """In a fresh process: the resident-memory increase of ``load(folder)``."""
    import safetensors.torch  # noqa: F401  (imported before the baseline, like torch)

    from ciess_env.export import load

    # A first load, discarded, so that torch's one-time initialisation of the operators that
    # load uses is not counted as the artefact's memory.
    del_me = load(folder)
    del del_me
    # Collect pending garbage first: a collection during the measured load would free memory
    # that is not the artefact's and could make the increase negative.
    gc.collect()
    before = _rss()
    start = time.perf_counter()
    served = load(folder)
    load_s = time.perf_counter() - start
    # Tensors that safetensors maps from the file count once their pages are read: read all.
    sum(int(b.sum()) != 0 for b in served.buffers())
    return {"rss_before": before, "rss_delta": _rss() - before, "load_s": round(load_s, 4)}


def measure_latency(folder: str, full: str, repeats: int, singles: int, seed: int) -> dict:
    """All-user scoring and one user's top-20 (medians), the artefact against the full table.

    One process alternates the two call by call, so both see the same machine load.
    """
    from ciess_env.export import load

    pair = {"": load(folder), "full_": load(full)}
    users = torch.arange(pair[""].n_users)
    for served in pair.values():
        served.score(users[:8])  # warm-up (allocator, NCF cache)
    every: dict[str, list[float]] = {k: [] for k in pair}
    for _ in range(repeats):
        for k, served in pair.items():
            t0 = time.perf_counter()
            served.score(users)
            every[k].append(time.perf_counter() - t0)
    one: dict[str, list[float]] = {k: [] for k in pair}
    for u in np.random.default_rng(seed).integers(0, len(users), singles):
        for k, served in pair.items():
            t0 = time.perf_counter()
            served.top_k(torch.tensor([int(u)]), 20)
            one[k].append(time.perf_counter() - t0)
    out = {}
    for k in pair:
        out[f"{k}score_all_ms"] = round(1e3 * float(np.median(every[k])), 3)
        out[f"{k}score_all_ms_all"] = [round(1e3 * t, 3) for t in every[k]]
        out[f"{k}top20_one_ms"] = round(1e3 * float(np.median(one[k])), 4)
        out[f"{k}top20_one_ms_p90"] = round(1e3 * float(np.quantile(one[k], 0.9)), 4)
    return out


def measure_in_subprocess(args: argparse.Namespace, folder: Path, full: Path | None = None) -> dict:
    """``measure_rss(folder)``, or with ``full`` ``measure_latency``, in a fresh process."""
    # A fixed mmap threshold: glibc then maps every large block and unmaps it when freed, so
    # the discarded first load leaves nothing behind that the measured load could reuse.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env["MALLOC_MMAP_THRESHOLD_"] = "65536"
    cmd = [sys.executable, __file__, "--measure", str(folder), "--repeats", str(args.repeats)]
    cmd += ["--singles", str(args.singles), "--seed", str(args.seed)]
    cmd += ["--against", str(full)] if full else []
    out = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, check=False)
    if out.returncode:
        raise RuntimeError(f"measuring {folder} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def disk_bytes(folder: Path) -> tuple[int, int]:
    """(sum of file sizes, bytes of allocated blocks) of the artefact's two files."""
    from ciess_env.export import MANIFEST_FILE, TENSORS_FILE

    files = [folder / TENSORS_FILE, folder / MANIFEST_FILE]
    return sum(p.stat().st_size for p in files), sum(p.stat().st_blocks * 512 for p in files)


# ---------------------------------------------------------------------------- models
def chosen_masks() -> list:
    from fidelity_masks import load_masks

    masks = load_masks(RESULTS / "fidelity_masks_ml-1m.json")
    keep = [m for m in masks if m.name.split(" @")[0] in FAMILIES]
    return sorted(keep, key=lambda m: (m.budget, FAMILIES.index(m.name.split(" @")[0])))


def full_artefact(env, merged, variant: str, args, work: Path) -> Path:
    """The full 128-wide reference table in ``variant`` (an initialised model, exported once)."""
    from ciess_env.export import export
    from ciess_env.recommenders import make_backbone

    fmt, _, dtype = variant.partition(":")
    folder = work / "artefacts" / f"{FULL}-{fmt}-{dtype or 'float32'}"
    if not (folder / "manifest.json").is_file():
        model = make_backbone(
            env.backbone, merged, d_max=env.d_max, d_min=env.d_min, seed=args.seed,
            **(env.backbone_kwargs or {}),
        )  # fmt: skip
        model.set_sizes(np.full(merged.n_users, env.d_max), np.full(merged.n_items, env.d_max))
        export(model.eval(), folder, format=fmt, dtype=dtype or "float32", overwrite=True)
    return folder


def train_model(env, mask, args: argparse.Namespace, folder: Path) -> dict:
    """Final-retrain ``mask`` (default rule, one seed), save its model, return its unit."""
    from safetensors.torch import save_file

    from ciess_env.retrain import FinalRetrainRule, final_retrain

    start = time.perf_counter()
    result = final_retrain(
        env.data, mask.user_sizes, mask.item_sizes, env.step_config,
        rule=FinalRetrainRule(seeds=1), seed=args.seed, keep_model=True,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    model = result.model
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))
    info = {
        "mask": mask.name, "digest": mask.digest, "budget": mask.budget, "seed": args.seed,
        "backbone": env.backbone, "d_max": env.d_max, "d_min": env.d_min,
        **result.summary(),
    }  # fmt: skip
    (folder / "model.json").write_text(json.dumps(info, indent=2))
    return {
        "unit": "model", **info, "params": int(mask.user_sizes.sum() + mask.item_sizes.sum()),
        "seconds": round(seconds, 1), "load": round(load_average(), 2),
        "torch_threads": torch.get_num_threads(),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }  # fmt: skip


def rebuild(env, merged, folder: Path):
    from safetensors.torch import load_file

    from ciess_env.recommenders import make_backbone

    info = json.loads((folder / "model.json").read_text())
    model = make_backbone(
        info["backbone"], merged, d_max=info["d_max"], d_min=info["d_min"], seed=info["seed"],
        **(env.backbone_kwargs or {}),
    )  # fmt: skip
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    return model.eval(), info


def input_table_bytes(model, path: Path) -> int:
    """Bytes of the masked input tables written ragged (Σ sizes floats + offsets)."""
    from safetensors.torch import save_file

    users, items = model.prefix_masked(model.user_emb, model.item_emb)
    tensors = {}
    for name, table in (("user", users), ("item", items)):
        sizes = getattr(model, f"{name}_sizes").cpu().long()
        keep = torch.arange(table.shape[1]) < sizes[:, None]
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(sizes, 0)])
        tensors[f"{name}.values"] = table.detach()[keep].contiguous()
        tensors[f"{name}.offsets"] = offsets
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path))
    return path.stat().st_size


def artefact_unit(env, merged, mask, variant: str, args, work: Path) -> dict:
    from ciess_env.export import export, load
    from ciess_env.metrics import evaluate_scores

    model, info = rebuild(env, merged, work / "models" / mask.digest)
    fmt, _, dtype = variant.partition(":")
    folder = work / "artefacts" / f"{mask.digest}-{fmt}-{dtype or 'float32'}"
    meta = {"dataset": env.data.name, "mask": mask.name, **info}
    export(model, folder, format=fmt, dtype=dtype or "float32", metadata=meta, overwrite=True)
    manifest = json.loads((folder / "manifest.json").read_text())
    size, blocks = disk_bytes(folder)
    served = evaluate_scores(load(folder).score, merged, "test")
    full = full_artefact(env, merged, variant, args, work)
    memory = measure_in_subprocess(args, folder)
    reference = measure_in_subprocess(args, full)
    latency = measure_in_subprocess(args, folder, full)
    widths = manifest["stored_widths"]
    mean_width = {
        t: sum(int(w) * n for w, n in h.items()) / max(1, sum(h.values()))
        for t, h in widths.items()
    }
    return {
        "unit": "artefact", "mask": mask.name, "digest": mask.digest, "budget": mask.budget,
        "variant": variant, "format": fmt, "dtype": dtype or "float32",
        "bytes": size, "bytes_blocks": blocks, "tensors_bytes": manifest["bytes"],
        "served": manifest["served"], "width": manifest["width"],
        "mean_stored_width": {k: round(v, 2) for k, v in mean_width.items()},
        "input_bytes": input_table_bytes(model, work / "inputs" / f"{mask.digest}.safetensors"),
        "model_recall_20": info["test_recall_20"], "model_ndcg_20": info["test_ndcg_20"],
        "artefact_recall_20": served.recall(20), "artefact_ndcg_20": served.ndcg(20),
        **memory, "full_bytes": disk_bytes(full)[0],
        **{f"full_{k}": v for k, v in reference.items()}, **latency,
        "repeats": args.repeats, "singles": args.singles, "seed": args.seed,
        "load": round(load_average(), 2), "torch_threads": 1,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }  # fmt: skip


# ---------------------------------------------------------------------------- report
def _mib(n: float) -> str:
    return f"{n / 2**20:.2f}"


def _gap(r: dict) -> float:
    """Largest difference of the artefact's test R@20 / N@20 from the model's."""
    return max(
        abs(r["artefact_recall_20"] - r["model_recall_20"]),
        abs(r["artefact_ndcg_20"] - r["model_ndcg_20"]),
    )


def write_report(path: Path, rows: list[dict], args: argparse.Namespace, n_todo: int) -> None:
    def order(r: dict) -> tuple:
        family = r["mask"].split(" @")[0]
        rank = FAMILIES.index(family) if family in FAMILIES else len(FAMILIES)
        variant = VARIANTS.index(r["variant"]) if r.get("variant") in VARIANTS else 0
        return r.get("budget", 0.0), rank, variant

    models = {r["digest"]: r for r in sorted(rows, key=order) if r["unit"] == "model"}
    arts = sorted((r for r in rows if r["unit"] == "artefact"), key=order)
    done = len(arts) + len(models)
    loads = [r["load"] for r in rows] or [float("nan")]
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
         if ln.startswith("model name")), platform.processor()
    )  # fmt: skip
    partial = f" (partial, {done} of {n_todo} units)" if done < n_todo else ""
    cmd = "OMP_NUM_THREADS=1 " + command_line("benchmarks/export_footprint.py", args.argv)
    lines = [
        f"# Exported mixed-size tables on {args.dataset}: bytes, memory, latency{partial}",
        "",
        f"Command: `{cmd}` (resumes; units in `{path.name}`), then `... --report`.",
        "",
        f"Machine: {os.cpu_count()} CPU cores ({cpu}), torch {torch.__version__}, one torch "
        f"thread; 1-minute load average {min(loads):.1f}–{max(loads):.1f} while the units "
        "ran (the machine was shared by several jobs, so every latency is an upper bound; one "
        "process times each artefact and the full table alternately, call by call, so the pair "
        "sees the same load). Seed "
        f"{args.seed} (initialisation, sampling, the users timed). Written "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.",
        "",
        "Models: LightGCN, d_max 128, final-retrained with the default rule "
        "(`FinalRetrainRule(seeds=1)`: early stopping on validation every 50 batches, patience "
        "8, then train + validation for the scaled count) and kept (`keep_model=True`). Masks: "
        "`ES` and `split 0.2` (items get 20 % of the budget, equal sizes within a side; the "
        "structured family that beats ES in `final_retraining_ml-1m.md`) from "
        "`benchmarks/results/fidelity_masks_ml-1m.json`. No saved search (structured-tpe) mask "
        "was used. *Full*: the same variant of the full 128-wide table (an initialised LightGCN, "
        "every size 128; bytes, memory and latency do not depend on the trained values).",
        "",
        "What is exported: LightGCN's *propagated* user and item tables (`served: "
        "propagated`), the rows the dot-product scorer multiplies; a server has no graph, so "
        "the artefact holds the result of the propagation. Propagation mixes each row with its "
        "neighbours', so a propagated row is as wide as the widest size in its neighbourhood: "
        "under ES every row keeps the ES size, but under a heterogeneous mask nearly every "
        "served row is as wide as the largest size (*mean stored width*), so the served bytes "
        "follow the largest size, not the mean. The searched sizes shrink the trained *input* "
        "tables (*input MiB*: the masked input tables written ragged, what retraining or "
        "fine-tuning needs).",
        "",
        "Bytes on disk: the artefact's two files (safetensors + manifest); *× full*: over the "
        "full table's in the same variant (int8 rows against the int8 full table). RSS: the "
        "resident-memory increase of `ciess_env.export.load` in a fresh process (after "
        "importing torch and safetensors and a first, discarded load, with every tensor read "
        "once so that pages mapped from the file count; it includes the "
        "per-entity bucket and position maps and the item order, 8 bytes per row each, and "
        "for float32 the padded item table the scorer builds when it costs at most 5 % more "
        "floats than the buckets, e.g. when a few propagated rows are narrower). Score all: "
        "one `score(all users)` call, "
        f"(n_users × n_items) scores, median of {args.repeats}. Top-20: `top_k([u], 20)` for one "
        f"user, median over {args.singles} random users. R@20 / N@20: test metrics scored from "
        "the artefact alone, and the retrained model's own; \\|Δ\\|: their largest "
        "difference (float32: the round trip; int8: the quality change of row-wise int8 codes "
        "with an fp32 scale and bias per row, as FBGEMM's fused 8-bit rows).",
        "",
        "| mask | variant | mean stored width (user / item) | MiB on disk (full) | × full | "
        "RSS MiB (full) | input MiB | score all, ms (full) | top-20 one user, ms (full) | "
        "R@20 model | R@20 artefact | N@20 model | N@20 artefact | \\|Δ\\| |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in arts:
        w = r["mean_stored_width"]
        lines.append(
            f"| {r['mask']} | {r['variant']} | {w['user.emb']:.1f} / {w['item.emb']:.1f} | "
            f"{_mib(r['bytes'])} ({_mib(r['full_bytes'])}) | {r['bytes'] / r['full_bytes']:.3f} | "
            f"{_mib(r['rss_delta'])} ({_mib(r['full_rss_delta'])}) | {_mib(r['input_bytes'])} | "
            f"{r['score_all_ms']:.0f} ({r['full_score_all_ms']:.0f}) | "
            f"{r['top20_one_ms']:.2f} ({r['full_top20_one_ms']:.2f}) | "
            f"{r['model_recall_20']:.4f} | {r['artefact_recall_20']:.4f} | "
            f"{r['model_ndcg_20']:.4f} | {r['artefact_ndcg_20']:.4f} | {_gap(r):.1e} |"
        )
    exact = [r for r in arts if r["dtype"] == "float32"]
    coded = [r for r in arts if r["dtype"] == "int8"]
    if exact:
        lines += [
            "",
            f"Round trip: the {len(exact)} float32 artefacts, loaded without the training code, "
            "score test Recall@20 and NDCG@20 equal to their retrained models' (largest "
            f"difference {max(map(_gap, exact)):.1e}).",
        ]
    if coded:
        lines += [
            f"Row-wise int8 moves them by at most {max(map(_gap, coded)):.1e} over "
            f"{len(coded)} artefacts.",
        ]
    lines += ["", "Models (one seed; test metrics of the kept train + validation model):", ""]
    lines += [
        "| mask | parameters (Σ sizes) | best batches | train+val batches | test R@20 | "
        "test N@20 | seconds | load |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in models.values():
        lines.append(
            f"| {m['mask']} | {m['params']:,} | {m['best_batches']} | {m['final_batches']} | "
            f"{m['test_recall_20']:.4f} | {m['test_ndcg_20']:.4f} | {m['seconds']:.0f} | "
            f"{m['load']:.1f} |"
        )
    if partial:
        lines += ["", f"Resume: `{cmd}` then `... --report`."]
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")


# ------------------------------------------------------------------------------ main
def main() -> None:
    global RESULTS  # --results-dir
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dataset", default="ml-1m", choices=sorted(ENV_IDS))
    p.add_argument("--data-dir", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS))
    p.add_argument("--repeats", type=int, default=5, help="all-user scoring calls timed")
    p.add_argument("--singles", type=int, default=200, help="one-user top-20 calls timed")
    p.add_argument("--work", default=None, help="models and artefacts (default: the cache)")
    p.add_argument("--train-only", action="store_true", help="only the model units")
    p.add_argument("--report", action="store_true")
    p.add_argument("--results-dir", type=Path, default=RESULTS, help="units, masks and report")
    p.add_argument("--measure", default=None, help=argparse.SUPPRESS)
    p.add_argument("--against", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    RESULTS = args.results_dir
    args.argv = [a for a in sys.argv[1:] if a not in ("--report", "--train-only")]
    torch.set_num_threads(1)
    if args.measure and args.against:
        row = measure_latency(args.measure, args.against, args.repeats, args.singles, args.seed)
        print(json.dumps(row))
        return
    if args.measure:
        print(json.dumps(measure_rss(args.measure)))
        return
    from ciess_env.env import EmbeddingSizeEnv

    cache = Path(os.environ.get("CIESS_CACHE_DIR", REPO / ".cache" / "ciess"))
    work = Path(args.work) if args.work else cache / "export_footprint" / args.dataset
    path = RESULTS / f"export_footprint_{args.dataset}.jsonl"
    masks = chosen_masks()
    n_todo = len(masks) * (1 + len(args.variants))
    if not args.report:  # the report reads the units alone (no data set)
        env = EmbeddingSizeEnv(dataset=args.dataset, data_dir=args.data_dir)
        merged = env.data.merge_train_validation()
        for mask in masks:
            done = {(r["unit"], r["digest"], r.get("variant")) for r in read_units(path)}
            folder = work / "models" / mask.digest
            if ("model", mask.digest, None) not in done or not (folder / "model.json").is_file():
                row = train_model(env, mask, args, folder)
                if ("model", mask.digest, None) not in done:
                    append_unit(path, row)
                print(f"model {mask.name}: {row['seconds']} s R@20 {row['test_recall_20']:.4f}")
            if args.train_only:
                continue
            for variant in args.variants:
                if ("artefact", mask.digest, variant) in done:
                    continue
                row = artefact_unit(env, merged, mask, variant, args, work)
                append_unit(path, row)
                print(f"{mask.name} {variant}: {row['bytes']} B, {row['score_all_ms']} ms")
            sys.stdout.flush()
    write_report(path, read_units(path), args, n_todo)


if __name__ == "__main__":
    main()
