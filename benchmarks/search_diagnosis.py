"""Diagnose RandomWalkTD3's search: exploration noise, the policy's own masks, size dispersion.

Issue 15 item 3. For each seed and each exploration-noise variant of RandomWalkTD3 —
``noise="per_entity"`` (the paper, σ = 6 sizes per entity), ``"shared"`` (one scalar per step,
the authors' code) and ``"none"`` — one search logs, besides every explored mask,
the policy's noise-free mask after every episode (``predict(terminal_obs, deterministic=True)``
scored by ``env.evaluate_sizes``). Then, per budget, top-3 selective retraining
(``agents.experiments.selective.selective_retrain``, the final retraining on main) runs on
each pool (explored / deterministic) and on ES with the same seed, and the size dispersion
among entities of similar popularity (pooled within-decile std,
:func:`agents.experiments.diagnostics.size_dispersion`) is measured on the last episode's masks.

Every unit of work (one search, one pool × budget retraining, one ES budget) is appended to
``benchmarks/results/search_diagnosis_<dataset>.jsonl`` as soon as it finishes, and the
searches checkpoint after every episode under ``$CIESS_CACHE_DIR/search_diagnosis/``, so an
interrupted run continues where it stopped. ``report`` turns the JSONL into the markdown table
(mean ± 95 % bootstrap CI over seeds; differences paired by seed).

The step is the ``-v1`` env's (``--version v1``, the default: trained until validation stops
improving, the design that ranks masks like the final retraining, issue 14) or ``-v0``'s fast
mode (``--version v0``: nested-prefix fine-tuning, cheap but a coarse proxy). Results of the
two never mix: each has its own JSONL and report.

Run (one CPU slot; ``--shard i/K`` splits the units over K processes)::

    python benchmarks/search_diagnosis.py run --dataset ml-100k --seeds 0 1 2 --episodes 5
    python benchmarks/search_diagnosis.py report --dataset ml-100k
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from jsonl_cache import append_unit, command_line, load_average, read_units
from report import ci, diff, md_table

RESULTS = Path(__file__).parent / "results"
ENV_IDS = {
    "ml-100k": "CIESS-LightGCN-ML100K",
    "ml-1m": "CIESS-LightGCN-ML1M",
    "synthetic": "CIESS-LightGCN-Synthetic",  # plumbing check in seconds; numbers mean nothing
}
#: Env version → (env kwargs, how the report describes the step).
VERSIONS = {
    "v1": (
        {},
        "the `-v1` step as registered (retrained until validation stops improving, "
        "`converge:50/4`)",
    ),
    "v0": (
        {"retrain": "fast"},
        "`retrain='fast'` (nested-prefix fine-tuning, the documented fast mode)",
    ),
    # Issue 29's cheaper step on the -v1 id: 150 batches of 50,000 at 10x the learning rate
    # (within-budget rho 0.86 against the ground truth on ML-1M, ~1/5 of converge:50/4's time).
    "sprint150": (
        {"retrain": "sprint:150"},
        "`retrain='sprint:150'` on the `-v1` id (150 large batches at a raised learning rate, "
        "issue 29's step design; `benchmarks/results/profile_step.md`)",
    ),
}
#: Which registered version each study version runs on (the sprint step overrides -v1's retrain).
ENV_VERSION = {"v1": "v1", "v0": "v0", "sprint150": "v1"}
_SYNTHETIC = {
    "preset": "tiny",
    "dataset_kwargs": {"n_users": 60, "n_items": 40, "mean_interactions": 10},
}
NOISES = ("per_entity", "shared", "none")
POOLS = {"explored": "budget_log", "deterministic": "deterministic_log"}
BUDGETS = (0.8, 0.9, 0.95)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


class Ledger:
    """The study's JSONL file of finished units; a unit is done when a row with its key exists."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = read_units(path)

    def done(self, key: str) -> bool:
        """Whether the unit ``key`` has a row (re-reading the file, shared by shards)."""
        self.rows = read_units(self.path)  # another shard may have appended
        return any(r["key"] == key for r in self.rows)

    def append(self, row: dict[str, Any]) -> None:
        """Append one finished unit."""
        append_unit(self.path, row)
        self.rows.append(row)


