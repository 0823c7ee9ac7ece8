"""Reproduce the CIESS paper (Qu et al., SIGIR 2023) with four commands, one table each.

Every protocol runs through :func:`agents.experiments.compare` (same env, same budgets, same
selective retraining for every agent), so the numbers here and ``ciess compare`` agree. Each
data set's table goes to its own markdown file in ``--output-dir`` (default
``benchmarks/results``) together with the exact command, seed, date, machine and total run time.
The file is rewritten after every finished agent, so an interrupted run leaves its completed
rows on disk.

Protocols (details and the meaning of each table: ``benchmarks/REPRODUCING.md``):

``paper``
    The full paper protocol: LightGCN on ML-1M (λ = 0.4) and Yelp2018 (λ = 0.2), M = 30
    episodes of T = 10 steps, every step retrains a fresh model with the reference code's batch
    counts (``retrain="scratch"``: 2,000 batches on ML-1M, 4,000 on Yelp2018), RandomWalkTD3
    with the paper's defaults, top-3 selective retraining at 80/90/95 %, plus ES and MR. The
    table puts our R@5/R@20/N@5/N@20 next to the paper's Table 1 (LightGCN columns).
    Expected run time. CPU (2 cores; measured ≈ 0.062 s per LightGCN batch of 10,000 and
    ≈ 0.85 s per evaluation on ML-1M): a step costs ≈ 2,000 × 0.062 s + eval ≈ 130 s, so the
    300 steps take ≈ 11 h, plus 1–2.5 h of final retraining (24 trainings to convergence,
    ≤ 6,000 batches each) — about 12–14 h for ML-1M. Yelp2018 (7× the entities, 1.6× the
    adjacency, 4,000 batches per step) is extrapolated to 0.15–0.25 s per batch, i.e. 10–17 min
    per step and 2.5–4 days in all: not practical on a CPU. GPU: one H200 measured ≈ 10 s per
    scratch step on ML-1M (≈ 5 ms per batch, launch-bound; eval 0.02 s) and ≈ 21 s on Yelp2018
    (eval 0.3 s), so ≈ 1–1.5 h for ML-1M and ≈ 2.5–3 h for Yelp2018 *estimated* end to end
    (the agent's own per-step cost and the final retraining were not timed on the GPU).
``reduced``
    What a 2-core CPU can run in ≤ 2 h per data set: ML-100K and ML-1M, ES, MR, MDE and
    RandomWalkTD3, ``retrain="fast"`` (the env's nested-prefix fine-tuning, a documented
    deviation), 15 episodes instead of 30, top-3 at the paper's budgets, final retraining
    capped at 2,000 batches (the paper's per-step budget; the early-stopping count when lower).
    Adds, per budget, whether RW-TD3 ≥ ES. Measured with 2–3 jobs sharing 2 cores: ML-100K
    16 min, ML-1M 1 h 54 min (the final retraining, 30 early-stopped trainings of ≤ 2,000
    batches, dominates; the fast search took 8 min).
``fast-vs-scratch``
    The same RW-TD3 search (same seed, same episodes) with ``retrain="fast"`` and with the
    paper's ``retrain="scratch"`` on ML-100K and ML-1M; final test R@20/N@20 per budget, their
    fast/scratch ratio, and the search-time ratio. Default 5 episodes (RW-TD3 first reaches
    95 % sparsity in episode 4; fewer episodes leave budgets empty). CPU, one thread: ML-100K
    measured 65 min (50 scratch steps of ≈ 60 s), ML-1M ≈ 3.5 h (50 steps of ≈ 210 s); on one
    H200 ≈ 15 min per data set (scratch steps ≈ 10 s, fast ≈ 0.1–0.2 s, measured).
``ablation``
    The paper's Table 2 for Gaussian noise: RandomWalkTD3 with and without the random walk
    (``random_walk=False``), R@20/N@20 per budget, next to the paper's ML-1M values and the
    ratio without/with walk. Default ML-100K, ``retrain="fast"``, 15 episodes; measured
    (CPU, one thread) ML-100K 10 min, ML-1M ≈ 1.5 h.

``--quick`` replaces every data set by a tiny synthetic one (``preset="tiny"``, 1 episode,
4-batch final retraining) and writes ``*.quick.md`` files: it checks the plumbing in seconds,
its numbers mean nothing.

Run::

    python benchmarks/reproduce.py paper --data-dir ../shared/data --device cuda
    python benchmarks/reproduce.py reduced --data-dir ../shared/data --threads 2
    python benchmarks/reproduce.py fast-vs-scratch --data-dir ../shared/data --device cuda
    python benchmarks/reproduce.py ablation --data-dir ../shared/data --threads 2
    python benchmarks/reproduce.py reduced --quick --output-dir /tmp/repro   # seconds
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
import torch
from jsonl_cache import command_line
from report import machine, md_table

from agents.experiments import PAPER_BUDGETS, SearchSession
from agents.experiments.comparison import seed_list
from agents.experiments.stats import summarize, summary_markdown
from agents.experiments.sweep import Cell, resolve_config, run_cell
from agents.registry import agent_spec
from ciess_env.data.specs import DATASET_SPECS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

logger = logging.getLogger("reproduce")

RESULTS_DIR = Path(__file__).parent / "results"
REPO_ROOT = Path(__file__).resolve().parent.parent

# --------------------------------------------------------------------------------------------
# The paper's numbers (§5.1–§5.3). REFERENCE ONLY: these are the values printed
# in the paper for LightGCN, not results of this package.
#   table1[dataset][(method, c)] = (R@5, R@20, N@5, N@20)         Table 1(a) ML-1M, 1(b) Yelp2018
#   table2[dataset][(c, noise, random_walk)] = (R@20, N@20)      Table 2; G/OU/U = Gaussian,
#                                                                 Ornstein–Uhlenbeck, uniform
# Where the paper's tables disagree (ML-1M 80 % CIESS; Yelp 95 % N@20) each table is copied as
# printed.
# --------------------------------------------------------------------------------------------
PAPER_REFERENCE: dict[str, dict[str, dict[tuple[Any, ...], tuple[float, ...]]]] = {
    "table1": {
        "ml-1m": {
            ("PEP", 0.80): (0.0771, 0.2098, 0.4346, 0.3778),
            ("ES", 0.80): (0.0825, 0.2248, 0.4536, 0.3969),
            ("MR", 0.80): (0.0737, 0.2004, 0.4211, 0.3648),
            ("CIESS", 0.80): (0.0920, 0.2436, 0.4854, 0.4257),
            ("PEP", 0.90): (0.0733, 0.1988, 0.4237, 0.3641),
            ("ES", 0.90): (0.0778, 0.2105, 0.4376, 0.3787),
            ("MR", 0.90): (0.0663, 0.1802, 0.3948, 0.3383),
            ("CIESS", 0.90): (0.0846, 0.2248, 0.4631, 0.4023),
            ("PEP", 0.95): (0.0659, 0.1789, 0.3876, 0.3315),
            ("ES", 0.95): (0.0646, 0.1752, 0.3847, 0.3272),
            ("MR", 0.95): (0.0594, 0.1634, 0.3657, 0.3119),
            ("CIESS", 0.95): (0.0744, 0.2009, 0.4264, 0.3664),
        },
        "yelp2018": {
            ("PEP", 0.80): (0.0253, 0.0723, 0.0605, 0.0682),
            ("ES", 0.80): (0.0289, 0.0822, 0.0665, 0.0758),
            ("MR", 0.80): (0.0253, 0.0783, 0.0588, 0.0698),
            ("CIESS", 0.80): (0.0292, 0.0839, 0.0692, 0.0783),
            ("PEP", 0.90): (0.0224, 0.0657, 0.0531, 0.0610),
            ("ES", 0.90): (0.0230, 0.0722, 0.0544, 0.0648),
            ("MR", 0.90): (0.0210, 0.0642, 0.0476, 0.0573),
            ("CIESS", 0.90): (0.0263, 0.0730, 0.0649, 0.0705),
            ("PEP", 0.95): (0.0199, 0.0600, 0.0496, 0.0561),
            ("ES", 0.95): (0.0217, 0.0624, 0.0494, 0.0571),
            ("MR", 0.95): (0.0195, 0.0583, 0.0465, 0.0540),
            ("CIESS", 0.95): (0.0230, 0.0657, 0.0534, 0.0640),
        },
    },
    "table2": {
        "ml-1m": {
            (0.80, "G", True): (0.2437, 0.4250),
            (0.80, "OU", True): (0.2432, 0.4243),
            (0.80, "U", True): (0.2421, 0.4241),
            (0.80, "G", False): (0.2130, 0.3825),
            (0.90, "G", True): (0.2248, 0.4023),
            (0.90, "OU", True): (0.2212, 0.3936),
            (0.90, "U", True): (0.2212, 0.3971),
            (0.90, "G", False): (0.1995, 0.3635),
            (0.95, "G", True): (0.2009, 0.3664),
            (0.95, "OU", True): (0.2027, 0.3570),
            (0.95, "U", True): (0.1972, 0.3554),
            (0.95, "G", False): (0.1890, 0.3493),
        },
        "yelp2018": {
            (0.80, "G", True): (0.0839, 0.0783),
            (0.80, "OU", True): (0.0765, 0.0722),
            (0.80, "U", True): (0.0763, 0.0710),
            (0.80, "G", False): (0.0766, 0.0705),
            (0.90, "G", True): (0.0730, 0.0705),
            (0.90, "OU", True): (0.0734, 0.0685),
            (0.90, "U", True): (0.0734, 0.0692),
            (0.90, "G", False): (0.0701, 0.0644),
            (0.95, "G", True): (0.0657, 0.0604),
            (0.95, "OU", True): (0.0610, 0.0563),
            (0.95, "U", True): (0.0600, 0.0554),
            (0.95, "G", False): (0.0603, 0.0551),
        },
    },
}

#: Real data set name → the data-set part of its registered env id (from the data set specs;
#: λ comes from the registration).
ENV_DATASET_IDS: dict[str, str] = {
    s.name: s.env_name for s in DATASET_SPECS.values() if s.stats is not None
}
#: Our agent names → how the tables label them, and the paper's method name for the same idea.
LABELS: dict[str, str] = {
    "es": "ES",
    "mr": "MR",
    "mde": "MDE",
    "rw-td3": "CIESS (RW-TD3)",
    "pep": "PEP",
    "esapn": "ESAPN-style (DQN, 6 sizes)",
}
PAPER_METHOD: dict[str, str] = {"es": "ES", "mr": "MR", "rw-td3": "CIESS", "pep": "PEP"}
#: ESAPN cannot target a budget; the paper's one LightGCN row is at its own sparsity.
PAPER_ESAPN: dict[str, str] = {
    "ml-1m": "sparsity 72 %: R@5 0.0912, R@20 0.2422, N@5 0.4771, N@20 0.4178",
    "yelp2018": "sparsity 76 %: R@5 0.0257, R@20 0.0752, N@5 0.0596, N@20 0.0699",
}
METRICS: tuple[str, ...] = ("recall@5", "recall@20", "ndcg@5", "ndcg@20")

#: ``--quick``: a seconds-scale synthetic stand-in for every data set. A huge λ and 20 gradient
#: steps per env step let one 10-step episode reach the 80–95 % budgets, so every table cell
#: (and every ratio) is exercised, not just the "not reached" path.
QUICK_DATA: dict[str, int] = {"n_users": 40, "n_items": 30, "mean_interactions": 8}
QUICK_LAMBDA = 20.0
QUICK_AGENT: dict[str, Any] = {
    "batch_size": 64,
    "policy_kwargs": {"net_arch": [16]},
    "gradient_steps": 20,
    "learning_rate": 1e-2,
}
QUICK_RETRAIN_BATCHES = 4


@dataclass(frozen=True)
class ProtocolSpec:
    """A protocol's defaults: what the paper (or the CPU budget) fixes for it."""

    slug: str
    title: str
    datasets: tuple[str, ...]
    episodes: int
    retrain: str
    max_retrain_batches: int | None
    agents: tuple[str, ...]

    @classmethod
    def from_sweep(cls, name: str, slug: str, title: str) -> ProtocolSpec:
        """The protocol as ``benchmarks/sweeps/<name>.toml`` defines it (its one definition).

        Data sets from its env ids, episodes, search retraining (the first of a ``[grid]``
        axis), the final retraining's cap and the agents; this script adds only how each
        protocol's tables look beside the paper's.
        """
        raw = tomllib.loads((SWEEPS / f"{name}.toml").read_text())
        grid = raw.get("grid", {})
        env_ids = grid.get("env_id") or [raw["env_id"]]
        by_env = {env: ds for ds, env in ENV_DATASET_IDS.items()}
        retrain = raw.get("env_kwargs", {}).get("retrain") or grid["env_kwargs.retrain"][0]
        return cls(slug, title, tuple(by_env[e.split("-")[2]] for e in env_ids), raw["episodes"],
                   retrain, raw.get("retrain_batches"), tuple(raw["agents"]))  # fmt: skip


