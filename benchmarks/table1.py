"""The paper's Table 1 as a study: {ML-1M, Yelp2018} × {LightGCN, NGCF, NCF} at 80/90/95 %.

Three commands (issue 31):

``report``
    Renders ``benchmarks/results/table1.md`` from whatever cells exist: this study's own units
    (``table1_units.jsonl``) and the earlier studies' files that hold matching cells (LightGCN
    on ML-1M: ``budget_agents_ml1m_v1.jsonl`` for ES/MR/MDE/structured TPE,
    ``pep_esapn_ml-1m.jsonl`` for ES/PEP/PEP-as-prefix/ESAPN-style/RW-TD3). Per (data set,
    backbone) and budget: mean and 95 % bootstrap interval over seeds, the difference to ES
    paired by seed, the paper's numbers beside ours, the sparsity actually reached; missing
    cells are marked, and the title says how many of the planned seed-cells exist.
``run``
    Runs missing units (one data set × backbone × method × seed, all budgets) and appends each
    to ``table1_units.jsonl`` when it finishes (resumable; one torch thread by default),
    every method through :func:`agents.experiments.comparison.compare`, as ``ciess compare``
    (MagPrune and OptEmbed: :mod:`agents.magprune`, :mod:`agents.optembed`). Every row goes
    through the same final retraining (early stopping on validation, capped at
    ``--max-retrain-batches``, winner retrained on train + validation, scored on test) except
    ``magprune``, the benchmark's protocol (the pruned trained model scored as it is).
``costs``
    Renders ``benchmarks/results/table1_costs.md`` from short measurements
    (``--measure`` runs them: a few batches and one validation pass per backbone and data set)
    and the counts each cell kind needs, so a user can size a cluster for the full grid
    (``benchmarks/sweeps/table1_*.toml``).

Run::

    python benchmarks/table1.py report
    python benchmarks/table1.py run --data-dir ../shared/data --datasets ml-1m
        --backbones lightgcn --methods magprune magprune-retrain optembed --seeds 0 1 2
    python benchmarks/table1.py costs --data-dir ../shared/data --measure
    python benchmarks/table1.py run --quick --out /tmp/t1.jsonl --methods es magprune  # seconds
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from jsonl_cache import append_unit, command_line, load_average, read_units
from report import md_table

logger = logging.getLogger("table1")

RESULTS = Path(__file__).parent / "results"
UNITS = RESULTS / "table1_units.jsonl"
REPORT = RESULTS / "table1.md"
COSTS = RESULTS / "table1_costs.md"
COST_UNITS = RESULTS / "table1_costs.jsonl"

DATASETS: tuple[str, ...] = ("ml-1m", "yelp2018")
BACKBONES: tuple[str, ...] = ("lightgcn", "ngcf", "ncf")
BUDGETS: tuple[float, ...] = (0.8, 0.9, 0.95)
SEEDS: tuple[int, ...] = (0, 1, 2)
DATASET_IDS = {"ml-1m": "ML1M", "yelp2018": "Yelp2018"}
BACKBONE_IDS = {"lightgcn": "LightGCN", "ngcf": "NGCF", "ncf": "NCF"}
DATASET_LABELS = {"ml-1m": "ML-1M", "yelp2018": "Yelp2018"}
#: Row order and labels. "magprune" is the benchmark's protocol (no retraining).
METHODS: dict[str, str] = {
    "es": "ES",
    "mr": "MR",
    "mde": "MDE",
    "pep": "PEP",
    "pep-prefix": "PEP-as-prefix",
    "esapn": "ESAPN-style (DQN, 6 sizes)",
    "optembed": "OptEmbed",
    "magprune": "MagPrune (published: no retraining)",
    "magprune-retrain": "MagPrune, retrained",
    "structured-tpe": "Structured TPE",
    "rw-td3": "CIESS (RW-TD3)",
}
#: A unit of ``run`` → the rows it writes (one PEP search serves both PEP rows).
UNIT_ROWS = {"pep": ("pep", "pep-prefix")}
#: Our method → the paper's row of the same idea (budget-targeted rows only).
PAPER_METHOD = {"es": "ES", "mr": "MR", "pep": "PEP", "rw-td3": "CIESS"}
PAPER_COLUMNS = ("lightgcn", "ngcf", "ncf")

# The paper's Table 1 (Qu et al., SIGIR 2023), R@20 and N@20 per backbone in the order of
# PAPER_COLUMNS. REFERENCE ONLY, copied from the paper (../shared/paper.md §5.1-5.2); the
# LightGCN values equal benchmarks/reproduce.py's PAPER_REFERENCE (tests check it).
_P = tuple[tuple[float, float], tuple[float, float], tuple[float, float]]
PAPER: dict[str, dict[tuple[str, float], _P]] = {
    "ml-1m": {
        ("PEP", 0.8): ((0.2098, 0.3778), (0.2138, 0.3798), (0.2045, 0.3603)),
        ("ES", 0.8): ((0.2248, 0.3969), (0.2232, 0.3858), (0.2080, 0.3682)),
        ("MR", 0.8): ((0.2004, 0.3648), (0.2053, 0.3693), (0.1914, 0.3374)),
        ("CIESS", 0.8): ((0.2436, 0.4257), (0.2148, 0.3854), (0.2221, 0.3828)),
        ("PEP", 0.9): ((0.1988, 0.3641), (0.2092, 0.3727), (0.2033, 0.3591)),
        ("ES", 0.9): ((0.2105, 0.3787), (0.2069, 0.3679), (0.1973, 0.3546)),
        ("MR", 0.9): ((0.1802, 0.3383), (0.2056, 0.3660), (0.1703, 0.3127)),
        ("CIESS", 0.9): ((0.2248, 0.4023), (0.2082, 0.3779), (0.2131, 0.3750)),
        ("PEP", 0.95): ((0.1789, 0.3315), (0.2020, 0.3618), (0.1955, 0.3379)),
        ("ES", 0.95): ((0.1752, 0.3272), (0.1977, 0.3595), (0.1841, 0.3358)),
        ("MR", 0.95): ((0.1634, 0.3119), (0.1958, 0.3593), (0.1637, 0.3072)),
        ("CIESS", 0.95): ((0.2009, 0.3664), (0.2055, 0.3727), (0.1982, 0.3587)),
    },
    "yelp2018": {
        ("PEP", 0.8): ((0.0723, 0.0682), (0.0275, 0.0223), (0.0406, 0.0327)),
        ("ES", 0.8): ((0.0822, 0.0758), (0.0665, 0.0603), (0.0465, 0.0351)),
        ("MR", 0.8): ((0.0783, 0.0698), (0.0618, 0.0573), (0.0342, 0.0268)),
        ("CIESS", 0.8): ((0.0839, 0.0783), (0.0701, 0.0652), (0.0533, 0.0474)),
        ("PEP", 0.9): ((0.0657, 0.0610), (0.0276, 0.0215), (0.0427, 0.0335)),
        ("ES", 0.9): ((0.0722, 0.0648), (0.0622, 0.0592), (0.0416, 0.0309)),
        ("MR", 0.9): ((0.0642, 0.0573), (0.0573, 0.0524), (0.0309, 0.0242)),
        ("CIESS", 0.9): ((0.0730, 0.0705), (0.0669, 0.0619), (0.0500, 0.0442)),
        ("PEP", 0.95): ((0.0600, 0.0561), (0.0259, 0.0206), (0.0399, 0.0330)),
        ("ES", 0.95): ((0.0624, 0.0571), (0.0573, 0.0545), (0.0303, 0.0238)),
        ("MR", 0.95): ((0.0583, 0.0540), (0.0528, 0.0486), (0.0275, 0.0216)),
        ("CIESS", 0.95): ((0.0657, 0.0640), (0.0662, 0.0613), (0.0483, 0.0446)),
    },
}
#: The paper's rows at their own sparsity (ESAPN and OptEmbed cannot target a budget):
#: (sparsity, R@20, N@20) per backbone.
PAPER_OWN_SPARSITY: dict[str, dict[str, tuple[tuple[float, float, float], ...]]] = {
    "ml-1m": {
        "ESAPN": ((0.72, 0.2422, 0.4178), (0.85, 0.2276, 0.3829), (0.72, 0.2283, 0.3822)),
        "OptEmbed": ((0.83, 0.1994, 0.3650), (0.80, 0.2038, 0.3622), (0.85, 0.1352, 0.2573)),
    },
    "yelp2018": {
        "ESAPN": ((0.76, 0.0752, 0.0699), (0.73, 0.0364, 0.0297), (0.74, 0.0448, 0.0425)),
        "OptEmbed": ((0.80, 0.0534, 0.0489), (0.67, 0.0412, 0.0369), (0.77, 0.0238, 0.0203)),
    },
}

#: Earlier studies' files holding Table 1 cells: (file, data set, backbone, protocol note).
#: Their rows use the same final retraining (early stopping capped at 2,000 batches on
#: ML-1M, train + validation, test); the searches' own settings differ and are named here.
SOURCES: tuple[tuple[str, str, str, str], ...] = (
    ("budget_agents_ml1m_v1.jsonl", "ml-1m", "lightgcn",
     "benchmarks/budget_agents.py on CIESS-LightGCN-ML1M-v1 (structured TPE: 1 episode = 10 "
     "trials per budget on the converge:50/4 step)"),
    ("pep_esapn_ml-1m.jsonl", "ml-1m", "lightgcn",
     "benchmarks/pep_esapn.py on CIESS-LightGCN-ML1M-v0 with retrain='fast', 15 episodes "
     "(RW-TD3, ESAPN-style); PEP with its default search"),
)  # fmt: skip


# ------------------------------------------------------------------------------- cells
def env_id(dataset: str, backbone: str) -> str:
    """The registered -v1 env id of a Table 1 column."""
    return f"CIESS-{BACKBONE_IDS[backbone]}-{DATASET_IDS[dataset]}-v1"


def _rows_of(unit: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for r in unit.get("rows", []):
        method = r.get("agent", r.get("method"))
        rows.append({**r, "method": method})
    return rows


def column_of(eid: str) -> tuple[str, str] | None:
    """``(data set, backbone)`` of a Table 1 env id (any version), or None for another id."""
    parts = eid.split("-")
    if len(parts) != 4 or parts[0] != "CIESS":
        return None
    backbone = {v: k for k, v in BACKBONE_IDS.items()}.get(parts[1])
    dataset = {v: k for k, v in DATASET_IDS.items()}.get(parts[2])
    return None if backbone is None or dataset is None else (dataset, backbone)


def sweep_units(folder: Path) -> list[dict[str, Any]]:
    """The finished cells of a ``ciess sweep`` folder (e.g. of ``sweeps/table1_*.toml``) as units.

    A cell counts once its ``done.json`` exists; its ``results.csv`` rows (``env_id``,
    ``agent``, ``seed``, ``budget``, metrics) become the rows of one unit per cell.
    """
    import csv

    units = []
    for done in sorted(Path(folder).glob("**/done.json")):
        table = done.parent / "results.csv"
        if not table.is_file():
            continue
        with table.open() as fh:
            rows = list(csv.DictReader(fh))
        for r in rows:
            column = column_of(r.get("env_id", ""))
            if column is None or not r.get("recall@20"):
                continue
            num = {k: float(r[k]) for k in ("budget", "sparsity", "recall@20", "ndcg@20")}
            units.append({"dataset": column[0], "backbone": column[1], "rows": [
                {"method": r["agent"], "seed": int(r["seed"]), **num}]})  # fmt: skip
    return units


def collect_cells(
    units_path: Path = UNITS, results: Path = RESULTS, *, sources: Sequence = SOURCES,
    sweeps: Sequence[Path] = (),
) -> dict[tuple[str, str, str, float, int], dict[str, Any]]:  # fmt: skip
    """Every (data set, backbone, method, budget, seed) row that exists, with its source.

    This study's units come first, then finished cells of ``sweeps`` folders, then the earlier
    studies' files; a later row for a key already seen is skipped (the ES rows of the two
    LightGCN ML-1M files are the same runs). Rows of methods outside :data:`METHODS`
    (variants such as ``esapn+fill``) and rows without a result (a budget not reached) are
    ignored.
    """
    cells: dict[tuple[str, str, str, float, int], dict[str, Any]] = {}

    def add(dataset: str, backbone: str, row: dict[str, Any], source: str) -> None:
        if row["method"] not in METHODS or not _finite(row.get("recall@20")):
            return
        key = (dataset, backbone, row["method"], round(float(row["budget"]), 6), int(row["seed"]))
        cells.setdefault(key, {**row, "source": source})

    for unit in read_units(units_path):
        for row in _rows_of(unit):
            add(unit["dataset"], unit["backbone"], row, units_path.stem)
    for folder in sweeps:
        for unit in sweep_units(folder):
            for row in unit["rows"]:
                add(unit["dataset"], unit["backbone"], row, f"sweep {Path(folder).name}")
    for name, dataset, backbone, _ in sources:
        for unit in read_units(results / name):
            for row in _rows_of(unit):
                add(dataset, backbone, row, Path(name).stem)
    return cells


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _interval(values: Sequence[float]):
    from agents.experiments.stats import bootstrap_ci

    return bootstrap_ci(values)


def _paired(x: Sequence[float], y: Sequence[float]):
    from agents.experiments.stats import difference_ci

    return difference_ci(x, y, paired=True)


def _fmt_sparsity(values: Sequence[float]) -> str:
    v = [x for x in values if not math.isnan(x)]
    if not v:
        return "—"
    lo, hi = min(v), max(v)
    return f"{lo:.4f}" if hi - lo < 5e-5 else f"{np.mean(v):.4f} ({lo:.4f}–{hi:.4f})"


def _paper(dataset: str, backbone: str, method: str, c: float) -> tuple[float, float] | None:
    name = PAPER_METHOD.get(method)
    cell = PAPER.get(dataset, {}).get((name, c)) if name else None
    return None if cell is None else cell[PAPER_COLUMNS.index(backbone)]


def column_rows(
    cells: dict, dataset: str, backbone: str
) -> list[dict[str, Any]]:  # one row per method × budget
    """Per method and budget of one column: seeds, intervals, paired difference, paper."""
    out = []
    for c in BUDGETS:
        es = {k[4]: v for k, v in cells.items() if k[:4] == (dataset, backbone, "es", round(c, 6))}
        for method in METHODS:
            rows = {
                k[4]: v
                for k, v in cells.items()
                if k[:4] == (dataset, backbone, method, round(c, 6))
            }
            seeds = sorted(rows)
            rec: dict[str, Any] = {"method": method, "budget": c, "seeds": seeds}
            rec["sources"] = sorted({rows[s]["source"] for s in seeds})
            for m in ("recall@20", "ndcg@20"):
                values = [float(rows[s][m]) for s in seeds]
                rec[m] = _interval(values) if seeds else None
                shared = [s for s in seeds if s in es]
                if method != "es" and shared:
                    rec[f"{m} - es"] = _paired(
                        [float(rows[s][m]) for s in shared], [float(es[s][m]) for s in shared]
                    )
                else:
                    rec[f"{m} - es"] = None
            rec["sparsity"] = [float(rows[s]["sparsity"]) for s in seeds]
            rec["paper"] = _paper(dataset, backbone, method, c)
            out.append(rec)
    return out


def _cell(iv, missing: str = "missing") -> str:
    return missing if iv is None else iv.format(".4f")


def _short(rec: dict[str, Any]) -> str:
    """A summary cell: R@20 mean, its paired difference to ES, the paper's value, seeds."""
    iv = rec["recall@20"]
    if iv is None:
        return "·"
    text = f"{iv.estimate:.4f}"
    d = rec["recall@20 - es"]
    if d is not None and not math.isnan(d.estimate):
        star = "*" if d.excludes(0.0) else ""
        text += f" ({d.estimate:+.4f}{star})"
    if len(rec["seeds"]) < len(SEEDS):
        text += f" n={len(rec['seeds'])}"
    if rec["paper"] is not None:
        text += f" [p {rec['paper'][0]:.4f}]"
    return text


