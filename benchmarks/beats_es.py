"""Does a searched size assignment beat ES? One table per data set, from every `-v1` study.

Issue 15 item 5. Two resumable studies run on the `-v1` step with the same final retraining
(top-3 selective retraining, the default two-seed early-stopped rule) and the same seeds:

* ``budget_agents.py`` — ES, MR, MDE, TD3, the agents built for the budget (structured TPE,
  rw-td3-lagrange) and variants such as ``rw-td3:env.reward=team``;
* ``search_diagnosis.py`` — RW-TD3 per exploration-noise variant, on the masks it explored and
  on the policy's own noise-free masks.

This script reads their JSONL units (nothing is rerun), joins them into one long table (agent,
seed, budget, sparsity, test R@20 / N@20) and summarises it with
:mod:`agents.experiments.stats`: per budget each agent's mean and 95 % bootstrap interval over
seeds, the difference to ES paired by seed, and a verdict per agent × budget: beats ES (the
interval of the difference is above 0), below ES, or within noise. It also checks that the two
studies' ES rows agree seed for seed (they run the same code with the same seeds).

Run (seconds; rewrite after any study has new units)::

    python benchmarks/beats_es.py --dataset ml-100k
    python benchmarks/beats_es.py --dataset ml-1m
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import re
from pathlib import Path

import pandas as pd
from jsonl_cache import read_units
from report import md_table

RESULTS = Path(__file__).parent / "results"
#: Data set → (budget_agents output stem, search_diagnosis output stem), both `-v1`.
STUDIES = {
    "ml-100k": ("budget_agents_ml100k_v1", "search_diagnosis_ml-100k_v1"),
    "ml-1m": ("budget_agents_ml1m_v1", "search_diagnosis_ml-1m_v1"),
}
#: Seeds a comparison needs before it is quoted (the project's rule); fewer is partial.
MIN_SEEDS = 3
_METRICS = {"recall_20": "recall@20", "ndcg_20": "ndcg@20", "sparsity": "sparsity"}
#: Data set → further studies in budget_agents' JSONL format, joined when present (issue 33's
#: SAC/PPO on the structured action, ``structured_rl.py``); an ES row already in is kept once.
#: ML-100K: ``_warm``, sac-structured's current defaults (ES/MDE warm start), which supersede
#: ``structured_rl_ml100k_v1`` (its uniform warm-up; still committed, not joined).
EXTRA_STUDIES = {
    "ml-100k": ("structured_rl_ml100k_v1_warm",),
    "ml-1m": ("structured_rl_ml1m_v1",),
}
#: Data set → search_diagnosis studies whose searches stepped with another design than `-v1`'s
#: (issue 29's paper protocol, 30 episodes of RW-TD3 on the ``sprint:150`` step), joined when
#: present; their agents carry ``step=<design>``. The final retraining is the same for all.
EXTRA_DIAGNOSES = {
    "ml-1m": {"search_diagnosis_ml-1m_sprint150": "sprint:150"},
}


def budget_agents_rows(units: list[dict]) -> pd.DataFrame:
    """One row per (agent, seed, budget) of a budget_agents JSONL (first copy of a cell)."""
    rows = [r for u in units for r in u["rows"]]
    if not rows:
        return pd.DataFrame(columns=["agent", "seed", "budget", *_METRICS.values()])
    table = pd.DataFrame(rows)[["agent", "seed", "budget", *_METRICS.values()]]
    return table.drop_duplicates(["agent", "seed", "budget"], keep="first")


def diagnosis_rows(units: list[dict], step: str | None = None) -> pd.DataFrame:
    """The retraining units of a search_diagnosis JSONL as rows; ES under the name ``es``.

    The explored masks of the ``noise=X`` search are ``rw-td3:noise=X`` (the spelling of
    budget_agents' variants; ``rw-td3:noise=X,step=S`` when the search stepped with design S);
    the policy's noise-free masks are ``... (noise-free policy)``. A search that logged no mask
    within the budget gives NaN metrics (not reached).
    """
    rows = []
    for u in units:
        if u["kind"] == "es":
            agent = "es"
        elif u["kind"] == "retrain":
            agent = f"rw-td3:noise={u['noise']}" + (f",step={step}" if step else "")
            if u["pool"] != "explored":
                agent += " (noise-free policy)"
        else:
            continue
        result = u["result"] or {}
        row = {"agent": agent, "seed": u["seed"], "budget": u["budget"]}
        row |= {new: result.get(old, math.nan) for old, new in _METRICS.items()}
        rows.append(row)
    if not rows:
        return pd.DataFrame(columns=["agent", "seed", "budget", *_METRICS.values()])
    return pd.DataFrame(rows).drop_duplicates(["agent", "seed", "budget"], keep="first")


def join(studies: pd.DataFrame, diagnosis: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """One table; ES once per (seed, budget). Returns it and a line on the ES check."""
    es_a = studies[studies["agent"] == "es"].set_index(["seed", "budget"])
    es_b = diagnosis[diagnosis["agent"] == "es"].set_index(["seed", "budget"])
    common = es_a.index.intersection(es_b.index)
    if len(common):
        delta = (es_a.loc[common, "recall@20"] - es_b.loc[common, "recall@20"]).abs()
        agree = int((delta < 1e-6).sum())
        check = (
            f"ES check: the two studies' ES agree on {agree} of {len(common)} common "
            f"(seed, budget) cells (largest |Δ test R@20| {delta.max():.1e})."
        )
    else:
        check = "ES check: no (seed, budget) cell of ES is in both studies yet."
    extra_es = diagnosis[(diagnosis["agent"] == "es")]
    extra_es = extra_es[~extra_es.set_index(["seed", "budget"]).index.isin(es_a.index)]
    others = diagnosis[diagnosis["agent"] != "es"]
    table = pd.concat([studies, extra_es, others], ignore_index=True)
    # ES first, then the agents in the order they appear.
    order = ["es", *dict.fromkeys(a for a in table["agent"] if a != "es")]
    table["agent"] = pd.Categorical(table["agent"], categories=order, ordered=True)
    table = table.sort_values(["agent", "budget", "seed"], kind="stable")
    table["agent"] = table["agent"].astype(str)
    return table.reset_index(drop=True), check


def headroom(dataset: str, results: Path, data_dir: str | None) -> dict[float, dict]:
    """The fidelity study's ground-truth headroom over ES per budget ({} if not available).

    :func:`fidelity_report.two_seed_headroom` over the committed probes: the best of the
    probed structured masks by the default rule's two-seed mean test R@20.
    """
    probes, masks = (
        results / f"fidelity_probes_{dataset}.jsonl",
        results / (f"fidelity_masks_{dataset}.json"),
    )
    if not (probes.is_file() and masks.is_file()):
        return {}
    from fidelity_masks import load_masks
    from fidelity_report import two_seed_headroom

    from ciess_env.data import load_dataset
    from ciess_env.errors import DataNotFoundError

    try:
        data = load_dataset(dataset, data_dir=data_dir)
    except DataNotFoundError:
        return {}
    return two_seed_headroom(read_units(probes), data, load_masks(masks))


def verdicts(
    summary: pd.DataFrame, table: pd.DataFrame, room: dict[float, dict] | None = None
) -> list[str]:
    """Per agent, per budget: beats ES / below ES / within noise.

    The difference is the summary's (paired by seed), in % of ES's mean over the same seeds.
    """
    budgets = sorted(summary["budget"].unique())
    r20 = table.pivot_table(index=["agent", "budget"], columns="seed", values="recall@20")
    lines: list[list[str]] = []
    if room:
        cells = [
            f"{room[c]['best_r20'] / room[c]['es'] - 1:+.1%} ({room[c]['best']})"
            if c in room else "—"
            for c in budgets
        ]  # fmt: skip
        lines.append(["*headroom: best probed mask vs ES*", *cells])
    for agent, grp in summary[summary["agent"] != "es"].groupby("agent", sort=False):
        cells = []
        by = grp.set_index("budget")
        for c in budgets:
            if c not in by.index:
                cells.append("—")
                continue
            row = by.loc[c]
            # A search that never visited the budget is a failure of the search, not a missing
            # value: say how many of its seeds reached c beside the verdict on those that did.
            missed = int(row["seeds"] - row["reached"])
            reach = f"; {missed} of {int(row['seeds'])} missed c" if missed else ""
            if math.isnan(row["recall@20_diff"]):
                cells.append(f"— (never reached c on {int(row['seeds'])} seeds)" if missed
                             else "—")  # fmt: skip
                continue
            n = int(row["recall@20_pairs"])
            if n and ("es", c) in r20.index:
                both = r20.loc[[(agent, c), ("es", c)]].dropna(axis=1)
                base = float(both.loc[("es", c)].mean())
            else:  # unpaired: ES's mean over all its seeds
                base = float(summary[(summary["agent"] == "es") & (summary["budget"] == c)]
                             ["recall@20"].iloc[0])  # fmt: skip
            pct = row["recall@20_diff"] / base
            low, high = row["recall@20_diff_low"], row["recall@20_diff_high"]
            how = f"{n} seeds" if n > 1 else "1 seed" if n == 1 else "unpaired"
            if math.isnan(low):
                word = "no interval"
            elif low > 0:
                word = "**beats ES**"
            elif high < 0:
                word = "below ES"
            else:
                word = "within noise"
            cells.append(f"{pct:+.1%} ({word}; {how}{reach})")
        lines.append([agent, *cells])
    return md_table(["agent", *(f"{100 * c:g} %" for c in budgets)], lines)


def _command(md: Path) -> str:
    """The command a study recorded in its markdown report."""
    if not md.exists():
        return "(no report yet)"
    found = re.search(r"Command: `([^`]+)`", md.read_text())
    return found.group(1) if found else "(not recorded)"


def _ported(results: Path, stem: str) -> bool:
    """Whether the study runs through ``study.py`` (its cells are its store, not a JSONL)."""
    import study

    return stem in study.STUDIES and (results / stem / "cells").is_dir()


def _study_units(results: Path, stem: str) -> list[dict]:
    """A study's units: from its cells once it runs through ``study.py``, else its JSONL."""
    import study

    if _ported(results, stem):
        return study.units(study.STUDIES[stem], results / stem)
    return read_units(results / f"{stem}.jsonl")


def _source(results: Path, stem: str) -> str:
    return f"`{stem}/cells`" if _ported(results, stem) else f"`{stem}.jsonl`"


def _study_line(results: Path, stem: str) -> str:
    """One bullet per study: its command, or a plain statement that it has not run."""
    if not (_ported(results, stem) or (results / f"{stem}.jsonl").exists()):
        return f"- `{stem}`: not run (no `{stem}.jsonl`; cost in benchmarks/REPRODUCING.md)"
    return f"- `{_command(results / f'{stem}.md')}`"


def write(dataset: str, results: Path = RESULTS, data_dir: str | None = None) -> Path:
    """Write ``beats_es_<dataset>.md`` from the studies' JSONL files; return its path."""
    from agents.experiments.stats import summarize, summary_markdown

    stem_a, stem_b = STUDIES[dataset]
    a, b = results / f"{stem_a}.jsonl", results / f"{stem_b}.jsonl"
    extras = [s for s in EXTRA_STUDIES.get(dataset, ()) if (results / f"{s}.jsonl").exists()]
    studies = pd.concat(
        [budget_agents_rows(_study_units(results, s)) for s in (stem_a, *extras)],
        ignore_index=True,
    ).drop_duplicates(["agent", "seed", "budget"], keep="first")
    steps = {s: d for s, d in EXTRA_DIAGNOSES.get(dataset, {}).items()
             if (results / f"{s}.jsonl").exists()}  # fmt: skip
    diagnosis = pd.concat(
        [diagnosis_rows(read_units(b)),
         *(diagnosis_rows(read_units(results / f"{s}.jsonl"), d) for s, d in steps.items())],
        ignore_index=True,
    ).drop_duplicates(["agent", "seed", "budget"], keep="first")  # fmt: skip
    table, check = join(studies, diagnosis)
    if table.empty or "es" not in set(table["agent"]):
        from ciess_env.errors import InvalidArgumentError

        msg = (
            f"no ES units in {a} or {b}: run the studies first (benchmarks/REPRODUCING.md §5 "
            "and §7), or pass --results-dir to the folder that holds them."
        )
        raise InvalidArgumentError(msg)
    summary = summarize(table, baseline="es")
    room = headroom(dataset, results, data_dir)
    written = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    # Cells an agent has: a one-budget variant (SAC at 90 % on ML-1M) is not missing elsewhere.
    n_cells = len(summary)
    full = int((summary["seeds"] >= MIN_SEEDS).sum())
    label = "" if full == n_cells else (
        f" (partial: {full} of {n_cells} agent × budget cells have {MIN_SEEDS} or more seeds)"
    )  # fmt: skip
    lines = [
        f"# Does a searched size assignment beat ES? {dataset}, LightGCN, `-v1` step{label}",
        "",
        f"Joined from {', '.join(_source(results, s) for s in (stem_a, *extras))} ({len(studies)} "
        f"cells) and {', '.join(f'`{n}.jsonl`' for n in (stem_b, *steps))} "
        f"({len(diagnosis)} cells) "
        f"by `python benchmarks/beats_es.py --dataset {dataset}`, {written}. Nothing is rerun "
        "here; the studies' commands:",
        "",
        *(_study_line(results, s) for s in (stem_a, stem_b, *extras, *steps)),
        "",
        "Both use the `-v1` search step, top-3 selective retraining and the default final "
        "retraining (early-stopped on validation, two seeds), the same seeds for every agent "
        "and ES (a seed drives the agent, the per-step training and the final retraining; the "
        "data split is fixed). Test metrics. Search lengths differ by agent (see each study's "
        "report). "
        + "".join(
            f"Rows with `step={d}` searched with the `{d}` step instead (`{s}.md`); their "
            "final retraining is the same. "
            for s, d in steps.items()
        )
        + check,
        "",
        "## Verdict: test R@20 against ES, paired by seed",
        "",
        "Mean difference in % of ES's mean over the same seeds; *beats ES*: the 95 % "
        "bootstrap interval of the paired difference is above 0; *within noise*: it contains "
        "0. With 3 seeds such an interval is narrow and optimistic."
        + (
            " The headroom row is the fidelity study's ground truth "
            f"(`fidelity_ground_truth_{dataset}.md`): the best of the probed structured masks "
            "by the mean test R@20 of two final retrainings, against ES's — what a search could "
            "show over ES among those masks (a lower bound on the true headroom)."
            if room
            else ""
        ),
        "",
        *verdicts(summary, table, room),
        "",
        "## Per budget: mean [95 % CI] over seeds",
        "",
        summary_markdown(summary, baseline="es"),
    ]
    out = results / f"beats_es_{dataset}.md"
    out.write_text("\n".join(lines))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(STUDIES), required=True)
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    parser.add_argument(
        "--data-dir", default=None, help="for the headroom row (default: $CIESS_DATA_DIR)"
    )
    args = parser.parse_args(argv)
    print(write(args.dataset, args.results_dir, args.data_dir).read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