SWEEPS = Path(__file__).parent / "sweeps"
PROTOCOLS: dict[str, ProtocolSpec] = {
    "paper": ProtocolSpec.from_sweep("paper", "paper", "full paper protocol (Table 1)"),
    "reduced": ProtocolSpec.from_sweep("reduced", "reduced", "reduced CPU protocol"),
    "fast-vs-scratch": ProtocolSpec.from_sweep(
        "fast-vs-scratch", "fast_vs_scratch", "fast vs scratch retraining in the search"),
    "ablation": ProtocolSpec.from_sweep(
        "ablation", "ablation", "random-walk ablation (Table 2, Gaussian noise)"),
}  # fmt: skip


@dataclass(frozen=True)
class Run:
    """One data set's settings, shared by every agent the protocol runs on it.

    Attributes:
        dataset: The data set the results file is named after (the real name, even in quick mode).
        env_id: The registered env id actually used.
        env_kwargs: ``gym.make`` overrides (retraining mode, device, data and cache folders).
        rl_kwargs: Constructor overrides for RL agents (device; tiny networks in quick mode).
        episodes: Search episodes per RL agent.
        top_l: Masks retrained per budget.
        seeds: Seeds of env, agents and retraining; each agent runs once per seed.
        max_retrain_batches: Cap on each final retraining; None: to convergence.
        progress: Show the search progress bars.
        runs_dir: Where the sweep cells (one :func:`compare` each) keep tables, curves and
            budget logs; None: a temporary folder.
    """

    dataset: str
    env_id: str
    env_kwargs: dict[str, Any]
    rl_kwargs: dict[str, Any]
    episodes: int
    top_l: int
    seeds: tuple[int, ...]
    max_retrain_batches: int | None
    progress: bool
    runs_dir: Path | None

    @property
    def lam(self) -> float:
        """λ: an override, else the registered env id's (paper: 0.4 ML-1M, 0.2 Yelp2018)."""
        return float(self.env_kwargs.get("lam", gym.spec(self.env_id).kwargs["lam"]))

    def with_retrain(self, retrain: str) -> Run:
        """The same run with another retraining mode of the search."""
        return replace(self, env_kwargs={**self.env_kwargs, "retrain": retrain})