def render_report(cells: dict, *, command: str, written: str) -> str:
    """The markdown of ``table1.md``."""
    columns = [(d, b) for d in DATASETS for b in BACKBONES]
    planned = len(columns) * len(METHODS) * len(BUDGETS) * len(SEEDS)
    have = sum(
        1
        for k in cells
        if (k[0], k[1]) in columns and k[3] in {round(c, 6) for c in BUDGETS} and k[4] in SEEDS
    )
    status = "complete" if have >= planned else f"partial, {have} of {planned} seed-cells"
    per_col = {col: column_rows(cells, *col) for col in columns}
    lines = [
        f"# Table 1: {{ML-1M, Yelp2018}} × {{LightGCN, NGCF, NCF}} ({status})",
        "",
        f"Command: `{command}`. Written {written}. Rendered from whatever cells exist; "
        "planned: 11 methods × 3 budgets × 3 seeds (0, 1, 2) per column. Resume the missing "
        "cells with `python benchmarks/table1.py run --data-dir ../shared/data --datasets D "
        "--backbones B --methods M --seeds 0 1 2` (one unit per data set × backbone × method "
        "× seed) or on a cluster with `ciess sweep benchmarks/sweeps/table1_<dataset>.toml`; "
        "what each cell costs: `table1_costs.md`.",
        "",
        "Every row but *MagPrune (published)* went through the same final retraining: early "
        "stopping on validation (capped at 2,000 batches), the winner retrained on train + "
        "validation for its best count, scored on test. *MagPrune (published)* is the "
        "Tran et al. (2024) benchmark's protocol: the trained full-size model, pruned, scored "
        "on test as it is. Sparsity is counted from non-zeros for PEP and MagPrune "
        "(unstructured; their index bytes are extra) and from sizes for every other row.",
        "",
        "## Summary: test Recall@20",
        "",
        "Mean over seeds; in brackets `(Δ vs ES)`, the mean difference to ES paired by seed, "
        "`*` where its 95 % bootstrap interval excludes 0; `n=` where fewer than 3 seeds "
        "exist; `[p …]` the paper's value for the same method. `·` = missing cell.",
        "",
        "| method | c | " + " | ".join(f"{DATASET_LABELS[d]} {BACKBONE_IDS[b]}" for d, b in columns)
        + " |",
        "|---|---|" + "---|" * len(columns),
    ]  # fmt: skip
    for i, c in enumerate(BUDGETS):
        for j, method in enumerate(METHODS):
            recs = [per_col[col][i * len(METHODS) + j] for col in columns]
            if all(r["recall@20"] is None for r in recs) and method not in PAPER_METHOD:
                continue
            lines.append(
                f"| {METHODS[method]} | {c:.0%} | " + " | ".join(_short(r) for r in recs) + " |"
            )
    lines += ["", "Methods with no cell in any column are left out of the summary.", ""]
    for col in columns:
        dataset, backbone = col
        recs = per_col[col]
        n = sum(len(r["seeds"]) for r in recs)
        total = len(METHODS) * len(BUDGETS) * len(SEEDS)
        tag = "complete" if n >= total else f"partial, {n} of {total} seed-cells"
        lines += [
            f"## {DATASET_LABELS[dataset]}, {BACKBONE_IDS[backbone]} ({tag})",
            "",
            "| method | c | seeds | sparsity reached | R@20 [95 % CI] | N@20 [95 % CI] | "
            "R@20 − ES | N@20 − ES | paper R@20 | paper N@20 | source |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in recs:
            seeds = ",".join(map(str, r["seeds"])) or "—"
            paper = r["paper"] or ("—", "—")
            d_r, d_n = r["recall@20 - es"], r["ndcg@20 - es"]
            base = "(baseline)" if r["method"] == "es" and r["seeds"] else "—"
            lines.append(
                f"| {METHODS[r['method']]} | {r['budget']:.0%} | {seeds} | "
                f"{_fmt_sparsity(r['sparsity'])} | {_cell(r['recall@20'])} | "
                f"{_cell(r['ndcg@20'])} | "
                f"{base if d_r is None else d_r.format('+.4f', star=True)} | "
                f"{base if d_n is None else d_n.format('+.4f', star=True)} | "
                + " | ".join(x if isinstance(x, str) else f"{x:.4f}" for x in paper)
                + f" | {', '.join(r['sources']) or '—'} |"
            )
        own = PAPER_OWN_SPARSITY[dataset]
        k = PAPER_COLUMNS.index(backbone)
        lines += [
            "",
            "Paper rows at their own sparsity: "
            + "; ".join(
                f"{m} sp {v[k][0]:.0%} R@20 {v[k][1]:.4f} N@20 {v[k][2]:.4f}"
                for m, v in own.items()
            )
            + ".",
            "",
        ]
    lines += ["## Sources", "", "- `table1_units.jsonl`: `benchmarks/table1.py run` (this study)."]
    lines += [f"- `{name}`: {note}." for name, _, _, note in SOURCES]
    return "\n".join(lines).rstrip() + "\n"


def write_report(
    path: Path = REPORT, *, units: Path = UNITS, results: Path = RESULTS, command: str,
    sweeps: Sequence[Path] = (),
) -> Path:  # fmt: skip
    """Collect the cells and write the report."""
    cells = collect_cells(units, results, sweeps=sweeps)
    written = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    path.write_text(render_report(cells, command=command, written=written))
    return path


# --------------------------------------------------------------------------------- run
def run_units(args: argparse.Namespace, command: str) -> None:
    """Every missing unit of the asked grid, appended to ``args.out`` as it finishes."""
    import torch

    from agents.experiments import SearchSession  # final_batches: the retraining cap

    torch.set_num_threads(args.threads)
    for dataset in args.datasets:
        for backbone in args.backbones:
            eid, env_kwargs = env_id(dataset, backbone), {"progress_bar": False}
            if args.quick:
                eid = f"CIESS-{BACKBONE_IDS[backbone]}-Synthetic-v1"
                env_kwargs |= {"preset": "tiny", "dataset_kwargs": QUICK_DATA}
            elif args.data_dir:
                env_kwargs["data_dir"] = args.data_dir
            session = None
            groups = [[c] for c in args.budgets] if args.per_budget else [list(args.budgets)]
            for seed in args.seeds:
                for method in args.methods:
                    for budgets in groups:
                        done = _covered(read_units(args.out))  # re-read: a shared file
                        if all((dataset, backbone, method, seed, c) in done for c in budgets):
                            continue
                        if session is None:
                            session = SearchSession(eid, env_kwargs=env_kwargs,
                                                    progress_bar=False)  # fmt: skip
                        cap = session.final_batches()
                        cap = min(cap, 4 if args.quick else args.max_retrain_batches)
                        logger.info("running %s", (dataset, backbone, method, seed, budgets))
                        load, t0 = load_average(), time.perf_counter()
                        rows = unit_rows(eid, env_kwargs, method, seed, cap, args, budgets)
                        append_unit(args.out, {
                            "dataset": dataset, "backbone": backbone, "method": method,
                            "seed": seed, "budgets": budgets, "env_id": eid, "rows": rows,
                            "seconds": time.perf_counter() - t0, "load_average": load,
                            "finished": dt.datetime.now(dt.timezone.utc).isoformat(
                                timespec="seconds"),
                            "command": command, "final_retraining_cap": cap,
                            "torch_threads": args.threads,
                        })  # fmt: skip
            if session is not None:
                session.close()


def _covered(units: list[dict[str, Any]]) -> set[tuple[str, str, str, int, float]]:
    """(data set, backbone, method, seed, budget) of every finished unit's rows.

    A unit covers every budget unless it names its ``budgets`` (``--per-budget``).
    """
    return {
        (u["dataset"], u["backbone"], u["method"], u["seed"], float(c))
        for u in units
        for c in u.get("budgets", BUDGETS)
    }


def unit_rows(eid: str, env_kwargs: dict, method: str, seed: int, cap: int,
              args: argparse.Namespace, budgets: Sequence[float] = BUDGETS,
              ) -> list[dict[str, Any]]:  # fmt: skip
    """One unit's rows, through :func:`agents.experiments.comparison.compare` (``ciess compare``).

    MagPrune and OptEmbed keep their extra fields (``min_item``, index bytes, the supernet's
    validation score, ...) from ``Comparison.pruned`` / the budget log.
    """
    from agents.experiments.comparison import compare

    names = list(UNIT_ROWS.get(method, (method,)))
    result = compare(
        eid, names, budgets=list(budgets), episodes=1 if args.quick else args.episodes,
        top_l=3, seed=seed, env_kwargs=env_kwargs, retrain_batches=cap, progress_bar=False,
    )  # fmt: skip
    rows = [{**r, "method": r.pop("agent")} for r in result.table.to_dict("records")]
    for m in result.pruned.get(method, []) if method.startswith("magprune") else []:
        row = next(r for r in rows if abs(r["budget"] - m.budget) < 1e-9)
        row |= {
            "min_item": m.min_item, "validation_ndcg@20": m.validation_score,
            "csr_bytes": m.storage_bytes()["csr"],
            "prefix_bytes": m.storage_bytes()["prefix_equivalent"],
        }  # fmt: skip
    return rows


QUICK_DATA = {"n_users": 40, "n_items": 30, "mean_interactions": 8}


# ------------------------------------------------------------------------------- costs
#: Widths timed per column: full (PEP/MagPrune/OptEmbed training, elementwise retraining),
#: and the ES widths at 80/90/95 % of d_max = 128 (a prefix mask's step or retraining).
COST_WIDTHS: tuple[int, ...] = (128, 26, 13, 7)
#: The counts of one cell kind, from the settings the sweep specs use (a -v1 env, the default
#: FinalRetrainRule: validation every 50 batches, 2 seeds averaged, winner retrained on
#: train + validation for its best count × |train ∪ val| / |train| ≈ 1.1).
RULE_EVERY, RULE_SEEDS, MERGED = 50, 2, 1.1
OPTEMBED_EVALS = 20 + 30 * 20  # initial population + 30 generations of 20 new children
MAGPRUNE_EVALS = 12  # the peak search's validation passes per budget (at most ~2 log2(27))


def measure_column(
    dataset: str, backbone: str, data_dir: str | None, batches: int,
    widths: Sequence[int] = COST_WIDTHS, eval_users: int | None = None,
) -> dict:  # fmt: skip
    """Seconds per training batch at each width and per validation pass, one torch thread.

    The fastest of ``batches`` single-batch runs after one warm-up (a loaded core only adds),
    on the column's -v1 env data and schedule (batch size, backbone hyperparameters). With
    ``eval_users``, a validation pass is extrapolated from scoring that many users (once the
    tables are propagated) times the users' count, instead of timed whole.
    """
    import gymnasium as gym
    import torch

    import ciess_env  # noqa: F401  (registers the env ids)
    from ciess_env.recommenders import BPRTrainer, make_backbone

    torch.set_num_threads(1)
    env = gym.make(env_id(dataset, backbone), **({"data_dir": data_dir} if data_dir else {}))
    base = env.unwrapped
    data, config = base.data, base.train_config
    model = make_backbone(backbone, data, d_max=base.d_max, seed=0, **base.backbone_kwargs)
    n = data.n_users + data.n_items
    out: dict[str, Any] = {
        "dataset": dataset, "backbone": backbone, "n_entities": n,
        "n_batches": config.n_batches, "batch_size": config.batch_size,
        "train": len(data.train), "validation": len(data.validation),
    }  # fmt: skip
    for w in widths:
        model.set_sizes(np.full(data.n_users, w), np.full(data.n_items, w))
        trainer = BPRTrainer(model, data, config, seed=0)
        trainer.run(1)
        times = []
        for _ in range(batches):
            t0 = time.perf_counter()
            trainer.run(1)
            times.append(time.perf_counter() - t0)
        out[f"batch_s@{w}"] = min(times)
        if w in (128, 13):
            out[f"eval_s@{w}"] = _validation_seconds(model, data, eval_users)
    env.close()
    out["eval_users"] = eval_users or data.n_users
    out["eval_sampled"] = bool(eval_users and eval_users < data.n_users)
    return out


def _validation_seconds(model, data, eval_users: int | None) -> float:
    """One validation pass, timed whole or extrapolated from ``eval_users`` users' scores."""
    import torch

    from ciess_env.metrics import evaluate

    t0 = time.perf_counter()
    if not eval_users or eval_users >= data.n_users:
        evaluate(model, data, "validation")
        return time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        model.prepare_scoring()
        prepared = time.perf_counter() - t0
        t1 = time.perf_counter()
        for start in range(0, eval_users, 256):
            users = torch.arange(start, min(start + 256, eval_users))
            torch.topk(model.score(users), 20, dim=1)
        scored = time.perf_counter() - t1
    model.invalidate_scoring()
    return prepared + scored * data.n_users / eval_users


def cell_costs(m: dict[str, Any]) -> dict[str, float]:
    """Seconds of each cell kind (upper bounds of the counts) from one column's measurement."""
    n = int(m["n_batches"])
    evals = n / RULE_EVERY

    def retrain(width: int) -> float:  # one final retraining of one mask
        eval_s = m["eval_s@13"] if width < 128 else m["eval_s@128"]
        early = n * m[f"batch_s@{width}"] + evals * eval_s
        merged = MERGED * n * m[f"batch_s@{width}"] + eval_s
        return RULE_SEEDS * (early + merged)

    pretrain = 3 * n * m["batch_s@128"] + 3 * n / min(200, n) * m["eval_s@128"]
    return {
        "step_converge": n * m["batch_s@13"] + evals * m["eval_s@13"],
        "step_scratch": n * m["batch_s@13"] + m["eval_s@13"],
        "retrain_prefix": retrain(26),
        "retrain_elementwise": retrain(128),
        "pep_search": n * m["batch_s@128"],
        "pretrain": pretrain,
        "optembed_evolution": OPTEMBED_EVALS * m["eval_s@128"],
        "magprune_search": (MAGPRUNE_EVALS + 2) * m["eval_s@128"],
    }


#: Per method, a cell (one seed, three budgets) as counts of the kinds above.
CELL_RECIPES: dict[str, dict[str, float]] = {
    "es": {"retrain_prefix": 3},
    "mr": {"retrain_prefix": 3},
    "mde": {"retrain_prefix": 3},
    "pep": {"pep_search": 1, "retrain_elementwise": 3},
    "pep-prefix": {"pep_search": 1, "retrain_prefix": 3},
    "magprune": {"pretrain": 1, "magprune_search": 3},
    "magprune-retrain": {"pretrain": 1, "magprune_search": 3, "retrain_elementwise": 3},
    "optembed": {"pretrain": 1, "optembed_evolution": 3, "retrain_prefix": 3},
    "esapn": {"step_scratch": 300, "retrain_prefix": 9},
    "rw-td3": {"step_scratch": 300, "retrain_prefix": 9},
    "structured-tpe": {"step_scratch": 900, "retrain_prefix": 9},
}


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def render_costs(
    units: list[dict[str, Any]], *, command: str, written: str,
    finished: Sequence[dict[str, Any]] = (),
) -> str:  # fmt: skip
    """The markdown of ``table1_costs.md``.

    ``units`` are the cost measurements (``table1_costs.jsonl``); ``finished`` the study's
    whole units (``table1_units.jsonl``), whose wall times are listed beside the model.
    """
    units = sorted(units, key=lambda u: (DATASETS.index(u["dataset"]),
                                         BACKBONES.index(u["backbone"])))  # fmt: skip
    lines = [
        "# Table 1: what each cell costs",
        "",
        f"Command: `{command}`. Written {written}. Measured on this machine (2 shared cores, "
        "one torch thread, CPU); the 1-minute load average at each measurement is listed, and "
        "each time is the fastest of the timed single batches after a warm-up (a loaded core "
        "only adds). GPU: one H200 measured about 10 s per scratch step on ML-1M and 21 s on "
        "Yelp2018 for LightGCN (`REPRODUCING.md`); the ratio to this machine's step is "
        "below the cell-kind table.",
        "",
        "Measurements: "
        + "; ".join(sorted({f"`{u['command']}`" for u in units if "command" in u}))
        + ".",
        "",
        "## Measured",
        "",
        "| data | backbone | entities | batches n (step schedule) | s / batch @128 | @26 | @13 | "
        "@7 | validation pass @128 s | @13 s | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in units:
        lines.append(
            f"| {DATASET_LABELS[m['dataset']]} | {BACKBONE_IDS[m['backbone']]} | "
            f"{m['n_entities']:,} | {m['n_batches']:,} | "
            + " | ".join(
                f"{m[f'batch_s@{w}']:.3f}" if f"batch_s@{w}" in m else "—" for w in COST_WIDTHS
            )
            + f" | {m['eval_s@128']:.2f} | {m['eval_s@13']:.2f} | {m['load_average']:.1f} |"
        )
    sampled = [f"{DATASET_LABELS[m['dataset']]} {BACKBONE_IDS[m['backbone']]}" for m in units
               if m.get("eval_sampled")]  # fmt: skip
    if sampled:
        lines += ["", f"Validation passes of {', '.join(sampled)}: extrapolated from scoring "
                  "512 users (`--eval-users 512`; a whole pass there takes minutes on this "
                  "loaded core). On ML-1M the same extrapolation reads 15-20 % below a whole "
                  "pass (LightGCN 1.25 vs 1.47 s, NCF 8.2 vs 10.1 s)."]  # fmt: skip
    kinds = {
        "step_converge": "search step, -v1 design (converge:50/4: ≤ n batches at width 13 + "
        "a validation pass every 50)",
        "step_scratch": "search step, paper design (scratch: n batches at width 13 + 1 pass)",
        "retrain_prefix": "final retraining of one prefix mask (width 26: 2 seeds × (≤ n "
        "batches + n/50 passes) + 2 × 1.1 n merged batches)",
        "retrain_elementwise": "final retraining of one elementwise mask (PEP, MagPrune: width "
        "128, same counts)",
        "pep_search": "PEP search (n batches at width 128)",
        "pretrain": "full-size or supernet training (MagPrune's table, OptEmbed's supernet: ≤ "
        "3 n batches at 128, a pass every min(200, n))",
        "optembed_evolution": f"OptEmbed evolution, one budget ({OPTEMBED_EVALS} passes @128)",
        "magprune_search": f"MagPrune min_item search, one budget ({MAGPRUNE_EVALS} + 2 passes)",
    }
    costs = {(m["dataset"], m["backbone"]): cell_costs(m) for m in units}
    cols = list(costs)
    head = " | ".join(f"{DATASET_LABELS[d]} {BACKBONE_IDS[b]}" for d, b in cols)
    lines += [
        "",
        "## Seconds per cell kind (upper bounds of the counts; early stopping usually ends sooner)",
        "",
        f"| kind | {head} |",
        "|---|" + "---|" * len(cols),
    ]
    for kind, label in kinds.items():
        lines.append(f"| {label} | " + " | ".join(_hours(costs[c][kind]) for c in cols) + " |")
    gpu = {("ml-1m", "lightgcn"): 10.0, ("yelp2018", "lightgcn"): 21.0}  # H200, REPRODUCING.md
    speedups = [f"{DATASET_LABELS[d]} {costs[(d, b)]['step_scratch'] / s_:.0f}×"
                for (d, b), s_ in gpu.items() if (d, b) in costs]  # fmt: skip
    if speedups:
        lines += ["", "One H200's scratch step (LightGCN) against this table's: "
                  + ", ".join(speedups) + " faster."]  # fmt: skip
    lines += [
        "",
        "## One cell (method × seed, all three budgets), one CPU thread",
        "",
        "Recipes: ES/MR/MDE 3 prefix retrainings; PEP its search + 3 elementwise retrainings "
        "(PEP-as-prefix: + 3 prefix); MagPrune the full-size training + 3 min_item searches "
        "(+ 3 elementwise retrainings for the retrained row); OptEmbed the supernet + 3 "
        "evolutions + 3 prefix retrainings; ESAPN-style and RW-TD3 30 episodes × 10 paper "
        "(scratch) steps + top-3 × 3 budgets retrainings; structured TPE 30 × 10 steps per "
        "budget + 9 retrainings. Totals per method × 3 seeds in the last row.",
        "",
        f"| method | {head} |",
        "|---|" + "---|" * len(cols),
    ]
    totals = dict.fromkeys(cols, 0.0)
    for method, recipe in CELL_RECIPES.items():
        cells = []
        for c in cols:
            s = sum(k * costs[c][kind] for kind, k in recipe.items())
            totals[c] += len(SEEDS) * s
            cells.append(_hours(s))
        lines.append(f"| {METHODS[method]} | " + " | ".join(cells) + " |")
    lines.append("| **all methods × 3 seeds** | "
                 + " | ".join(f"**{_hours(totals[c])}**" for c in cols) + " |")  # fmt: skip
    missing = [f"{DATASET_LABELS[d]} {BACKBONE_IDS[b]}" for d in DATASETS for b in BACKBONES
               if (d, b) not in costs]  # fmt: skip
    if missing:
        lines += ["", f"Not measured yet: {', '.join(missing)} (resume: `python "
                  "benchmarks/table1.py costs --data-dir ../shared/data --measure`)."]  # fmt: skip
    lines += ["", *_calibration(costs), *_measured_units(list(finished))]
    grand = sum(totals.values())
    lines += [
        "",
        f"Whole grid on one CPU thread: {_hours(grand)} ({grand / 86400:.0f} days). The sweep "
        "specs `benchmarks/sweeps/table1_ml1m.toml` and `table1_yelp2018.toml` run one cell "
        "per Ray task (one GPU each); the searches (ESAPN-style, RW-TD3, structured TPE) "
        "dominate, so a cluster of G GPUs finishes in about the largest of (their cells' "
        "time / G, one such cell's time).",
    ]
    return "\n".join(lines).rstrip() + "\n"


def _measured_units(units: list[dict[str, Any]]) -> list[str]:
    """The wall seconds of this study's own finished units, per cell kind (what a cell costs).

    A unit is one method × seed on all budgets, or on one budget with ``--per-budget``; a
    method's first unit of a seed may also train what later ones reuse from the cache (the
    full-size model, OptEmbed's supernet), so the range is given, not a mean.
    """
    groups: dict[tuple[str, str, str, int], list[dict[str, Any]]] = {}
    for u in units:
        n = len(u.get("budgets") or BUDGETS)
        groups.setdefault((u["dataset"], u["backbone"], u["method"], n), []).append(u)
    if not groups:
        return []
    table = []
    for (dataset, backbone, method, n), us in sorted(groups.items()):
        sec = [u["seconds"] for u in us]
        load = [u["load_average"] for u in us]
        table.append([
            f"{DATASET_LABELS.get(dataset, dataset)} {BACKBONE_IDS[backbone]}",
            METHODS.get(method, method), n, len(us),
            f"{_hours(min(sec))} – {_hours(max(sec))}", f"{min(load):.1f}–{max(load):.1f}",
        ])  # fmt: skip
    head = ["column", "method", "budgets per unit", "units", "wall time (min – max)", "load"]
    return [
        "",
        "## Whole units of this study (measured)",
        "",
        "Wall time of each finished unit of `table1_units.jsonl` (one method × seed, on the "
        "budgets counted; one torch thread, the 1-minute load average when it started). A "
        "method's first unit of a seed may include training that its later units reuse from "
        "the cache (the full-size model, OptEmbed's supernet).",
        "",
        *md_table(head, table),
    ]


def _calibration(costs: dict[tuple[str, str], dict[str, float]]) -> list[str]:
    """Whole units measured by earlier studies beside this model's figure for the same work."""
    key = ("ml-1m", "lightgcn")
    if key not in costs:
        return []
    es = [(u["seconds"], u["load_average"]) for u in read_units(RESULTS / SOURCES[0][0])
          if u["agent"] == "es" and "budget" in u and u["seconds"]]  # fmt: skip
    pep = [(u["seconds"], float(u["load"])) for u in read_units(RESULTS / SOURCES[1][0])
           if u["method"] == "pep"]  # fmt: skip
    if not es or not pep:
        return []

    def span(pairs: list[tuple[float, float]]) -> str:
        sec, load = zip(*pairs, strict=True)
        return f"{min(sec):.0f}-{max(sec):.0f} s at load {min(load):.1f}-{max(load):.1f}"

    c = costs[key]
    pep_model = c["pep_search"] + 3 * c["retrain_elementwise"] + 3 * c["retrain_prefix"]
    ratios = [np.median([x for x, _ in es]) / c["retrain_prefix"],
              np.median([x for x, _ in pep]) / pep_model]  # fmt: skip
    return [
        "## Check against whole units measured earlier (ML-1M, LightGCN)",
        "",
        f"- ES, one budget's final retraining: measured {span(es)} "
        f"(`{SOURCES[0][0]}`); the model above: ≤ {c['retrain_prefix']:.0f} s.",
        f"- PEP + PEP-as-prefix, one seed, three budgets: measured {span(pep)} "
        f"(`{SOURCES[1][0]}`); the model above: ≤ {pep_model:.0f} s.",
        "",
        "The model's figures are upper bounds of the counts (early stopping usually ends "
        "sooner) at the load of its measurement; the ratio measured / model "
        f"({ratios[0]:.2f} for ES, {ratios[1]:.2f} for PEP here) is the factor to scale the "
        "tables above by for a quiet core.",
    ]


def costs_main(args: argparse.Namespace, command: str) -> None:
    """``costs``: measure the missing columns (``--measure``) and render the table."""
    if args.measure:
        for dataset in args.datasets:
            for backbone in args.backbones:
                done = read_units(args.units)
                if any((u["dataset"], u["backbone"]) == (dataset, backbone) for u in done):
                    continue
                load = load_average()
                m = measure_column(
                    dataset, backbone, args.data_dir, args.batches, args.widths, args.eval_users
                )
                append_unit(args.units, {**m, "load_average": load, "command": command,
                                         "timed_batches": args.batches})  # fmt: skip
                logger.info("measured %s %s", dataset, backbone)
    units = read_units(args.units)
    if not units:
        msg = f"{args.units} holds no measurement; run `table1.py costs --measure` first."
        raise SystemExit(msg)
    written = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    args.output.write_text(
        render_costs(units, command=command, written=written, finished=read_units(args.study_units))
    )
    print(f"wrote {args.output}")


# ------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    """The command line (``report``, ``run``, ``costs``)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("report", help="render table1.md from the cells that exist")
    r.add_argument("--units", type=Path, default=UNITS)
    r.add_argument("--results", type=Path, default=RESULTS)
    r.add_argument("--output", type=Path, default=REPORT)
    r.add_argument(
        "--sweep", type=Path, nargs="*", default=[],
        help="also read the finished cells of these `ciess sweep` output folders",
    )  # fmt: skip
    u = sub.add_parser("run", help="run the missing units of a grid (resumable)")
    u.add_argument("--data-dir", default=os.environ.get("CIESS_DATA_DIR"))
    u.add_argument("--datasets", nargs="+", default=["ml-1m"], choices=DATASETS)
    u.add_argument("--backbones", nargs="+", default=["lightgcn"], choices=BACKBONES)
    u.add_argument(
        "--methods", nargs="+", default=[m for m in METHODS if m != "pep-prefix"],
        choices=[m for m in METHODS if m != "pep-prefix"],
        help="one unit per method ('pep' writes the PEP and PEP-as-prefix rows; default: all)",
    )  # fmt: skip
    u.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    u.add_argument("--budgets", nargs="+", type=float, default=list(BUDGETS))
    u.add_argument(
        "--per-budget", action="store_true",
        help="one unit per budget (finer resumption; a pruner's search reruns per budget)",
    )  # fmt: skip
    u.add_argument("--episodes", type=int, default=30, help="search episodes (RL agents)")
    u.add_argument("--max-retrain-batches", type=int, default=2000)
    u.add_argument("--threads", type=int, default=1)
    u.add_argument("--out", type=Path, default=UNITS, help="units file (jsonl)")
    u.add_argument("--quick", action="store_true", help="tiny synthetic data, plumbing only")
    u.add_argument("--no-report", action="store_true", help="do not rewrite table1.md")
    c = sub.add_parser("costs", help="render table1_costs.md (--measure: time the cell kinds)")
    c.add_argument("--data-dir", default=os.environ.get("CIESS_DATA_DIR"))
    c.add_argument("--measure", action="store_true", help="run the short measurements first")
    c.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    c.add_argument("--backbones", nargs="+", default=list(BACKBONES), choices=BACKBONES)
    c.add_argument("--batches", type=int, default=5, help="timed batches per measurement")
    c.add_argument(
        "--widths", type=int, nargs="+", default=list(COST_WIDTHS),
        help="widths timed (128, 26 and 13 are needed for the cell kinds)",
    )  # fmt: skip
    c.add_argument(
        "--eval-users", type=int, default=None,
        help="extrapolate a validation pass from scoring this many users (default: time it whole)",
    )  # fmt: skip
    c.add_argument("--units", type=Path, default=COST_UNITS)
    c.add_argument("--study-units", type=Path, default=UNITS,
                   help="the study's units, whose wall times the costs file lists")  # fmt: skip
    c.add_argument("--output", type=Path, default=COSTS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    command = command_line("benchmarks/table1.py", sys.argv[1:] if argv is None else argv)
    if args.command == "report":
        path = write_report(
            args.output, units=args.units, results=args.results, command=command,
            sweeps=args.sweep,
        )  # fmt: skip
        print(f"wrote {path}")
    elif args.command == "run":
        run_units(args, command)
        if not args.no_report and not args.quick:
            write_report(command="python benchmarks/table1.py report")
    else:
        costs_main(args, command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
