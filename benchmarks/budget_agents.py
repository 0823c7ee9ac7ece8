r"""Agents built for the budget vs ES: several seeds, one JSONL line per finished unit.

A unit is one run of :func:`agents.experiments.comparison.compare` (search, top-l selective
retraining, test metrics): per (seed, agent, budget) for the agents whose budgets are
independent — the heuristics and the one-budget agents, each budget's search and retraining
seeded on its own, so the numbers equal those of one run over all budgets (a test asserts it) —
and per (seed, agent) for the agents that search once for all budgets. Each finished unit is
appended to ``<out>.jsonl`` with its wall time and the load average, so an interrupted study
resumes where it stopped (finished units are skipped; an older line holding every budget of a
(seed, agent) counts for all of them) and partial results can be committed.
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
import re
import sys
import time
from pathlib import Path

import pandas as pd
from jsonl_cache import append_unit, command_line, load_average, read_units
from report import md_table

DEFAULT_AGENTS = ("es", "mde", "structured-tpe", "rw-td3-lagrange", "rw-td3")
#: The search-curve columns kept per unit (one record per env step).
CURVE_COLUMNS = ("budget", "episode", "step", "reward", "mean_quality", "recall@20")


def curve_records(curve: pd.DataFrame) -> list[dict]:
    """A search's per-step curve as the JSON records a unit keeps (:data:`CURVE_COLUMNS`)."""
    return json.loads(curve.reindex(columns=list(CURVE_COLUMNS)).to_json(orient="records"))


def parse_agent(spec: str) -> tuple[str, dict, dict]:
    """``AGENT[:k=v,...]`` → (agent name, its constructor kwargs, env kwargs).

    A variant of an agent is a row of its own: ``rw-td3:noise=shared`` passes ``noise="shared"``
    to the agent, ``rw-td3:env.reward=team`` makes the unit's env with ``reward="team"``. Values
    are read as JSON where they parse (``sigma=3``, ``flag=true``, ``net_arch=[64,64]``), else
    kept as strings. The spec, verbatim, is the row's label and the unit's key. The syntax and
    the agent's name are checked here, before any unit runs; a keyword the agent does not take
    fails when its first unit starts. The key ``episodes`` is the study's, not the agent's:
    ``td3:episodes=5`` searches 5 episodes whatever ``--episodes`` says (each unit records
    the episodes it ran), so agents of different search lengths share one study.
    """
    from agents.registry import agent_spec
    from ciess_env.errors import InvalidArgumentError

    name, _, rest = spec.partition(":")
    agent_spec(name)  # an unknown name fails here, with the closest match
    agent_kw: dict = {}
    env_kw: dict = {}
    # Split at the commas that start the next key, so a JSON value may hold commas ([64,64]).
    for item in filter(None, re.split(r",(?=[A-Za-z_][\w.]*=)", rest)):
        key, eq, raw = item.partition("=")
        if not eq or not key:
            msg = f"agent spec {spec!r}: {item!r} is not k=v (e.g. 'rw-td3:noise=shared')."
            raise InvalidArgumentError(msg)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        if key.startswith("env."):
            env_kw[key.removeprefix("env.")] = value
        else:
            agent_kw[key] = value
    return name, agent_kw, env_kw


def _env_kwargs(text: str) -> dict:
    """``--env-kw``: ``k=v[,k=v...]`` (values are strings) or a JSON object (nested values)."""
    from ciess_env.errors import InvalidArgumentError

    if text.lstrip().startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise InvalidArgumentError(f"--env-kw is not valid JSON: {err}") from None
    pairs = [kv.split("=", 1) for kv in text.split(",") if kv]
    bad = [kv for kv in pairs if len(kv) != 2 or not kv[0]]
    if bad:
        msg = f"--env-kw wants k=v[,k=v...] or a JSON object; cannot read {'='.join(bad[0])!r}."
        raise InvalidArgumentError(msg)
    return dict(pairs)


def _unit_name(unit: dict) -> str:
    tag = "" if unit.get("budget") is None else f"@{unit['budget']:g}"
    return f"{unit['agent']}/s{unit['seed']}{tag}"


def _units(args: argparse.Namespace) -> list[tuple[int, str, float | None]]:
    """(seed, agent, budget or None for all budgets at once), in the order they run."""
    from agents.registry import agent_spec

    return [
        (seed, agent, c)
        for seed in args.seeds
        for agent in args.agents
        for c in (args.budgets if agent_spec(parse_agent(agent)[0]).per_budget else [None])
    ]


def _done(rows: list[dict], seed: int, agent: str, budget: float | None) -> bool:
    return any(
        u["seed"] == seed
        and u["agent"] == agent
        and (u.get("budget") is None or u["budget"] == budget)
        for u in rows
    )


