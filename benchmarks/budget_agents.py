r"""Agents built for the budget vs ES on ML-100K: several seeds, one JSONL line per finished unit.

A unit is one (seed, agent) run of :func:`agents.experiments.compare.compare` at the three
budgets (fast-mode search, top-l selective retraining, test metrics). Each finished unit is
appended to ``<out>.jsonl`` with its wall time and the load average, so an interrupted study
resumes where it stopped (finished units are skipped) and partial results can be committed.
The markdown summary (mean and 95 % bootstrap CI over seeds, difference to ES paired by seed,
via :mod:`agents.experiments.stats`) is rewritten after every unit and labelled
"(partial, n of N)" until every unit is in.

Run (from the repository root; each unit is a long single-thread job)::

    CIESS_DATA_DIR=../shared/data python benchmarks/budget_agents.py \\
        --seeds 0 1 2 --episodes 3 --out benchmarks/results/budget_agents_ml100k
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import sys
import time
from pathlib import Path

import pandas as pd
from jsonl_cache import append_unit, load_average, read_units

DEFAULT_AGENTS = ("es", "mde", "structured-tpe", "rw-td3-lagrange", "rw-td3")


def _summary(rows: list[dict], args: argparse.Namespace, n_units: int, command: str) -> str:
    from agents.experiments.compare import _markdown

    try:
        from agents.experiments.stats import summarize, summary_markdown
    except ImportError:  # before issue 16's stats module: per-seed rows only
        summarize = summary_markdown = None

    table = pd.DataFrame([r for unit in rows for r in unit["rows"]])
    done = len(rows)
    label = "" if done == n_units else f" (partial, {done} of {n_units} units)"
    head = [
        f"# Agents built for the budget vs ES on {args.env_id}{label}",
        "",
        f"Command: `{command}`",
        "",
        f"Seeds {args.seeds}; {args.episodes} search episodes of T = 10 steps per budget for the "
        "one-budget agents (structured-*, rw-td3-lagrange: one search per budget, so 3× the env "
        f"steps of rw-td3, which searches once for all budgets); env kwargs "
        f"{args.env_kw or 'none (the id as registered)'}; "
        f"top-{args.top_l} selective retraining, final retraining early-stopped on validation "
        "(SearchSession.final_batches). Test metrics. Shared 2-core CPU, one torch thread per "
        "unit; 1-min load average at the start of each unit: "
        + ", ".join(f"{u['agent']}/s{u['seed']} {u['load_average']:.1f}" for u in rows)
        + ".",
        "",
        "Wall time per unit (s): "
        + ", ".join(f"{u['agent']}/s{u['seed']} {u['seconds']:.0f}" for u in rows)
        + ".",
        "",
    ]
    raw = table[["agent", "budget", "seed", "sparsity", "recall@20", "ndcg@20", "search_s"]]
    return (
        "\n".join(head)
        + (
            summary_markdown(summarize(table, baseline="es"), baseline="es")
            if summarize is not None
            else ""
        )
        + "\n## Per seed\n\n"
        + _markdown(raw)
        + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-id", default="CIESS-LightGCN-ML100K-v0")
    parser.add_argument("--agents", nargs="+", default=list(DEFAULT_AGENTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--top-l", type=int, default=3)
    parser.add_argument("--budgets", nargs="+", type=float, default=[0.8, 0.9, 0.95])
    parser.add_argument("--env-kw", default="retrain=fast", help="k=v[,k=v...] for gym.make")
    parser.add_argument("--out", default="benchmarks/results/budget_agents_ml100k")
    args = parser.parse_args(argv)

    import torch

    from agents.experiments.compare import compare

    torch.set_num_threads(1)
    env_kwargs = dict(kv.split("=", 1) for kv in args.env_kw.split(",") if kv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    jsonl = out.with_suffix(".jsonl")
    command = "python benchmarks/budget_agents.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    units = [(s, a) for s in args.seeds for a in args.agents]
    for seed, agent in units:
        rows = read_units(jsonl)
        if any(u["seed"] == seed and u["agent"] == agent for u in rows):
            continue
        load = load_average()
        t0 = time.perf_counter()
        comparison = compare(
            args.env_id, [agent], budgets=args.budgets, episodes=args.episodes,
            top_l=args.top_l, seed=seed, env_kwargs=env_kwargs, progress_bar=False,
        )  # fmt: skip
        table = comparison.table.assign(seed=seed)
        unit = {
            "seed": seed,
            "agent": agent,
            "seconds": time.perf_counter() - t0,
            "load_average": load,
            "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "rows": json.loads(table.to_json(orient="records")),
        }
        append_unit(jsonl, unit)
        out.with_suffix(".md").write_text(_summary(read_units(jsonl), args, len(units), command))
        print(f"done seed {seed} {agent} in {unit['seconds']:.0f} s", flush=True)
    rows = read_units(jsonl)
    if rows:
        out.with_suffix(".md").write_text(_summary(rows, args, len(units), command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