@dataclass
class Report:
    """One results file: the header facts it carries, rewritten after every finished agent."""

    path: Path
    title: str
    command: str
    machine: str
    quick: bool
    settings: list[str] = field(default_factory=list)
    started: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    t0: float = field(default_factory=time.perf_counter)

    def write(self, body: Sequence[str], done: bool) -> None:
        """(Re)write the file: header, settings, then the protocol's tables."""
        status = "complete" if done else "**partial**: run in progress or interrupted"
        lines = [f"# CIESS reproduction — {self.title}", ""]
        if self.quick:
            lines += [
                "> **Quick smoke run** (`--quick`): a tiny synthetic data set replaces the real "
                "one, 1 episode, λ = 20, 4-batch retraining. The numbers check the plumbing and "
                "mean nothing.",
                "",
            ]
        lines += [
            f"- Command: `{self.command}`",
            f"- Date: {self.started:%Y-%m-%d %H:%M} UTC (start)",
            f"- Machine: {self.machine}",
            f"- Total run time: {_duration(time.perf_counter() - self.t0)} ({status})",
            *(f"- {s}" for s in self.settings),
            "",
            *body,
        ]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("\n".join(lines).rstrip() + "\n")


# ----------------------------------------------------------------------------- running agents
def make_run(args: argparse.Namespace, dataset: str, spec: ProtocolSpec) -> Run:
    """Build one data set's :class:`Run` from the command line and the protocol's defaults."""
    env_kwargs: dict[str, Any] = {
        "retrain": args.retrain or spec.retrain,
        "device": args.device,
        "progress_bar": args.step_progress,
    }
    if args.cache_dir is not None:
        env_kwargs["cache_dir"] = args.cache_dir
    rl_kwargs: dict[str, Any] = {"device": args.device}
    if args.quick:
        env_id = "CIESS-LightGCN-Synthetic-v0"
        env_kwargs |= {"preset": "tiny", "dataset_kwargs": QUICK_DATA, "lam": QUICK_LAMBDA}
        rl_kwargs |= QUICK_AGENT
    else:
        if dataset not in ENV_DATASET_IDS:
            msg = f"`--datasets` entries must be one of {sorted(ENV_DATASET_IDS)}, got {dataset!r}."
            raise ValueError(msg)
        env_id = f"CIESS-LightGCN-{ENV_DATASET_IDS[dataset]}-v0"
        if args.data_dir:
            env_kwargs["data_dir"] = args.data_dir
    runs_dir = None
    if args.runs_dir is not None:
        runs_dir = Path(args.runs_dir) / spec.slug / dataset
    elif not args.quick:
        runs_dir = REPO_ROOT / "runs" / "reproduce" / spec.slug / dataset
    return Run(
        dataset=dataset, env_id=env_id, env_kwargs=env_kwargs, rl_kwargs=rl_kwargs,
        episodes=1 if args.quick else (args.episodes or spec.episodes), top_l=args.top_l,
        seeds=tuple(seed_list(args.seed, args.seeds)),
        max_retrain_batches=QUICK_RETRAIN_BATCHES if args.quick else (
            args.max_retrain_batches if args.max_retrain_batches is not None
            else spec.max_retrain_batches),
        progress=not args.no_progress, runs_dir=runs_dir,
    )  # fmt: skip