def _env_id(dataset: str, version: str) -> str:
    return f"{ENV_IDS[dataset]}-{ENV_VERSION[version]}"


def _ledger_path(args: argparse.Namespace) -> Path:
    return args.results_dir / f"search_diagnosis_{args.dataset}_{args.version}.jsonl"


def _run_dir(args: argparse.Namespace, noise: str, seed: int) -> Path:
    root = Path(os.environ.get("CIESS_CACHE_DIR", Path.home() / ".cache" / "ciess"))
    name = f"{args.version}-e{args.episodes}-{noise}-seed{seed}"
    return root / "search_diagnosis" / args.dataset / name


def _session(args: argparse.Namespace, seed: int):
    from agents.experiments.session import SearchSession

    env_kwargs: dict[str, Any] = {**VERSIONS[args.version][0], "data_dir": args.data_dir}
    if args.dataset == "synthetic":
        env_kwargs = {**VERSIONS[args.version][0], **_SYNTHETIC}
    # log_budgets=None: the search log keeps every explored mask, not the top 3 per budget, so
    # the per-episode means and the last episode's dispersion are over what the agent explored
    # (the pools for retraining take their top 3 per budget from it, _keep_pools).
    return SearchSession(_env_id(args.dataset, args.version), seed=seed, env_kwargs=env_kwargs,
                         progress_bar=False, log_budgets=None)  # fmt: skip


def _units(args: argparse.Namespace) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(kind, key, params): every search, then budget by budget (90 % first) ES and the pools.

    A partial run then holds one budget for every seed, variant and pool (a paired comparison
    with intervals) before it starts the next budget.
    """
    for seed in args.seeds:
        for noise in args.noise:
            yield "search", f"search/{noise}/seed{seed}", {"noise": noise, "seed": seed}
    for c in (0.9, 0.8, 0.95):
        for seed in args.seeds:
            yield "es", f"es/seed{seed}/c{c}", {"seed": seed, "budget": c}
            for noise in args.noise:
                for pool in POOLS:
                    key = f"retrain/{pool}/{noise}/seed{seed}/c{c}"
                    yield "retrain", key, {"pool": pool, "noise": noise, "seed": seed, "budget": c}


def _summarise_search(session, run: Path, seconds: float) -> dict[str, Any]:
    from agents.experiments.diagnostics import size_dispersion
    from ciess_env.budget_log import BudgetLog

    data = session.data
    log = BudgetLog.load(run / "checkpoint" / "budget_log")
    det = BudgetLog.load(run / "checkpoint" / "deterministic_log")

    def disp(entries) -> dict[str, float]:
        values = [size_dispersion(e.user_sizes, e.item_sizes, data.user_freq, data.item_freq)
                  for e in entries]  # fmt: skip
        return {k: float(np.mean([v[k] for v in values])) for k in values[0]}

    last = max(e.episode for e in log)
    per_episode = []
    for ep in sorted({e.episode for e in log}):
        entries = [e for e in log if e.episode == ep]
        d = next(e for e in det if e.episode == ep)
        per_episode.append({
            "episode": ep,
            "mean_quality": float(np.mean([e.mean_quality for e in entries])),
            "mean_size": float(np.mean([np.r_[e.user_sizes, e.item_sizes].mean()
                                        for e in entries])),
            "sparsity": float(np.mean([e.sparsity for e in entries])),
            "det_quality": d.mean_quality,
            "det_sparsity": d.sparsity,
            "det_mean_size": float(np.r_[d.user_sizes, d.item_sizes].mean()),
        })  # fmt: skip
    return {
        "log": "every explored mask",  # rows without it summarised a top-3-per-budget log
        "search_seconds": seconds,
        "per_episode": per_episode,
        "dispersion_explored_last_episode": disp([e for e in log if e.episode == last]),
        "dispersion_deterministic_last_episode": disp([e for e in det if e.episode == last]),
        "best_explored_quality": float(max(e.mean_quality for e in log)),
        "best_deterministic_quality": float(max(e.mean_quality for e in det)),
    }


def _do_search(args: argparse.Namespace, noise: str, seed: int) -> dict[str, Any]:
    from agents.experiments.checkpoint import read_meta

    session = _session(args, seed)
    run = _run_dir(args, noise, seed)
    checkpoint = run / "checkpoint"
    t0 = time.perf_counter()
    try:
        meta = read_meta(checkpoint)
    except FileNotFoundError:
        meta = None
    if meta is None:
        session.search("rw-td3", episodes=args.episodes, checkpoint_dir=checkpoint,
                       deterministic_masks=True, noise=noise)  # fmt: skip
    elif meta.episodes_done < meta.episodes:
        session.resume(checkpoint)
    seconds = time.perf_counter() - t0
    row = _summarise_search(session, run, seconds)
    session.close()
    _keep_pools(args, run / "checkpoint", noise, seed)
    return row


def _pool_path(args: argparse.Namespace, pool: str, noise: str, seed: int) -> Path:
    """Where a finished search's top masks are kept beside the JSONL (committed with it)."""
    return _ledger_path(args).with_suffix("") / f"{noise}-seed{seed}-{pool}"


