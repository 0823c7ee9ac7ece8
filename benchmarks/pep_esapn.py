"""The paper's other baselines: PEP and an ESAPN-style agent next to ES and RW-TD3 (issue 17).

LightGCN on ML-100K and ML-1M, budgets 80/90/95 %, test Recall@20 / NDCG@20 of

* ``es``: equal sizes (one mask per budget);
* ``rw-td3``: CIESS's RandomWalkTD3, searched on the env;
* ``esapn``: SB3 DQN over six candidate sizes through ``DiscreteSizes`` (:mod:`agents.esapn`);
* ``pep``: PEP (:mod:`agents.pep`), an unstructured mask per budget;
* ``pep-prefix``: PEP's surviving-weight counts per entity as prefix sizes (same budget),
* ``rw-td3+fill`` / ``esapn+fill`` (opt-in): the same search (same seed), each kept mask grown
  to meet its budget exactly before the final retraining (``compare(..., fill_budget=True)``):
  how much of a search's gap to ES is budget left unspent,

each through :func:`agents.experiments.comparison.compare` (what ``ciess compare`` runs), all
under the **same final retraining**: the reduced protocol's (``benchmarks/reproduce.py
reduced``): early stopping on validation capped at 2,000 batches for each candidate (top-3 per
budget for the searches, the one mask for ES/PEP), the winner retrained on train + validation
for its best count and scored on test. Searches use ``retrain="fast"`` and 15 episodes.

Resumable: every finished (data set, method, seed) unit is appended to
``benchmarks/results/pep_esapn_<dataset>.jsonl`` with its command, seconds and load average;
a rerun skips the units already there and rewrites ``pep_esapn_<dataset>.md`` (mean and 95 %
bootstrap interval over seeds, the difference to ES paired by seed, the paper's Table 1 values
beside ours where it has them) after every unit.

Run (each unit is minutes on ML-100K, tens of minutes on ML-1M; one torch thread each)::

    python benchmarks/pep_esapn.py --data-dir ../shared/data --datasets ml-100k --seeds 0 1 2
    python benchmarks/pep_esapn.py --data-dir ../shared/data --datasets ml-1m --seeds 0
    python benchmarks/pep_esapn.py --quick --out /tmp/pep_esapn    # seconds, plumbing only
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from jsonl_cache import append_unit, command_line, load_average, read_units
from report import ci, diff, md_table

from agents.experiments import SearchSession
from agents.experiments.comparison import compare
from agents.experiments.selective import PAPER_BUDGETS, selective_retrain

logger = logging.getLogger("pep_esapn")

RESULTS = Path(__file__).parent / "results"
METHODS = ("es", "rw-td3", "esapn", "pep")
#: Opt-in variants: a search's masks filled to the budget (:func:`selective.fill_to_budget`).
FILLED = ("rw-td3+fill", "esapn+fill")
#: Row order of the report.
ROWS = ("es", "rw-td3", "rw-td3+fill", "esapn", "esapn+fill", "pep", "pep-prefix")
ENV_IDS = {"ml-100k": "CIESS-LightGCN-ML100K-v0", "ml-1m": "CIESS-LightGCN-ML1M-v0"}
LABELS = {
    "es": "ES",
    "rw-td3": "CIESS (RW-TD3)",
    "esapn": "ESAPN-style (DQN, 6 sizes)",
    "pep": "PEP",
    "pep-prefix": "PEP-as-prefix",
    "rw-td3+fill": "CIESS (RW-TD3), masks filled to c",
    "esapn+fill": "ESAPN-style, masks filled to c",
}
#: The paper's Table 1(a), LightGCN on ML-1M: (R@20, N@20). REFERENCE ONLY, not our results.
#: ESAPN cannot target a budget: its one row is at its own sparsity (72 % for LightGCN).
PAPER_ML1M: dict[tuple[str, float], tuple[float, float]] = {
    ("pep", 0.8): (0.2098, 0.3778),
    ("pep", 0.9): (0.1988, 0.3641),
    ("pep", 0.95): (0.1789, 0.3315),
    ("es", 0.8): (0.2248, 0.3969),
    ("es", 0.9): (0.2105, 0.3787),
    ("es", 0.95): (0.1752, 0.3272),
    ("rw-td3", 0.8): (0.2436, 0.4257),
    ("rw-td3", 0.9): (0.2248, 0.4023),
    ("rw-td3", 0.95): (0.2009, 0.3664),
}
PAPER_ESAPN_ML1M = "ESAPN in the paper: R@20 0.2422, N@20 0.4178 at its own sparsity 72 %"
QUICK_DATA = {"n_users": 40, "n_items": 30, "mean_interactions": 8}


def run_unit(
    env_id: str,
    env_kwargs: dict[str, Any],
    method: str,
    seed: int,
    *,
    episodes: int,
    cap: int,
    quick: bool,
    session: SearchSession,
    unfilled: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """All budgets of one method and seed, through :func:`compare` (as ``ciess compare``).

    For a ``+fill`` method, ``unfilled`` (the cached rows of the plain method, same seed) stands
    in for retraining the same masks unfilled: runs are deterministic on CPU, and the report
    checks that wherever both exist. Otherwise they are retrained on ``session`` (the data set
    and the retraining schedule of ``env_id``; the seed is passed explicitly).
    """
    base = method.removesuffix("+fill")
    names = ["pep", "pep-prefix"] if method == "pep" else [base]
    agent_kwargs: dict[str, dict[str, Any]] = {}
    if quick and base in ("rw-td3", "esapn"):
        agent_kwargs[base] = {"batch_size": 64, "policy_kwargs": {"net_arch": [16]}}
    result = compare(
        env_id, names, budgets=PAPER_BUDGETS, episodes=episodes, top_l=3, seed=seed,
        env_kwargs=env_kwargs, agent_kwargs=agent_kwargs, retrain_batches=cap,
        progress_bar=False, fill_budget=method in FILLED,
    )  # fmt: skip
    rows = []
    for rec in result.table.to_dict("records"):
        name = method if method in FILLED else rec["agent"]
        rows.append({"method": name, **{k: v for k, v in rec.items() if k != "agent"}})
    for m in result.pruned.get("pep", []):
        row = next(r for r in rows if r["method"] == "pep" and abs(r["budget"] - m.budget) < 1e-9)
        users, items = m.prefix_sizes()
        row |= {
            "reached_at_batch": m.reached_at_batch,
            "threshold_sparsity": m.threshold_sparsity,
            "csr_bytes": m.storage_bytes()["csr"],
            "prefix_bytes": m.storage_bytes()["prefix_equivalent"],
            "prefix_mean_user_size": float(users.mean()),
            "prefix_mean_item_size": float(items.mean()),
        }
    if method in FILLED and unfilled:
        for row in rows:
            (same,) = (r for r in unfilled if abs(r["budget"] - row["budget"]) < 1e-9)
            row |= {f"unfilled_{k}": same[k] for k in ("sparsity", "recall@20", "ndcg@20")}
            row["unfilled_from"] = "cache"
    elif method in FILLED:
        # The same search's masks as logged, through the same retraining: the fill's gain is
        # then paired within one search and does not rest on reruns being identical.
        plain = selective_retrain(
            result.logs[base],
            session.data,
            session.final_step(cap),
            budgets=PAPER_BUDGETS,
            seed=seed,
        )  # fmt: skip (the default rule: top 3 masks per budget)
        for row, res in zip(rows, plain, strict=True):
            row |= {
                f"unfilled_{k}": getattr(res, a, float("nan"))
                for k, a in (("sparsity", "sparsity"), ("recall@20", "recall_20"),
                             ("ndcg@20", "ndcg_20"))
            }  # fmt: skip
            row["unfilled_from"] = "recomputed"
    return rows


def _ci(values: Sequence[float]) -> str:
    """Mean over seeds with its 95 % percentile-bootstrap interval."""
    return ci(values, missing="not reached")


def _diff(rows: list[dict[str, Any]], es: dict[int, float], key: str) -> str:
    """Mean difference to ES, paired by seed, with its 95 % bootstrap interval."""
    pairs = [(r[key], es[r["seed"]]) for r in rows if r["seed"] in es]
    if not pairs:
        return "—"
    x, y = zip(*pairs, strict=True)
    return diff(x, y, missing="not reached")


def _same(a: float, b: float) -> bool:
    """Bit-equal, or both NaN (a budget neither run reached)."""
    return a == b or (a != a and b != b)


def _determinism(units: list[dict[str, Any]], filled: list[dict[str, Any]]) -> str:
    """Where the unfilled masks were retrained again, do they equal the plain unit's rows?"""
    plain = {
        (u["method"], u["seed"], r["budget"]): r
        for u in units
        if u["method"] not in FILLED
        for r in u["rows"]
    }
    same = total = 0
    for r in filled:
        ref = plain.get((r["method"].removesuffix("+fill"), r["seed"], r["budget"]))
        if r.get("unfilled_from", "recomputed") != "recomputed" or ref is None:
            continue
        total += 1
        same += all(_same(r[f"unfilled_{k}"], ref[k]) for k in ("sparsity", "recall@20", "ndcg@20"))
    cached = sum(r.get("unfilled_from") == "cache" for r in filled)
    parts = []
    if total:
        parts.append(
            f"{total} rows retrained again, {same} of them identical to the plain unit of the "
            "same seed"
        )
    if cached:
        parts.append(
            f"{cached} rows taken from the plain unit of the same seed (the search and its "
            "retraining are deterministic on CPU; where both were run they are identical)"
        )
    return "Unfilled values: " + "; ".join(parts) + "."