def pretrained_facts(run: Run) -> tuple[int, str]:
    """Batches of a final retraining, and a line describing data and pretraining.

    Building the env here (rather than inside :func:`compare`) lets the protocol cap the final
    retraining and report the data set. The data and the pretrained models are memoised per
    process, so :func:`compare` reuses them for free; pretraining the nested-prefix model here
    too keeps that one-off cost out of the fast search's time.
    """
    session = SearchSession(run.env_id, env_kwargs=run.env_kwargs, progress_bar=False)
    try:
        inner: Any = session.env
        full, cfg = inner.pretrained, inner.train_config
        line = (
            f"Data: {inner.data!r}. Full-size model (d = {inner.d_max}): best validation quality "
            f"{full.eval.mean_user_quality:.4f} after {full.best_batches:,} batches "
            f"({_cost(full)}); scratch step = {cfg.n_batches:,} batches of {cfg.batch_size:,}, "
            f"lr {cfg.lr} × {cfg.lr_decay} every {cfg.decay_batches}."
        )
        if run.env_kwargs["retrain"] != "scratch":
            nested = inner.nested_pretrained
            line += (
                f" Nested-prefix model for the fast mode: {nested.best_batches:,} batches "
                f"({_cost(nested)}; not counted in search s)."
            )
        cap = session.final_batches()
        line += f" Final retraining: early stopping per mask, cap {cap:,} batches."
        return cap, line
    finally:
        session.close()


