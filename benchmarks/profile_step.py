"""Where does one env step's time go? A profile of a step design per data set and mask.

Issue 29, item 1. One unit = one step (``ciess_env.retrain.retrain_and_evaluate``, the code
every env step runs) of one design on one mask, with its time split into

* model building (fresh tables, sizes applied),
* training: batches run, seconds per batch, and the *sparse-product floor* per batch — the six
  sparse products of LightGCN's three-layer propagation (forward and backward) at the model's
  active width, timed alone on the same adjacency, the part of a batch no schedule can avoid;
  what a batch costs above it is sampling, gathering, the loss and Adam (host overhead),
* validation passes: how many, their seconds and their share of the step.

Masks: ES 90 % and two heterogeneous ones (MR 90 %, a 20 % user / 80 % item split at 90 %)
from the committed fidelity sets (``fidelity_masks_<data>.json``; built the same way by
``fidelity_masks.structured_masks`` for Yelp2018, which has no committed set). Every unit goes
to ``results/profile_step.jsonl`` as it finishes, so the study resumes; a Yelp2018 ``-v1`` step
can take an hour on one core.

``--sampling`` times BPR triple sampling alone per data set and batch size: the sampler's
membership test (a hash index of the training pairs) against the binary search over the sorted
pair keys it replaced, on identical draws.

Run (one torch thread; ``--report`` writes ``results/profile_step.md``)::

    python benchmarks/profile_step.py --data-dir ../shared/data --datasets ml-100k ml-1m \
        --designs converge:50/4 sprint:150
    python benchmarks/profile_step.py --data-dir ../shared/data --sampling \
        --datasets ml-100k ml-1m yelp2018
    python benchmarks/profile_step.py --report
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from fidelity_masks import Mask, load_masks, structured_masks
from jsonl_cache import append_unit, command_line, load_average, read_units
from report import md_table

import ciess_env.recommenders.pretraining as pretraining
from ciess_env.env import EmbeddingSizeEnv
from ciess_env.recommenders.graph import cached_adjacency, propagate
from ciess_env.recommenders.sampling import BPRSampler, pair_keys
from ciess_env.retrain import RetrainDesign, retrain_and_evaluate

RESULTS = Path(__file__).parent / "results"
UNITS = RESULTS / "profile_step.jsonl"
MASKS = ("ES @90%", "MR @90%", "split 0.2 @90%")
#: The step's code revision a unit measured; units of another revision are profiled again.
#: Bump it when a change alters a step's speed (never its results: those stay bit-identical).
#: ``None``: units written before revisions were recorded.
STEP_CODE = "hash-sampling+index_add+csr32"
#: Every revision's label, kept when ``STEP_CODE`` moves on so that older units still render.
STEP_CODES = {
    None: "before",
    STEP_CODE: "hash-index sampling, index_add_ gathers, int32 CSR indices (issue 29)",
}


def masks_for(tag: str, env: EmbeddingSizeEnv) -> list[Mask]:
    """The profiled masks of one data set, committed where a fidelity set exists."""
    path = RESULTS / f"fidelity_masks_{tag}.json"
    data = env.data
    pool = load_masks(path) if path.is_file() else structured_masks(data.user_freq, data.item_freq)
    by_name = {m.name: m for m in pool}
    return [by_name[name] for name in MASKS]


def _sync(device: torch.device) -> None:
    """Wait for queued GPU work, so that a wall-clock interval covers it (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def sparse_floor_ms(
    data, width: int, n_layers: int, reps: int = 7, device: str | torch.device = "cpu"
) -> float:
    """Fastest ms of ``n_layers`` propagations forward and backward at ``width`` columns.

    The minimum after one warm-up: the floor is what the products cost at best; a shared core
    only ever adds to it.
    """
    device = torch.device(device)
    adj = cached_adjacency(data).to(device)
    x = torch.randn(data.n_users + data.n_items, width, device=device, requires_grad=True)
    times = []
    for _ in range(reps + 1):
        _sync(device)
        t0 = time.perf_counter()
        h = x
        for _ in range(n_layers):
            h = propagate(adj, h)
        h.sum().backward()
        _sync(device)
        times.append(time.perf_counter() - t0)
        x.grad = None
    return 1000 * float(np.min(times[1:]))


def _sorted_key_search(data) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The membership test BPRSampler used before its hash index: a binary search per pair."""
    keys = np.unique(pair_keys(data.train.users, data.train.items, data.n_items))

    def is_positive(users: np.ndarray, items: np.ndarray) -> np.ndarray:
        query = pair_keys(users, items, data.n_items)
        idx = np.minimum(np.searchsorted(keys, query), keys.size - 1)
        return keys[idx] == query

    return is_positive


def sampling_ms(data, batch_size: int, reps: int = 7) -> dict[str, float]:
    """Fastest ms of one ``BPRSampler.sample(batch_size)``: hash index vs sorted-key search.

    Both samplers start from the same seed and must draw identical batches (checked), so the
    difference is the membership test alone.
    """
    out: dict[str, float] = {}
    batches = {}
    for name in ("hash_ms", "sorted_ms"):
        sampler = BPRSampler(data, np.random.default_rng(0))
        if name == "sorted_ms":
            sampler.is_positive = _sorted_key_search(data)
        sampler.sample(batch_size)  # warm-up: builds the hash index, touches the arrays
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            batch = sampler.sample(batch_size)
            times.append(time.perf_counter() - t0)
        batches[name] = batch
        out[name] = 1000 * float(np.min(times))
    if not all(np.array_equal(a, b) for a, b in zip(*batches.values(), strict=True)):
        raise AssertionError("the two membership tests drew different batches")
    return out


def measure_sampling(data_dir: str | None, datasets: list[str], sizes=(10_000, 50_000)) -> None:
    """Append one sampling unit per (data set, batch size) to the units file."""
    from ciess_env.data import load_dataset

    for tag in datasets:
        data = load_dataset(tag, data_dir=data_dir)
        for n in sizes:
            ms = sampling_ms(data, n)
            append_unit(UNITS, {
                "dataset": tag, "sampling_batch": n, **{k: round(v, 2) for k, v in ms.items()},
                "load": round(load_average(), 2), "device": "cpu",
                "command": command_line("benchmarks/profile_step.py", sys.argv[1:]),
            })  # fmt: skip
            print(f"sampling {tag} {n:,}: {ms}", flush=True)


class _TimedEvaluate:
    """Counts and times the validation passes of early-stopped training."""

    def __init__(self, inner) -> None:
        self.inner, self.n, self.seconds = inner, 0, 0.0

    def __call__(self, *args, **kwargs):
        t0 = time.perf_counter()
        out = self.inner(*args, **kwargs)
        self.seconds += time.perf_counter() - t0
        self.n += 1
        return out


def profile(env: EmbeddingSizeEnv, tag: str, mask: Mask, design: str, seed: int) -> dict:
    step = env.step_config.replace(retrain=str(RetrainDesign.parse(design)))
    config = RetrainDesign.parse(design).config(step.train, n_train=len(env.data.train))
    timed = _TimedEvaluate(pretraining.evaluate)
    pretraining.evaluate = timed
    try:
        start = time.perf_counter()
        out = retrain_and_evaluate(
            step, data=env.data, user_sizes=mask.user_sizes, item_sizes=mask.item_sizes,
            init_seed=seed, train_seed=seed,
        )  # fmt: skip
        _sync(env.device)
        total = time.perf_counter() - start
    finally:
        pretraining.evaluate = timed.inner
    # Early-stopped designs evaluate inside training; the others once, after it.
    evals, eval_s = (timed.n, timed.seconds) if timed.n else (1, out.eval.seconds)
    ran = out.history[-1][0] if out.history else out.n_batches
    train_s = out.train_seconds - (timed.seconds if timed.n else 0.0)
    width = int(out.model.active_width())
    n_layers = int(out.model.n_layers)
    return {
        "dataset": tag, "mask": mask.name, "design": design, "seed": seed,
        "batches_run": int(ran), "best_batches": int(out.n_batches),
        "batch_size": config.batch_size,
        "active_width": width, "total_s": round(total, 2),
        "train_s": round(train_s, 2), "batch_ms": round(1000 * train_s / max(ran, 1), 1),
        "floor_ms": round(sparse_floor_ms(env.data, width, n_layers, device=env.device), 1),
        "evals": evals, "eval_s": round(eval_s, 2), "quality": round(out.eval.mean_user_quality, 5),
        "load": round(load_average(), 2), "torch_threads": torch.get_num_threads(),
        "device": str(env.device), "step_code": STEP_CODE,
        "command": command_line("benchmarks/profile_step.py", sys.argv[1:]),
    }  # fmt: skip


def _step_key(unit: dict) -> tuple[str, str, str, int | None, str]:
    """What a profiled step is, whatever code measured it: data set, mask, design, seed, device."""
    return unit["dataset"], unit["mask"], unit["design"], unit.get("seed"), _device(unit)


def profiled(units: list[dict]) -> set[tuple[str, str, str, int | None, str]]:
    """:func:`_step_key` of the steps profiled with the current code."""
    return {_step_key(u) for u in units if "design" in u and u.get("step_code") == STEP_CODE}


def _device(unit: dict) -> str:
    """The unit's torch device type (units written before devices were recorded ran on CPU)."""
    return torch.device(unit.get("device", "cpu")).type


def floors(units: list[dict]) -> dict[tuple[str, int, str, str | None], float]:
    """Fastest floor per (data set, width, device, step code), in step and ``--floors`` units.

    Keyed by the step code too: a code change can lower the floor itself (int32 CSR indices
    did), and a step's floor share must compare it with the products of its own code.
    """
    out: dict[tuple[str, int, str, str | None], float] = {}
    for u in (u for u in units if "floor_ms" in u):
        key = (u["dataset"], u["active_width"], _device(u), u.get("step_code"))
        out[key] = min(out.get(key, np.inf), u["floor_ms"])
    return out


def measure_floors(units: list[dict], data_dir: str | None, device: str = "cpu") -> None:
    """Re-measure the floor of every (data set, width) profiled on ``device``, when it is quiet."""
    from ciess_env.data import load_dataset

    kind = torch.device(device).type
    units = [u for u in units if _device(u) == kind and "floor_ms" in u]
    for tag in sorted({u["dataset"] for u in units if "design" in u}):
        data = load_dataset(tag, data_dir=data_dir)
        for width in sorted({u["active_width"] for u in units if u["dataset"] == tag}):
            ms = sparse_floor_ms(data, width, n_layers=3, device=device)
            append_unit(UNITS, {"dataset": tag, "active_width": width, "floor_ms": round(ms, 1),
                                "load": round(load_average(), 2), "device": kind,
                                "step_code": STEP_CODE})  # fmt: skip
            print(f"floor {tag} width {width} ({kind}): {ms:.1f} ms", flush=True)


def write_report(units: list[dict]) -> Path:
    lines = [
        "# Where one env step's time goes",
        "",
        "Command: `python benchmarks/profile_step.py --data-dir ../shared/data --datasets "
        "<data sets> --designs <designs>`, then `--report`. Units: `profile_step.jsonl`.",
        "",
        "One step = `retrain_and_evaluate` of the design on the mask (seed 1), one torch thread. "
        "Floor = LightGCN's six sparse products (3 layers, forward + backward) at the model's "
        "active width, timed alone (the fastest of the step's own measurement and of `--floors` "
        "runs); a batch above it is sampling, gathering, loss and Adam. "
        "Validation = the passes the step runs (early stopping's checks, or the one final "
        "pass). Load = 1-minute load average at the end of the unit (2 cores).",
        "",
        f"Written {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC.",
        "",
    ]
    floor = floors(units)
    steps = [u for u in units if "design" in u]
    for code, label in STEP_CODES.items():
        rows = [u for u in steps if u.get("step_code") == code]
        if rows and code is not None:
            lines += ["", f"## After: {label}", "", *_speedup_lines(steps, rows), ""]
        lines += _step_table(rows, floor) if rows else []
    lines += _sampling_lines(units)
    path = RESULTS / "profile_step.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _speedup_lines(steps: list[dict], after: list[dict]) -> list[str]:
    """One line per profiled step that exists before and after: its seconds and their ratio."""
    before = {_step_key(u): u for u in steps if u.get("step_code") is None}
    out = []
    for u in after:
        old = before.get(_step_key(u))
        if old is not None:
            out.append(
                f"- {u['dataset']}, {u['mask']}, {u['design']}: {old['total_s']:.1f} s → "
                f"{u['total_s']:.1f} s ({old['total_s'] / max(u['total_s'], 1e-9):.2f}×; "
                f"{old['batch_ms']:.0f} → {u['batch_ms']:.0f} ms a batch; load "
                f"{old['load']:.1f} → {u['load']:.1f}; quality {old['quality']:.4f} → "
                f"{u['quality']:.4f})"
            )
    head = (
        "The same steps with the step code of this section (the results are "
        "bit-identical by construction, so a quality that differs means a different seed):"
    )
    return [head, "", *out] if out else []


def _step_table(units: list[dict], floor: dict) -> list[str]:
    table = []
    for r in units:
        total = r["train_s"] + r["eval_s"]
        r = {
            **r,
            "floor_ms": floor[r["dataset"], r["active_width"], _device(r), r.get("step_code")],
        }
        where = "" if _device(r) == "cpu" else f" ({_device(r)})"
        table.append([
            r["dataset"] + where, r["mask"], r["design"], f"{r['total_s']:.1f}",
            f"{r['batches_run']} ({r['best_batches']})", f"{r['batch_size']:,}", r["active_width"],
            f"{r['batch_ms']:.0f}", f"{r['floor_ms']:.0f}",
            f"{r['floor_ms'] / max(r['batch_ms'], 1e-9):.0%}", r["evals"], f"{r['eval_s']:.1f}",
            f"{r['eval_s'] / max(total, 1e-9):.0%}", f"{r['quality']:.4f}", f"{r['load']:.1f}",
        ])  # fmt: skip
    return md_table(
        ["data", "mask", "design", "step s", "batches run (best)", "batch size", "width",
         "ms / batch", "floor ms", "floor share", "evals", "eval s", "eval share", "quality",
         "load"], table,
    )  # fmt: skip


def _sampling_lines(units: list[dict]) -> list[str]:
    """The ``--sampling`` section: the latest unit per (data set, batch size)."""
    latest = {(u["dataset"], u["sampling_batch"]): u for u in units if "sampling_batch" in u}
    if not latest:
        return []
    rows = [
        [tag, f"{n:,}", f"{u['hash_ms']:.1f}", f"{u['sorted_ms']:.1f}",
         f"{u['sorted_ms'] / max(u['hash_ms'], 1e-9):.1f}×", f"{u['load']:.1f}"]
        for (tag, n), u in sorted(latest.items())
    ]  # fmt: skip
    return [
        "",
        "## BPR sampling per batch",
        "",
        "`python benchmarks/profile_step.py --data-dir ../shared/data --sampling --datasets "
        "<data sets>`: one `BPRSampler.sample` (users, positives, negatives with redraws of "
        "the collisions), fastest of 7 after a warm-up, with the sampler's hash-index "
        "membership test and with the binary search over sorted pair keys it replaced; both "
        "draw identical batches from the same seed (checked), so the steps' results are "
        "unchanged. The steps of the first table ran with the binary search; those under "
        '"After" with the hash index.',
        "",
        *md_table(
            ["data", "batch size", "ms, hash index", "ms, sorted-key search", "faster", "load"],
            rows,
        ),
    ]


def main() -> None:
    global RESULTS, UNITS  # --results-dir
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--datasets", nargs="+", default=["ml-100k", "ml-1m"])
    p.add_argument("--designs", nargs="+", default=["converge:50/4"])
    p.add_argument("--masks", nargs="+", default=list(MASKS), choices=MASKS)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--device", default="cpu", help="torch device (cuda: GPU rows beside CPU's)")
    p.add_argument("--floors", action="store_true", help="re-measure the floors, then report")
    p.add_argument("--sampling", action="store_true",
                   help="time BPR sampling per data set and batch size, then report")  # fmt: skip
    p.add_argument("--report", action="store_true")
    p.add_argument("--results-dir", type=Path, default=RESULTS, help="units, masks and report")
    args = p.parse_args()
    RESULTS, UNITS = args.results_dir, args.results_dir / UNITS.name
    torch.set_num_threads(1)
    if args.floors:
        measure_floors(read_units(UNITS), args.data_dir, args.device)
    elif args.sampling:
        measure_sampling(args.data_dir, args.datasets)
    elif not args.report:
        done = profiled(read_units(UNITS))
        for tag in args.datasets:
            env = EmbeddingSizeEnv(dataset=tag, data_dir=args.data_dir, device=args.device)
            device = env.device.type
            for mask in masks_for(tag, env):
                if mask.name not in args.masks:
                    continue
                for design in args.designs:
                    if (tag, mask.name, design, args.seed, device) in done:
                        continue
                    row = profile(env, tag, mask, design, args.seed)
                    append_unit(UNITS, row)
                    print(f"{tag} {mask.name} {design}: {row['total_s']} s", flush=True)
    print(write_report(read_units(UNITS)))


if __name__ == "__main__":
    main()