def _keep_pools(args: argparse.Namespace, checkpoint: Path, noise: str, seed: int) -> None:
    """Save each pool's top-3 masks per budget next to the results.

    The checkpoint lives in a cache that may not outlive the sitting; the retraining units
    need only these masks, so a later sitting can retrain without repeating the search.
    """
    from ciess_env.budget_log import BudgetLog

    for pool, name in POOLS.items():
        log = BudgetLog.load(checkpoint / name)
        kept = BudgetLog(log.n_users, log.n_items, d_max=log.d_max, budgets=BUDGETS, top_l=3)
        for entry in log:
            kept.record(**entry._asdict())
        kept.save(_pool_path(args, pool, noise, seed))


def _retrain(args: argparse.Namespace, log, seed: int, c: float) -> dict[str, Any]:
    from agents.experiments.selective import selective_retrain

    session = _session(args, seed)
    cap = 16 if args.dataset == "synthetic" else None
    (result,) = selective_retrain(
        log, session.data, session.final_step(cap), budgets=[c], seed=seed
    )  # fmt: skip (default rule: top 3 masks)
    session.close()
    return {"result": None if result is None else result.as_dict()}


def _do_unit(args: argparse.Namespace, kind: str, p: dict[str, Any]) -> dict[str, Any]:
    from ciess_env.budget_log import BudgetLog

    if kind == "search":
        return _do_search(args, p["noise"], p["seed"])
    if kind == "es":
        session = _session(args, p["seed"])
        log = session.heuristic_log("es", [p["budget"]])
        session.close()
        return _retrain(args, log, p["seed"], p["budget"])
    log = BudgetLog.load(_pool_path(args, p["pool"], p["noise"], p["seed"]))
    return _retrain(args, log, p["seed"], p["budget"])


def cmd_run(args: argparse.Namespace) -> None:
    ledger = Ledger(_ledger_path(args))
    shard, n_shards = (int(x) for x in args.shard.split("/"))
    command = command_line("benchmarks/search_diagnosis.py", sys.argv[1:])
    while True:
        waiting = 0
        for i, (kind, key, params) in enumerate(_units(args)):
            if i % n_shards != shard or ledger.done(key):
                continue
            search_key = f"search/{params.get('noise')}/seed{params['seed']}"
            if kind == "retrain" and not ledger.done(search_key):
                waiting += 1  # its search runs in another shard and has not finished yet
                continue
            start_load, t0 = load_average(), time.perf_counter()
            print(f"[{_now()}] {key} (load {start_load:.2f})", flush=True)
            out = _do_unit(args, kind, params)
            ledger.append({
                "key": key, "kind": kind, **params, **out, "episodes": args.episodes,
                "seconds": time.perf_counter() - t0, "load_start": start_load,
                "load_end": load_average(), "finished": _now(), "command": command,
                "threads": os.environ.get("OMP_NUM_THREADS"),
            })  # fmt: skip
            print(f"[{_now()}] {key} done in {time.perf_counter() - t0:.0f} s", flush=True)
        if not waiting:
            return
        time.sleep(30)