def _cost(result: Any) -> str:
    """How long a pretraining took, or that it came from the cache."""
    return "loaded from cache" if result.from_cache else f"{result.seconds:,.0f} s"


def retrain_batches(run: Run, converged: int) -> int:
    """Batches of each final retraining: to convergence, capped by ``max_retrain_batches``."""
    if run.max_retrain_batches is None:
        return max(1, converged)
    return max(1, min(converged, run.max_retrain_batches))


def run_agent(run: Run, agent: str, *, n_batches: int, label: str | None = None,
              agent_kwargs: dict[str, Any] | None = None) -> pd.DataFrame:  # fmt: skip
    """Run one agent once per seed as sweep cells (:func:`agents.experiments.sweep.run_cell`).

    Each seed is one cell of ``ciess sweep`` (one :func:`compare` call), kept in its own folder
    under ``runs_dir/cells``: a finished cell is read back instead of rerun, so an interrupted
    protocol resumes where it stopped, and the results file is rewritten after every agent.

    Returns:
        compare's table (one row per seed × budget) plus ``label`` and ``wall_s`` (that seed's
        search + selective retraining seconds).
    """
    searches = agent_spec(agent).searches
    kwargs = {**run.rl_kwargs, **(agent_kwargs or {})} if searches else {}
    label = label or LABELS.get(agent, agent)
    root = run.runs_dir if run.runs_dir is not None else Path(tempfile.mkdtemp(prefix="repro_"))
    logger.info("%s on %s: %s, seeds %s", label, run.dataset, run.env_id, list(run.seeds))
    tables = []
    for seed in run.seeds:
        config = {
            "env_id": run.env_id, "agent": agent, "seed": seed, "episodes": run.episodes,
            "top_l": run.top_l, "budgets": list(PAPER_BUDGETS), "retrain_batches": n_batches,
            "env_kwargs": run.env_kwargs, "agent_kwargs": {agent: kwargs},
        }  # fmt: skip
        cell = Cell(resolve_config(config), label)
        folder = root / "cells" / cell.key
        out = run_cell(cell.config, folder, sweep_id="reproduce", threads=torch.get_num_threads(),
                       progress_bar=run.progress)  # fmt: skip
        if out["status"] == "failed":
            msg = f"{label} seed {seed} failed: {out['error']} (see {folder / 'error.txt'})"
            raise RuntimeError(msg)
        table = pd.read_csv(folder / "results.csv").drop(columns=["env_id"])
        table.insert(0, "label", label)
        table["wall_s"] = json.loads((folder / "done.json").read_text())["seconds"]
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def settings_lines(
    run: Run, n_batches: int, data_line: str, *, agents: str, design: str | None = None
) -> list[str]:
    """The settings bullet list shared by every protocol's file."""
    design = design or f"`retrain={run.env_kwargs['retrain']!r}`"
    return [
        f"Seed: {run.seeds[0]}"
        if len(run.seeds) == 1
        else f"Seeds: {', '.join(map(str, run.seeds))} (tables: mean over seeds; intervals below)",
        f"Env: `{run.env_id}` (LightGCN, λ = {run.lam}), search retraining {design}, "
        f"device `{run.env_kwargs['device']}`",
        f"Search: {agents}; {_episodes(run.episodes)} × T = 10 steps; top-{run.top_l} selective "
        f"retraining per budget, early stopping capped at {n_batches:,} batches "
        f"(train → validation for selection, train + validation → test for the reported row)",
        data_line,
    ]


# ----------------------------------------------------------------------------- formatting
def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    h, m = divmod(round(seconds / 60), 60)
    return f"{h} h {m:02d} min ({seconds:,.0f} s)" if h else f"{m} min ({seconds:,.0f} s)"


def _episodes(n: int) -> str:
    return f"{n} episode{'s' if n != 1 else ''}"


def _pct(c: float) -> str:
    return f"{round(100 * c)} %"