def _summary(rows: list[dict], args: argparse.Namespace, n_units: int, command: str) -> str:
    from agents.experiments.stats import summarize, summary_markdown

    table = pd.DataFrame([r for unit in rows for r in unit["rows"]])
    # A cell is counted once even if two processes both finished it.
    table = table.drop_duplicates(["agent", "seed", "budget"], keep="first")
    done = len(table)
    label = (
        "" if done >= n_units else f" (partial, {done} of {n_units} seed × agent × budget cells)"
    )
    head = [
        f"# Agents built for the budget vs ES on {args.env_id}{label}",
        "",
        f"Command: `{command}`",
        "",
        f"Seeds {args.seeds}; {args.episodes} search episodes (unless an agent's spec says "
        "`episodes=N`) of T = 10 steps per budget for the "
        "one-budget agents (structured-*, rw-td3-lagrange: one search per budget, so 3× the env "
        f"steps of rw-td3, which searches once for all budgets); env kwargs "
        f"{args.env_kw or 'none (the id as registered)'}; "
        f"top-{args.top_l} selective retraining, final retraining early-stopped on validation "
        "(SearchSession.final_batches). Test metrics. Shared 2-core CPU, one torch thread per "
        "unit; 1-min load average at the start of each unit: "
        + ", ".join(f"{_unit_name(u)} {u['load_average']:.1f}" for u in rows)
        + ".",
        "",
        "Wall time per unit (s): "
        + ", ".join(
            f"{_unit_name(u)} " + ("?" if u["seconds"] is None else f"{u['seconds']:.0f}")
            for u in rows
        )
        + ".",
        "",
        *[f"Note on {_unit_name(u)}: {u['note']}\n" for u in rows if u.get("note")],
    ]
    raw = table[["agent", "budget", "seed", "sparsity", "recall@20", "ndcg@20", "search_s"]]
    return (
        "\n".join(head).rstrip()
        + "\n\n"
        + summary_markdown(summarize(table, baseline="es"), baseline="es")
        + "\n## Per seed\n\n"
        + "\n".join(md_table(list(raw.columns), list(raw.itertuples(index=False))))
        + "\n"
    )


def summary(units: list[dict], args: argparse.Namespace, n_units: int, command: str) -> str:
    """The study's markdown from its finished units; also the report of its ported studies.

    ``args`` needs ``env_id``, ``seeds``, ``episodes``, ``env_kw`` and ``top_l``
    (``benchmarks/study.py`` builds them from a sweep spec).
    """
    return _summary(units, args, n_units, command)


def _refuse_ported(out: Path) -> None:
    """A study moved to ``study.py`` keeps its cells there; a JSONL beside them would fork it."""
    from study import STUDIES

    from ciess_env.errors import InvalidArgumentError

    if out.name in STUDIES and (out / "cells").is_dir():
        msg = (f"{out.name} runs through its cells now: `python benchmarks/study.py run "
               f"{out.name}` (or pick another --out for a new study).")  # fmt: skip
        raise InvalidArgumentError(msg)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-id", default="CIESS-LightGCN-ML100K-v0")
    parser.add_argument(
        "--agents", nargs="+", default=list(DEFAULT_AGENTS),
        help="agent names or variants AGENT:k=v[,env.k=v] (see parse_agent)",
    )  # fmt: skip
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--top-l", type=int, default=3)
    parser.add_argument("--budgets", nargs="+", type=float, default=[0.8, 0.9, 0.95])
    parser.add_argument(
        "--env-kw", default="retrain=fast", help="k=v[,k=v...] or a JSON object, for gym.make"
    )
    parser.add_argument("--out", default="benchmarks/results/budget_agents_ml100k")
    parser.add_argument(
        "--retrain-batches", type=int, default=None,
        help="cap on each final retraining (default: SearchSession.final_batches())",
    )  # fmt: skip
    parser.add_argument(
        "--report", action="store_true", help="only rewrite the markdown from the JSONL"
    )
    args = parser.parse_args(argv)

    import torch

    from agents.experiments.comparison import compare
    from agents.registry import agent_spec

    torch.set_num_threads(1)
    env_kwargs = _env_kwargs(args.env_kw)
    out = Path(args.out)
    if not args.report:
        _refuse_ported(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    jsonl = out.with_suffix(".jsonl")
    given = sys.argv[1:] if argv is None else argv
    # The command that produces the units (``--report`` only re-renders them).
    command = command_line("benchmarks/budget_agents.py", [a for a in given if a != "--report"])
    units = _units(args)  # parses every agent spec: a typo fails before any unit runs
    n_cells = len(args.seeds) * len(args.agents) * len(args.budgets)
    for seed, agent, budget in [] if args.report else units:
        rows = read_units(jsonl)
        if _done(rows, seed, agent, budget):
            continue
        load = load_average()
        t0 = time.perf_counter()
        name, agent_kw, variant_env_kw = parse_agent(agent)
        episodes = agent_kw.pop("episodes", args.episodes)
        comparison = compare(
            args.env_id, [name], budgets=args.budgets if budget is None else [budget],
            episodes=episodes, top_l=args.top_l, seed=seed,
            retrain_batches=args.retrain_batches,
            env_kwargs=env_kwargs | variant_env_kw,
            # An agent sharing another's search reads its options ("pep-prefix" reads "pep"'s).
            agent_kwargs={agent_spec(name).kwargs_key: agent_kw},
            progress_bar=False,
        )  # fmt: skip
        table = comparison.table.assign(seed=seed, agent=agent)
        curve = comparison.curves.get(name)  # per-step search curve; heuristics have none
        unit = {
            "seed": seed,
            "agent": agent,
            "budget": budget,
            "episodes": episodes,
            "seconds": time.perf_counter() - t0,
            "load_average": load,
            "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "rows": json.loads(table.to_json(orient="records")),
            # For learning curves (benchmarks/structured_rl.py plots them with bands).
            "curve": None if curve is None else curve_records(curve),
        }
        append_unit(jsonl, unit)
        out.with_suffix(".md").write_text(_summary(read_units(jsonl), args, n_cells, command))
        print(f"done {_unit_name(unit)} in {unit['seconds']:.0f} s", flush=True)
    rows = read_units(jsonl)
    if rows:
        out.with_suffix(".md").write_text(_summary(rows, args, n_cells, command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