# ----------------------------------------------------------------------------------- report
def _ci(values: list[float], spec: str = ".4f") -> str:
    """Mean and 95 % percentile-bootstrap CI over seeds (:mod:`agents.experiments.stats`)."""
    return ci(values, spec)


def _r20(rows: list[dict[str, Any]], noise: str, pool: str, c: float) -> dict[int, float]:
    """Seed → test R@20 of one retraining cell (seeds whose pool reached ``c`` only)."""
    return {r["seed"]: r["result"]["recall_20"] for r in rows
            if r["kind"] == "retrain" and r["result"] is not None
            and (r["noise"], r["pool"], r["budget"]) == (noise, pool, c)}  # fmt: skip


def _paired(a: dict[int, float], b: dict[int, float], scale: float) -> str:
    """``a − b`` over their common seeds, in % of ``scale``, with its paired interval."""
    common = sorted(set(a) & set(b))
    if not common:
        return "—"
    x, y = (np.array([100 * d[s] / scale for s in common]) for d in (a, b))
    return f"{diff(x, y, spec='+.1f')} % ({len(common)})"


def _factor_lines(rows, seeds, noises, es) -> list[str]:
    """The issue's question: which factor — the noise, the policy's own masks — moves test R@20.

    Each cell is a difference paired by seed, so a seed's luck in the data order cancels.
    """
    lines = ["", "## Which factor moves the result", "",
             "Test R@20 differences after the same top-3 selective retraining, paired by seed, "
             "in % of ES's mean at that budget; (n) = seeds where both sides reached the "
             "budget; `*`: the 95 % bootstrap interval excludes 0.", ""]  # fmt: skip

    def cell(side: tuple[str, str] | None, c: float) -> dict[int, float]:
        if side is None:  # ES
            return {s: es[(s, c)]["recall_20"] for s in seeds if es.get((s, c))}
        return _r20(rows, *side, c)

    scale = {c: np.mean(list(cell(None, c).values()) or [np.nan]) for c in BUDGETS}

    comparisons = [(f"{n}, {p} − ES", (n, p), None) for n in noises for p in POOLS]
    if "per_entity" in noises:
        base = ("per_entity", "explored")
        comparisons += [(f"noise {n} − per_entity (explored)", (n, "explored"), base)
                        for n in noises if n != "per_entity"]  # fmt: skip
    comparisons += [(f"{n}: noise-free policy − explored", (n, "deterministic"), (n, "explored"))
                    for n in noises]  # fmt: skip
    table = [[name, *(_paired(cell(a, c), cell(b, c), scale[c]) for c in BUDGETS)]
             for name, a, b in comparisons]  # fmt: skip
    return [*lines, *md_table(["comparison", *(f"{c:.0%}" for c in BUDGETS)], table)]


def _search_rows(rows: list[dict[str, Any]], noise: str) -> list[dict[str, Any]]:
    """The searches of one noise variant that summarised their full explored log."""
    return [r for r in rows if r["kind"] == "search" and r.get("log") and r["noise"] == noise]


def _episode_lines(rows, noises) -> list[str]:
    """Per-episode search curves, averaged over seeds: does the search improve, and how big?"""
    lines = ["", "## Per episode, mean over seeds", "",
             "Validation q̄ and mean size of the explored masks (all steps of the episode) and "
             "of the noise-free policy's mask at the episode's end.", ""]  # fmt: skip
    table = []
    for noise in noises:
        s_rows = _search_rows(rows, noise)
        if not s_rows:
            continue
        n_eps = min(len(r["per_episode"]) for r in s_rows)
        for i in range(n_eps):
            eps = [r["per_episode"][i] for r in s_rows]

            def m(key: str, spec: str, eps=eps) -> str:
                return format(float(np.mean([e[key] for e in eps])), spec)

            table.append([
                noise, len(s_rows), eps[0]["episode"], m("mean_quality", ".4f"),
                m("mean_size", ".1f"), m("sparsity", ".3f"), m("det_quality", ".4f"),
                m("det_mean_size", ".1f"), m("det_sparsity", ".3f"),
            ])  # fmt: skip
    head = ["noise", "seeds", "episode", "explored q̄", "explored mean size", "explored sparsity",
            "noise-free q̄", "noise-free mean size", "noise-free sparsity"]  # fmt: skip
    return [*lines, *md_table(head, table)]