def _row(table: pd.DataFrame, agent: str, c: float) -> pd.Series:
    """``agent``'s row at budget ``c``, averaged over seeds (all NaN if absent)."""
    hit = table[(table["agent"] == agent) & np.isclose(table["budget"], c)]
    if hit.empty:
        return pd.Series(np.nan, index=table.columns)
    row = hit.iloc[0].copy()
    numeric = hit.select_dtypes("number").columns.drop("seed", errors="ignore")
    row[numeric] = hit[numeric].mean()  # NaN seeds (budget not reached) are skipped
    return row


def seeds_section(table: pd.DataFrame) -> list[str]:
    """With several seeds: per budget, each row's mean [95 % CI] and its difference to ES."""
    if table["seed"].nunique() < 2:
        return []
    rows = table.assign(agent=table["label"])
    baseline = LABELS["es"] if LABELS["es"] in set(rows["agent"]) else None
    summary = summarize(rows, baseline=baseline)
    return ["", "## Seeds and intervals", "",
            summary_markdown(summary, baseline=baseline).rstrip()]  # fmt: skip


def _ratio(a: float, b: float) -> float:
    """``a / b``, NaN when either is missing or ``b`` is 0 (a budget not reached)."""
    return float(a) / float(b) if b and not (math.isnan(a) or math.isnan(b)) else math.nan


def paper_row(dataset: str, agent: str, c: float) -> tuple[float, ...]:
    """The paper's Table 1 (R@5, R@20, N@5, N@20) for ``agent`` at ``c``; NaNs if it has none."""
    ref = PAPER_REFERENCE["table1"].get(dataset, {})
    return ref.get((PAPER_METHOD.get(agent, ""), round(c, 2)), (math.nan,) * 4)


def table1(table: pd.DataFrame, dataset: str) -> list[str]:
    """Our rows in the paper's Table 1 layout, with the paper's numbers alongside."""
    headers = ["method", "c", "sparsity", "R@5", "R@20", "N@5", "N@20", "paper R@5",
               "paper R@20", "paper N@5", "paper N@20", "search s", "wall s"]  # fmt: skip
    rows = []
    for c in PAPER_BUDGETS:
        for agent in dict.fromkeys(table["agent"]):
            r = _row(table, agent, c)
            rows.append([r["label"], _pct(c), r["sparsity"], *(r[m] for m in METRICS),
                         *paper_row(dataset, agent, c), f"{r['search_s']:,.0f}",
                         f"{r['wall_s']:,.0f}"])  # fmt: skip
    note = (
        f"Paper columns: the paper's LightGCN rows for {dataset} (Table 1; OptEmbed not run "
        f"here), reference only. ESAPN cannot target a budget; its paper row is at "
        f"{PAPER_ESAPN[dataset]}."
        if dataset in PAPER_REFERENCE["table1"]
        else f"Paper columns: the paper has no {dataset} results (—)."
    )
    return [*md_table(headers, rows), "", note]


def _verdict(ours: Sequence[float], base: Sequence[float]) -> str:
    if any(math.isnan(v) for v in (*ours, *base)):
        return "not reached"
    wins = [o >= b for o, b in zip(ours, base, strict=True)]
    return "yes" if all(wins) else ("no" if not any(wins) else "mixed")


def rw_vs_es(table: pd.DataFrame, dataset: str) -> list[str]:
    """Per budget: is RW-TD3 ≥ ES on R@20 and N@20 (ours; and the paper's CIESS vs ES)?"""
    headers = ["c", "ES R@20", "RW-TD3 R@20", "ES N@20", "RW-TD3 N@20", "RW-TD3 ≥ ES",
               "paper: CIESS ≥ ES"]  # fmt: skip
    rows = []
    for c in PAPER_BUDGETS:
        es, rw = _row(table, "es", c), _row(table, "rw-td3", c)
        p_es, p_rw = paper_row(dataset, "es", c), paper_row(dataset, "rw-td3", c)
        rows.append([_pct(c), es["recall@20"], rw["recall@20"], es["ndcg@20"], rw["ndcg@20"],
                     _verdict((rw["recall@20"], rw["ndcg@20"]), (es["recall@20"], es["ndcg@20"])),
                     _verdict(p_rw[1::2], p_es[1::2]).replace("not reached", "—")])  # fmt: skip
    return [
        "## Does the search beat equal sizes?",
        "",
        *md_table(headers, rows),
        "",
        '"yes": RW-TD3\'s test R@20 and N@20 are both ≥ ES\'s at that budget; "mixed": one '
        'of them; "not reached": no logged mask met the budget.',
    ]


# ----------------------------------------------------------------------------- protocols
Writer = Callable[[Sequence[str], bool], None]