def write_report(units: list[dict[str, Any]], path: Path, planned: dict[str, int]) -> None:
    """Rewrite the markdown report from every unit in the JSONL cache."""
    path.write_text(report_text(units, planned))


def report_text(units: list[dict[str, Any]], planned: dict[str, int]) -> str:
    """The markdown report of these units (``planned``: units per data set, for "partial")."""
    lines = [
        "# PEP and an ESAPN-style agent beside ES and RW-TD3 (LightGCN, issue 17)",
        "",
        "Same final retraining for every row, the default `FinalRetrainRule`: early stopping "
        "on validation (every 50 batches, patience 8) capped at 2,000 batches (top-3 masks per "
        "budget for the searches, the one mask for ES / PEP / PEP-as-prefix), winner retrained "
        "on train + validation for its best count scaled to the larger split, test split, two "
        "seeds averaged. Searches: `retrain='fast'`, 15 episodes, λ = 0.4. Cells: mean over seeds "
        "[95 % percentile-bootstrap interval] (one value where n = 1); R@20 − ES: the "
        "difference paired by seed, `*` where its interval excludes 0. Produced by "
        "`benchmarks/pep_esapn.py`; per-unit rows, commands and load averages in "
        "`pep_esapn_<dataset>.jsonl`. Each unit ran on one thread of a 2-core machine that ran "
        "other jobs too (its 1-minute load is listed with it), so seconds are indicative.",
        "",
    ]
    if any(u["method"] in FILLED for u in units):
        lines += [
            'Rows "masks filled to c" rerun the same search (same seed) and grow each kept '
            "mask in proportion, capped at 128, until it meets c exactly, before the same final "
            "retraining (`compare(..., fill_budget=True)`; `ciess compare --fill-budget`).",
            "",
        ]
    for dataset in sorted({u["dataset"] for u in units}):
        mine = [u for u in units if u["dataset"] == dataset]
        done = len(mine)
        total = max(planned.get(dataset, done), done)
        label = "" if done >= total else f" (partial, {done} of {total} units)"
        lines += [f"## {dataset}{label}", ""]
        paper = dataset == "ml-1m"
        head = ["method", "c", "seeds", "sparsity", "R@20", "N@20", "R@20 − ES"]
        if paper:
            head += ["paper R@20", "paper N@20"]
        table = []
        methods = [m for m in ROWS if any(r["method"] == m for u in mine for r in u["rows"])]
        for c in PAPER_BUDGETS:
            es = {
                u["seed"]: r["recall@20"]
                for u in mine
                if u["method"] == "es"
                for r in u["rows"]
                if r["method"] == "es" and abs(r["budget"] - c) < 1e-9
            }
            for m in methods:
                rows = [
                    r
                    for u in mine
                    if u["method"] == (m if m != "pep-prefix" else "pep")
                    for r in u["rows"]
                    if r["method"] == m and abs(r["budget"] - c) < 1e-9
                ]
                seeds = sorted({u["seed"] for u in mine if u["method"] == m.split("-prefix")[0]})
                cells = [
                    LABELS[m],
                    f"{c:.0%}",
                    ",".join(map(str, seeds)),
                    _ci([r["sparsity"] for r in rows]),
                    _ci([r["recall@20"] for r in rows]),
                    _ci([r["ndcg@20"] for r in rows]),
                    "(baseline)" if m == "es" else _diff(rows, es, "recall@20"),
                ]
                if paper:
                    ref = PAPER_ML1M.get((m, c))
                    cells += [f"{ref[0]:.4f}", f"{ref[1]:.4f}"] if ref else ["—", "—"]
                table.append(cells)
        lines += md_table(head, table)
        if paper:
            lines += ["", f"{PAPER_ESAPN_ML1M}; paper CIESS row shown beside RW-TD3."]
        pep = [r for u in mine if u["method"] == "pep" for r in u["rows"] if r["method"] == "pep"]
        if pep:
            lines += [
                "",
                "PEP details per seed and budget: batch at which the annealed thresholds reached "
                "c (of the 2,000-batch search), sparsity of the learned thresholds alone, and "
                "bytes of the kept values as CSR (value + 1-byte column index + row pointers) vs "
                "the prefix layout of the same count.",
                "",
            ]
            lines += md_table(
                ["c", "reached at batch", "learned-only sparsity", "CSR bytes", "prefix bytes"],
                [[f"{r['budget']:.0%}", r["reached_at_batch"], r["threshold_sparsity"],
                  f"{r['csr_bytes']:,}", f"{r['prefix_bytes']:,}"] for r in pep],
            )  # fmt: skip
        filled = [
            r for u in mine if u["method"] in FILLED for r in u["rows"] if "unfilled_sparsity" in r
        ]
        if filled:
            lines += [
                "",
                "Filling, paired within each search: the same logged masks retrained as they "
                "are (unfilled) and grown to c (filled); gain = filled − unfilled R@20, mean over "
                "seeds [95 % interval], `*` where it excludes 0.",
                "",
            ]
            gains = []
            for m in FILLED:
                for c in PAPER_BUDGETS:
                    rows = [r for r in filled if r["method"] == m and abs(r["budget"] - c) < 1e-9]
                    if not rows:
                        continue
                    gain = diff(
                        [r["recall@20"] for r in rows],
                        [r["unfilled_recall@20"] for r in rows],
                        missing="not reached",
                    )
                    gains.append([
                        LABELS[m], f"{c:.0%}", ",".join(str(r["seed"]) for r in rows),
                        _ci([r["unfilled_sparsity"] for r in rows]),
                        _ci([r["unfilled_recall@20"] for r in rows]),
                        _ci([r["recall@20"] for r in rows]), gain,
                    ])  # fmt: skip
            head = ["method", "c", "seeds", "unfilled sparsity", "unfilled R@20", "filled R@20"]
            lines += [*md_table([*head, "gain"], gains), "", _determinism(mine, filled)]
        lines += ["", "Units:", ""]
        lines += [
            f"- {u['method']} seed {u['seed']}: {u['seconds']:.0f} s, load {u['load']}, "
            f"`{u['command']}`"
            for u in mine
        ]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default=os.environ.get("CIESS_DATA_DIR"))
    p.add_argument("--datasets", nargs="+", default=["ml-100k"], choices=sorted(ENV_IDS))
    p.add_argument(
        "--methods", nargs="+", default=list(METHODS), choices=(*METHODS, *FILLED),
        help="default: the four methods; also rw-td3+fill, esapn+fill (searched masks filled "
        "to the budget)",
    )  # fmt: skip
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--episodes", type=int, default=15)
    p.add_argument("--max-retrain-batches", type=int, default=2000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--recompute-unfilled", action="store_true",
        help="for a +fill method, retrain the unfilled masks too instead of taking them from "
        "the cached plain unit of the same seed",
    )  # fmt: skip
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--quick", action="store_true", help="tiny synthetic data, plumbing only")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    command = command_line("benchmarks/pep_esapn.py", sys.argv[1:] if argv is None else argv)
    for dataset in args.datasets:
        env_kwargs: dict[str, Any] = {"retrain": "fast", "progress_bar": False}
        env_id = ENV_IDS[dataset]
        if args.quick:
            env_id = "CIESS-LightGCN-Synthetic-v0"
            env_kwargs |= {"preset": "tiny", "dataset_kwargs": QUICK_DATA, "lam": 20.0}
        elif args.data_dir:
            env_kwargs["data_dir"] = args.data_dir
        # One cache and report per data set, so data sets can run as separate jobs.
        cache = args.out / f"pep_esapn_{'quick' if args.quick else dataset}.jsonl"
        report = cache.with_suffix(".md")
        if not args.quick and (args.out / cache.stem / "cells").is_dir():
            from ciess_env.errors import InvalidArgumentError

            msg = (f"{cache.stem} runs through its cells now: `python benchmarks/study.py run "
                   f"{cache.stem}` (or pass another --out for a new study).")  # fmt: skip
            raise InvalidArgumentError(msg)
        # Every method is planned (and a variant once asked for or cached), so a run of a
        # subset reports "(partial, ...)" honestly.
        variants = {m for m in args.methods if m in FILLED}
        variants |= {u["method"] for u in read_units(cache) if u["method"] in FILLED}
        planned = {dataset: (len(METHODS) + len(variants)) * len(args.seeds)}
        session = SearchSession(env_id, env_kwargs=env_kwargs, progress_bar=False)
        cap = min(session.final_batches(), 4 if args.quick else args.max_retrain_batches)
        for seed in args.seeds:
            for method in args.methods:
                key = (dataset, method, seed)
                # Re-read the cache: another job may share it (two cores, two units at once).
                units = read_units(cache)
                if any((u["dataset"], u["method"], u["seed"]) == key for u in units):
                    continue
                logger.info("running %s", key)
                load = f"{load_average():.2f}"
                t0 = time.perf_counter()
                plain = None
                if method in FILLED and not args.recompute_unfilled:
                    pair = (dataset, method.removesuffix("+fill"), seed)
                    plain = next(
                        (
                            u["rows"]
                            for u in units
                            if (u["dataset"], u["method"], u["seed"]) == pair
                        ),
                        None,
                    )
                rows = run_unit(
                    env_id, env_kwargs, method, seed, cap=cap, quick=args.quick,
                    episodes=1 if args.quick else args.episodes, session=session,
                    unfilled=plain,
                )  # fmt: skip
                unit = {
                    "dataset": dataset,
                    "method": method,
                    "seed": seed,
                    "rows": rows,
                    "seconds": time.perf_counter() - t0,
                    "load": load,
                    "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                    "command": command,
                    "final_retraining_cap": cap,
                    "torch_threads": args.threads,
                }
                append_unit(cache, unit)
                write_report(read_units(cache), report, planned)
        if cache.exists():  # also when every unit was already done: the report only
            write_report(read_units(cache), report, planned)
        session.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