def _asked(rows: list[dict[str, Any]], flag: str, kind: type) -> set:
    """Values the units' recorded run commands gave ``flag`` (``--seeds 0 1 2`` → {0, 1, 2})."""
    out: set = set()
    for r in rows:
        words = str(r.get("command", "")).split()
        if flag in words:
            for w in words[words.index(flag) + 1 :]:
                if w.startswith("--"):
                    break
                out.add(kind(w))
    return out


def cmd_report(args: argparse.Namespace) -> None:
    ledger = Ledger(_ledger_path(args))
    rows = ledger.rows
    if not rows:
        sys.exit(f"no results in {ledger.path}; run `search_diagnosis.py run` first")
    # The plan is what the run commands asked for, not only what has finished: a search still
    # running (or not started) must count as missing.
    seeds = sorted({r["seed"] for r in rows} | _asked(rows, "--seeds", int))
    asked_noise = _asked(rows, "--noise", str)
    noises = [n for n in NOISES if n in asked_noise or any(r.get("noise") == n for r in rows)]
    n_units = len(seeds) * (len(noises) * (1 + len(POOLS) * len(BUDGETS)) + len(BUDGETS))
    status = "complete" if len(rows) >= n_units else f"partial, {len(rows)} of {n_units} units"
    episodes = sorted({r["episodes"] for r in rows})
    loads = [r["load_start"] for r in rows] + [r["load_end"] for r in rows]
    # The command to rerun, not each unit's as typed (shards, local paths): those are in the JSONL.
    command = (f"python benchmarks/search_diagnosis.py run --dataset {args.dataset} --version "
               f"{args.version} --seeds {' '.join(map(str, seeds))} --episodes "
               f"{' '.join(map(str, episodes))}")  # fmt: skip
    if noises != list(NOISES):
        command += f" --noise {' '.join(noises)}"
    total = sum(r["seconds"] for r in rows)
    lines = [
        f"# Search diagnosis on {args.dataset}, {args.version} step ({status})",
        "",
        f"- Command: `{command}` (with `CIESS_DATA_DIR` set; `--shard 0/2` and `1/2` split it "
        "over two processes; each unit's own command line is in the JSONL); report: "
        f"`python benchmarks/search_diagnosis.py report --dataset {args.dataset} --version "
        f"{args.version}`",
        f"- Env: `{_env_id(args.dataset, args.version)}`, search steps "
        f"{VERSIONS[args.version][1]}; RandomWalkTD3 paper defaults but `noise`; "
        f"{', '.join(map(str, episodes))} episodes × T = 10 per search "
        + ("(the paper's 30; " if episodes == [30] else "(not the paper's 30: ")
        + "one core per job on this 2-core CPU; the wall times are in the JSONL)",
        f"- Seeds: {seeds} (each seeds the agent, the per-step training and the final "
        "retraining; the data split is fixed, split_seed 42). ES uses the same seeds.",
        "- Final retraining: `agents.experiments.selective.selective_retrain` as on main at "
        "run time (top-3 per budget by validation quality after early-stopped training on "
        "train, winner retrained on train + validation for its best batch count, scored on test)",
        "- Intervals: mean and 95 % percentile bootstrap over seeds; with 3 seeds such an "
        "interval is narrow and optimistic, read it as a range of what was seen",
        f"- Load average (1 min) over the units: {min(loads):.1f}–{max(loads):.1f} on 2 cores "
        f"shared with other jobs; total compute {total / 60:.0f} min",
        "",
    ]
    es = {(r["seed"], r["budget"]): r["result"] for r in rows if r["kind"] == "es"}
    lines += ["## Test R@20 / N@20 after top-3 selective retraining", ""]
    table = []
    for c in BUDGETS:
        base = [es.get((s, c)) for s in seeds]
        if any(b is not None for b in base):
            r20 = [b["recall_20"] for b in base if b]
            n20 = [b["ndcg_20"] for b in base if b]
            table.append(["ES", "—", f"{c:.0%}", len(r20), f"{c:.4f}", _ci(r20), _ci(n20), "—"])
        for noise in noises:
            for pool in POOLS:
                got = {
                    r["seed"]: r["result"]
                    for r in rows
                    if r["kind"] == "retrain"
                    and (r["noise"], r["pool"], r["budget"]) == (noise, pool, c)
                }
                if not got:
                    continue
                reached = {s: v for s, v in got.items() if v is not None}
                if not reached:
                    table.append([f"RW-TD3 {noise}", pool, f"{c:.0%}",
                                  f"0 of {len(got)} reached c", "—", "—", "—", "—"])  # fmt: skip
                    continue
                r20 = [v["recall_20"] for v in reached.values()]
                n20 = [v["ndcg_20"] for v in reached.values()]
                sp = [v["sparsity"] for v in reached.values()]
                diffs = [v["recall_20"] - es[(s, c)]["recall_20"] for s, v in reached.items()
                         if es.get((s, c))]  # fmt: skip
                table.append([
                    f"RW-TD3 {noise}", pool, f"{c:.0%}", f"{len(reached)} of {len(got)}",
                    f"{np.mean(sp):.4f}", _ci(r20), _ci(n20), _ci(diffs) if diffs else "—",
                ])  # fmt: skip
    head = ["method", "pool", "c", "seeds", "sparsity", "R@20", "N@20", "ΔR@20 vs ES (paired)"]
    lines += md_table(head, table)
    lines += ["", "## The search itself (validation q̄ of the search's steps)", ""]
    table = []
    for noise in noises:
        s_rows = _search_rows(rows, noise)
        if not s_rows:
            continue

        def col(f, s_rows=s_rows) -> str:
            return _ci([f(r) for r in s_rows], ".3f")

        table.append([
            noise, len(s_rows), col(lambda r: r["best_explored_quality"]),
            col(lambda r: r["best_deterministic_quality"]),
            col(lambda r: r["per_episode"][-1]["mean_size"]),
            col(lambda r: r["per_episode"][-1]["det_mean_size"]),
            col(lambda r: r["dispersion_explored_last_episode"]["within_std"]),
            col(lambda r: r["dispersion_deterministic_last_episode"]["within_std"]),
            col(lambda r: r["dispersion_explored_last_episode"]["explained"]),
            col(lambda r: r["dispersion_deterministic_last_episode"]["explained"]),
        ])  # fmt: skip
    lines += md_table(
        ["noise", "seeds", "best explored q̄", "best noise-free q̄", "last-episode mean size",
         "noise-free mean size (last)", "within-decile size std explored", "noise-free",
         "variance explained by popularity bin, explored", "noise-free"], table,
    )  # fmt: skip
    lines += _factor_lines(rows, seeds, noises, es)
    lines += _episode_lines(rows, noises)
    out = _ledger_path(args).with_suffix(".md")
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--dataset", choices=sorted(ENV_IDS), default="ml-100k")
    r.add_argument("--version", choices=sorted(VERSIONS), default="v1")
    r.add_argument("--data-dir", default=os.environ.get("CIESS_DATA_DIR"))
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    r.add_argument("--episodes", type=int, default=5)
    r.add_argument("--noise", nargs="+", choices=NOISES, default=list(NOISES))
    r.add_argument("--shard", default="0/1", help="i/K: run every K-th unit starting at i")
    r.add_argument("--results-dir", type=Path, default=RESULTS)
    r.set_defaults(func=cmd_run)
    q = sub.add_parser("report")
    q.add_argument("--dataset", choices=sorted(ENV_IDS), default="ml-100k")
    q.add_argument("--version", choices=sorted(VERSIONS), default="v1")
    q.add_argument("--results-dir", type=Path, default=RESULTS)
    q.set_defaults(func=cmd_report)
    args = p.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