def protocol_table1(run: Run, n_batches: int, write: Writer, *, agents: Sequence[str]) -> None:
    """``paper`` and ``reduced``: every agent at every budget, Table 1 layout, RW-TD3 vs ES."""
    tables: list[pd.DataFrame] = []
    for i, agent in enumerate(agents):
        tables.append(run_agent(run, agent, n_batches=n_batches))
        table = pd.concat(tables, ignore_index=True)
        body = ["## Test quality per budget", "", *table1(table, run.dataset)]
        if {"es", "rw-td3"} <= set(table["agent"]):
            body += ["", *rw_vs_es(table, run.dataset)]
        body += seeds_section(table)
        write(body, i == len(agents) - 1)


def protocol_fast_vs_scratch(run: Run, n_batches: int, write: Writer) -> None:
    """The same RW-TD3 search with fast and with scratch retraining; quality and time ratios."""
    tables: dict[str, pd.DataFrame] = {}
    for mode in ("fast", "scratch"):
        tables[mode] = run_agent(run.with_retrain(mode), "rw-td3", n_batches=n_batches,
                                 label=f"RW-TD3 {mode}")  # fmt: skip
        if mode == "fast":
            write(["Fast run done; scratch run in progress."], False)
    headers = ["c", "fast sparsity", "scratch sparsity", "fast R@20", "scratch R@20",
               "R@20 fast/scratch", "fast N@20", "scratch N@20", "N@20 fast/scratch"]  # fmt: skip
    rows = []
    for c in PAPER_BUDGETS:
        f, s = _row(tables["fast"], "rw-td3", c), _row(tables["scratch"], "rw-td3", c)
        rows.append([_pct(c), f["sparsity"], s["sparsity"], f["recall@20"], s["recall@20"],
                     _ratio(f["recall@20"], s["recall@20"]), f["ndcg@20"], s["ndcg@20"],
                     _ratio(f["ndcg@20"], s["ndcg@20"])])  # fmt: skip
    t = {m: (float(tab["search_s"].iloc[0]), float(tab["wall_s"].iloc[0]))
         for m, tab in tables.items()}  # fmt: skip
    body = [
        "## Final test quality per budget (both retrained from scratch to the same budget)",
        "",
        *md_table(headers, rows),
        "",
        "## Time",
        "",
        *md_table(
            ["search retraining", "search s", "search + final retraining s"],
            [[m, f"{s:,.1f}", f"{w:,.1f}"] for m, (s, w) in t.items()],
        ),
        "",
        f"Search-time ratio fast/scratch: {_ratio(t['fast'][0], t['scratch'][0]):.3f}; "
        f"with final retraining: {_ratio(t['fast'][1], t['scratch'][1]):.3f}.",
        "",
        "A ratio near 1 means the cheap fast mode finds masks as good as the paper's scratch "
        "retraining; the final masks are retrained identically in both runs.",
        *seeds_section(pd.concat(tables.values(), ignore_index=True)),
    ]
    write(body, True)


def protocol_ablation(run: Run, n_batches: int, write: Writer) -> None:
    """RW-TD3 with and without the random walk (Gaussian noise), next to the paper's Table 2."""
    ref_ds = run.dataset if run.dataset in PAPER_REFERENCE["table2"] else "ml-1m"
    ref = PAPER_REFERENCE["table2"][ref_ds]
    paper_name = {"ml-1m": "ML-1M", "yelp2018": "Yelp2018"}[ref_ds]
    tables: dict[bool, pd.DataFrame] = {}
    for walk in (True, False):
        tables[walk] = run_agent(run, "rw-td3", n_batches=n_batches,
                                 label=f"RW-TD3 walk={'on' if walk else 'off'}",
                                 agent_kwargs={"random_walk": walk})  # fmt: skip
        if walk:
            write(["Run with the walk done; run without it in progress."], False)
    headers = ["c", "noise", "RW", "sparsity", "R@20", "N@20", f"paper R@20 ({paper_name})",
               f"paper N@20 ({paper_name})"]  # fmt: skip
    rows, ratios = [], []
    for c in PAPER_BUDGETS:
        got = {w: _row(tables[w], "rw-td3", c) for w in (True, False)}
        for w in (True, False):
            r = got[w]
            rows.append([_pct(c), "G", "yes" if w else "**no**", r["sparsity"], r["recall@20"],
                         r["ndcg@20"], *ref[(round(c, 2), "G", w)]])  # fmt: skip
        on, off = got[True], got[False]
        p_on, p_off = ref[(round(c, 2), "G", True)], ref[(round(c, 2), "G", False)]
        ratios.append([_pct(c), _ratio(off["recall@20"], on["recall@20"]), p_off[0] / p_on[0],
                       _ratio(off["ndcg@20"], on["ndcg@20"]), p_off[1] / p_on[1]])  # fmt: skip
    body = [
        "## Test R@20 / N@20 with and without the random walk",
        "",
        *md_table(headers, rows),
        "",
        f"Paper columns: the paper's Table 2 ({paper_name}, LightGCN, scratch retraining, "
        "30 episodes), reference only. The paper's OU and uniform noise rows are not run "
        "(RandomWalkTD3 implements Gaussian noise only).",
        "",
        "## What the walk is worth: without ÷ with",
        "",
        *md_table(
            [
                "c",
                "R@20 ours",
                f"R@20 paper ({paper_name})",
                "N@20 ours",
                f"N@20 paper ({paper_name})",
            ],
            ratios,
        ),
        "",
        "Below 1: removing the walk hurts (the paper: 0.87–0.95 on ML-1M). Absolute values are "
        "comparable only on the same data set and protocol; the ratios are the point.",
        *seeds_section(pd.concat(tables.values(), ignore_index=True)),
    ]
    write(body, True)


# ----------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    """The command line: one subcommand per protocol, common options on each."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--datasets",
        nargs="+",
        default=None,
        help="data sets (default: the protocol's; ml-1m, ml-100k, yelp2018)",
    )
    common.add_argument(
        "--data-dir",
        default=os.environ.get("CIESS_DATA_DIR"),
        help="data folder (default: $CIESS_DATA_DIR)",
    )
    common.add_argument("--device", default="cpu", help="torch device of env, agent, retraining")
    common.add_argument("--seed", type=int, default=0, help="first seed")
    common.add_argument("--seeds", type=int, default=1, metavar="N",
                        help="seeds SEED .. SEED+N-1 per agent: mean and 95 %% CI")  # fmt: skip
    common.add_argument(
        "--episodes", type=int, default=None, help="search episodes M (default: the protocol's)"
    )
    common.add_argument("--top-l", type=int, default=3, help="masks retrained per budget")
    common.add_argument(
        "--max-retrain-batches",
        type=int,
        default=None,
        help="cap on each final retraining (default: the protocol's)",
    )
    common.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    common.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    common.add_argument(
        "--runs-dir",
        default=None,
        help="budget logs, curves, CSVs (default: runs/reproduce; none if --quick)",
    )
    common.add_argument("--cache-dir", default=None, help="pretrained-model cache")
    common.add_argument(
        "--quick",
        action="store_true",
        help="tiny synthetic data, 1 episode: a seconds-long smoke run",
    )
    common.add_argument("--no-progress", action="store_true", help="no search progress bars")
    common.add_argument(
        "--note",
        default=None,
        help="a sentence written into the results file, e.g. what else shared the machine",
    )
    common.add_argument("--step-progress", action="store_true",
                        help="a progress bar over the batches of every env step")  # fmt: skip
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="protocol", required=True)
    for name, spec in PROTOCOLS.items():
        p = sub.add_parser(name, parents=[common], help=spec.title)
        if name in ("reduced", "ablation"):
            p.add_argument("--retrain", default=None,
                           help=f"search retraining mode (default {spec.retrain!r})")  # fmt: skip
        else:
            p.set_defaults(retrain=None)
    return parser


#: Protocol name → (agents it runs, as the settings line names them; its runner).
RUNNERS: dict[str, tuple[str, Callable[[Run, int, Writer], None]]] = {
    name: (", ".join(LABELS.get(a, a) for a in PROTOCOLS[name].agents),
           lambda r, n, w, agents=PROTOCOLS[name].agents: protocol_table1(r, n, w, agents=agents))
    for name in ("paper", "reduced")
} | {
    "fast-vs-scratch": ("RW-TD3, once per search retraining mode", protocol_fast_vs_scratch),
    "ablation": ("RW-TD3 with and without the random walk", protocol_ablation),
}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Run one protocol on each of its data sets; write one results file per data set."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    spec = PROTOCOLS[args.protocol]
    agents, runner = RUNNERS[args.protocol]
    command = command_line("benchmarks/reproduce.py", argv)
    for dataset in args.datasets or spec.datasets:
        run = make_run(args, dataset, spec)
        suffix = ".quick.md" if args.quick else ".md"
        report = Report(
            path=args.output_dir / f"reproduction_{spec.slug}_{dataset}{suffix}",
            title=f"{spec.title}: {dataset}", command=command,
            machine=machine(args.device), quick=args.quick,
        )  # fmt: skip
        best, data_line = pretrained_facts(run)  # inside the timed run: pretraining counts
        n_batches = retrain_batches(run, best)
        design = "`fast` and `scratch`" if args.protocol == "fast-vs-scratch" else None
        report.settings = settings_lines(run, n_batches, data_line, agents=agents, design=design)
        if args.note:
            report.settings.append(f"Note: {args.note}")
        if args.protocol == "paper" and run.episodes != 30:
            report.settings.append(f"**Deviation**: {_episodes(run.episodes)} (the paper: 30).")
        report.write(["Run in progress."], False)
        runner(run, n_batches, report.write)
        print(report.path.read_text())
        print(f"wrote {report.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
