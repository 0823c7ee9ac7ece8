"""Compare size-search agents on one environment at several budgets, in one call.

Every agent is judged by the same protocol, so the comparison is fair:

* heuristic baselines (ES, MR, MDE) produce one size assignment per budget directly;
* RL agents search on the per-entity vector env for ``episodes`` episodes, and the env's budget
  log collects every size assignment they tried (``"esapn"`` sees the env through
  :class:`~ciess_env.wrappers.DiscreteSizes`: six candidate sizes);
* one-budget agents (:data:`ONE_BUDGET_AGENTS`: the Lagrangian RW-TD3 and the structured
  black-box searches) search ``episodes`` episodes *per budget*, aimed at that budget, so they
  use ``len(budgets)`` times the env steps of an RL agent, which searches once for all;
* then each agent's assignments go through the same selective retraining (top-l per budget,
  retrained from scratch, scored on test; :func:`agents.experiments.selective.selective_retrain`);
* ``"pep"`` (PEP, :mod:`agents.pep`) prunes individual weights: one mask per budget from one
  search, retrained by the same schedule (:func:`agents.experiments.selective.retrain_pruned`,
  PEP's lottery ticket); ``"pep-prefix"`` retrains its projection onto prefix sizes (each
  entity's surviving count, fitted to the budget) like a heuristic's assignment.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from agents.baselines import BASELINES
from agents.protocol import AgentBuilder
from agents.registry import AGENTS, BUDGET_AGENTS, BUDGET_SEARCHES
from ciess_env.errors import InvalidArgumentError, suggest
from ciess_env.spaces import PAPER_BUDGETS

if TYPE_CHECKING:  # torch and pandas load with the first comparison: `ciess --help` reads
    import pandas as pd  # the agent names below and must answer without them

    from agents.experiments.selective import BudgetResult
    from ciess_env.budget_log import BudgetLog

__all__ = [
    "HEURISTICS",
    "ONE_BUDGET_AGENTS",
    "PRUNERS",
    "RL_AGENTS",
    "Comparison",
    "compare",
    "markdown_table",
]

logger = logging.getLogger(__name__)

#: Agents that pick sizes from the budget and popularity alone (no search): the names of
#: :data:`agents.baselines.BASELINES`, the one table of heuristics.
HEURISTICS: tuple[str, ...] = tuple(BASELINES)
#: Agents that search on the environment with reinforcement learning, once for all budgets.
RL_AGENTS: tuple[str, ...] = tuple(a for a in AGENTS if a not in BUDGET_AGENTS)
#: Agents that run one search per budget, aimed at it.
ONE_BUDGET_AGENTS: tuple[str, ...] = (*BUDGET_AGENTS, *BUDGET_SEARCHES)
#: Methods that prune individual weights (PEP) and PEP's projection onto prefix sizes; both
#: share one PEP search per :func:`compare` call (its settings: ``agent_kwargs["pep"]``).
PRUNERS: tuple[str, ...] = ("pep", "pep-prefix")
#: The test metrics of a :class:`~agents.experiments.selective.BudgetResult` under the names
#: every table and the env's ``info`` use (``recall@20``, not the field name ``recall_20``).
METRIC_COLUMNS: dict[str, str] = {
    "recall_5": "recall@5",
    "recall_20": "recall@20",
    "ndcg_5": "ndcg@5",
    "ndcg_20": "ndcg@20",
}


def result_row(result: BudgetResult | None, fields: Sequence[str] = ("sparsity",)) -> dict:
    """The ``fields`` and test metrics of one budget's result as table columns (NaN if None)."""
    names = [*fields, *METRIC_COLUMNS]
    values = {k: np.nan for k in names} if result is None else result.as_dict()
    return {METRIC_COLUMNS.get(k, k): values[k] for k in names}


@dataclass
class Comparison:
    """The result of :func:`compare`.

    Attributes:
        table: One row per (agent, budget, seed): achieved sparsity, Recall/NDCG@5/20 on test,
            search seconds. Budgets an agent never reached have NaN metrics.
        curves: Per RL agent (``"name"``, or ``"name@seed"`` with several seeds), a DataFrame
            of per-step search statistics (episode, step, reward, mean sizes, sparsity, quality).
        logs: Per agent (keyed like ``curves``), its budget log (for ``"pep-prefix"``, its
            projections).
        pruned: For ``"pep"`` (keyed like ``curves``), its :class:`~agents.pep.PEPMask` per
            budget.
    """

    table: pd.DataFrame
    curves: dict[str, pd.DataFrame] = field(default_factory=dict)
    logs: dict = field(default_factory=dict)
    pruned: dict = field(default_factory=dict)

    @property
    def seeds(self) -> list[int]:
        """The seeds the comparison ran."""
        return sorted(set(self.table["seed"])) if "seed" in self.table else []

    def summary(self, **kwargs) -> pd.DataFrame:
        """Per agent × budget: mean and 95 % CI over seeds, and vs ES (:func:`~stats.summarize`)."""
        from agents.experiments.stats import summarize

        return summarize(self.table, **kwargs)

    def to_markdown(self) -> str:
        """One seed: the paper's Table 1 layout. Several: per budget, mean [95 % CI] and vs ES."""
        if len(self.seeds) > 1:
            from agents.experiments.stats import summary_markdown

            return summary_markdown(self.summary()).rstrip()
        cols = [
            "agent",
            "budget",
            "sparsity",
            "recall@5",
            "recall@20",
            "ndcg@5",
            "ndcg@20",
            "search_s",
        ]
        return markdown_table(self.table[cols])

    def plot(self, path: str | Path | None = None):
        """Test Recall@20 against kept memory per agent (error bars with several seeds)."""
        from agents.experiments.plots import plot_quality_vs_memory

        table = self.summary() if len(self.seeds) > 1 else self.table
        return plot_quality_vs_memory(table, path)


def markdown_table(df: pd.DataFrame) -> str:
    """Render a DataFrame as a GitHub markdown table without optional dependencies."""

    def fmt(v: object) -> str:
        if isinstance(v, float):
            return "—" if np.isnan(v) else f"{v:.4f}"
        return str(v)

    head = "| " + " | ".join(df.columns) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    rows = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *rows])


def seed_list(seed: int = 0, seeds: int | Sequence[int] | None = None) -> list[int]:
    """The seeds of a run: ``[seed]``; ``seeds`` = n → ``seed, …, seed + n − 1``; or a list."""
    if seeds is None:
        return [int(seed)]
    if isinstance(seeds, int):
        if seeds < 1:
            msg = f"`seeds` must be >= 1 (a count) or a list of seeds, got {seeds}."
            raise InvalidArgumentError(msg)
        return list(range(int(seed), int(seed) + seeds))
    out = [int(s) for s in seeds]
    if not out or len(set(out)) != len(out):
        msg = f"`seeds` must be a non-empty list of distinct seeds, got {list(seeds)!r}."
        raise InvalidArgumentError(msg)
    return out


def compare(
    env_id: str = "CIESS-LightGCN-Synthetic-v1",
    agents: Sequence[str | tuple[str, AgentBuilder]] = ("es", "mr", "mde", "td3", "rw-td3"),
    *,
    budgets: Sequence[float] = PAPER_BUDGETS,
    episodes: int = 30,
    top_l: int = 3,
    seed: int = 0,
    seeds: int | Sequence[int] | None = None,
    env_kwargs: dict | None = None,
    agent_kwargs: dict[str, dict] | None = None,
    retrain_batches: int | None = None,
    output_dir: str | Path | None = None,
    progress_bar: bool = True,
    fill_budget: bool = False,
) -> Comparison:
    """Run every agent on ``env_id`` and report test quality at each budget.

    Args:
        env_id: A registered CIESS env id.
        agents: Agent names: heuristics ``"es"``, ``"mr"``, ``"mde"``, RL agents
            ``"rw-td3"``, ``"td3"``, ``"ddpg"``, ``"sac"``, ``"ppo"``, ``"esapn"``, PEP
            (``"pep"``, ``"pep-prefix"``), and one-budget agents ``"rw-td3-lagrange"``,
            ``"structured-tpe"``, ``"structured-cem"``, or
            ``(label, builder)`` pairs for any other agent (:mod:`agents.protocol`:
            ``builder(vec_env, seed)`` returns an object with ``predict``, and ``learn`` if it
            learns).
        budgets: Target sparsities c.
        episodes: Search episodes per RL agent (the paper: 30); per budget for one-budget
            agents.
        top_l: Masks retrained per budget (the authors' code: 3).
        seed: Seed of the env (its per-step training), the agents and every final retraining.
        seeds: Run the whole comparison once per seed: a count n (seeds ``seed`` to
            ``seed + n − 1``) or a list. The data split and the pretrained model stay fixed
            (env kwargs ``split_seed`` / ``pretrain_seed``). The table then has one row per
            seed and :meth:`Comparison.summary` gives mean and 95 % CI per agent × budget.
        env_kwargs: Overrides passed to ``gym.make``.
        agent_kwargs: Per agent name, keyword overrides for its constructor (for ``"pep"``:
            fields of :class:`agents.pep.PEPConfig`).
        retrain_batches: Cap on each final retraining, which stops early on validation;
            default ``SearchSession.final_batches()``.
        output_dir: If given, the table (``results.md``, ``results.csv``), the plot
            (``quality_vs_memory.png``) and the search curves are written there; with several
            seeds also ``summary.md`` and ``summary.csv`` (:mod:`agents.experiments.stats`).
        progress_bar: Show progress bars.
        fill_budget: Grow each searched mask to meet its budget exactly before the final
            retraining (:func:`agents.experiments.selective.fill_to_budget`), so that a search
            that overshoots the budget is not judged on a smaller table than the baselines;
            the table's ``sparsity`` is then the budget. Heuristics, PEP and PEP-as-prefix
            meet it exactly anyway.

    Returns:
        A :class:`Comparison`.
    """
    run_seeds = seed_list(seed, seeds)
    rows, curves, logs, pruned = [], {}, {}, {}
    for s in run_seeds:
        tag = "" if len(run_seeds) == 1 else f"@{s}"
        seed_rows, seed_curves, seed_logs, seed_pruned = _compare_one_seed(
            env_id, agents, budgets=budgets, episodes=episodes, top_l=top_l, seed=s,
            env_kwargs=env_kwargs, agent_kwargs=agent_kwargs, retrain_batches=retrain_batches,
            progress_bar=progress_bar, fill_budget=fill_budget,
        )  # fmt: skip
        rows += seed_rows
        curves |= {f"{k}{tag}": v for k, v in seed_curves.items()}
        logs |= {f"{k}{tag}": v for k, v in seed_logs.items()}
        pruned |= {f"{k}{tag}": v for k, v in seed_pruned.items()}
    import pandas as pd

    comparison = Comparison(table=pd.DataFrame(rows), curves=curves, logs=logs, pruned=pruned)
    if output_dir is not None:
        _write(comparison, Path(output_dir))
    return comparison


def _compare_one_seed(
    env_id: str, agents: Sequence[str | tuple[str, AgentBuilder]], *, budgets: Sequence[float],
    episodes: int, top_l: int, seed: int, env_kwargs: dict | None,
    agent_kwargs: dict[str, dict] | None, retrain_batches: int | None, progress_bar: bool,
    fill_budget: bool = False,
) -> tuple[list[dict], dict[str, pd.DataFrame], dict, dict]:  # fmt: skip
    import pandas as pd

    from agents.experiments.selective import retrain_pruned, selective_retrain
    from agents.experiments.session import SearchSession
    from agents.pep import pep_prefix_log
    from ciess_env.config import FinalRetrainRule

    known = (*HEURISTICS, *RL_AGENTS, *ONE_BUDGET_AGENTS, *PRUNERS)
    for name in agents:  # fail before any agent has spent minutes
        if isinstance(name, str) and name not in known:
            raise suggest(name, known, what="agent")
    session = SearchSession(
        env_id, seed=seed, env_kwargs=env_kwargs, progress_bar=progress_bar,
        log_budgets=budgets, log_top_l=top_l,
    )  # fmt: skip
    _ = session.env.pretrained  # pretrain (or load) before any agent's clock starts
    rows, curves, logs, pruned = [], {}, {}, {}
    pep_masks, pep_s = None, 0.0
    for entry in agents:
        builtin = isinstance(entry, str)  # else a (label, builder) pair
        name, agent = (entry, entry) if builtin else entry
        t0 = time.perf_counter()
        kwargs = (agent_kwargs or {}).get(name, {})
        step = session.final_step(retrain_batches)
        rule = FinalRetrainRule(top_l=top_l, fill_budget=fill_budget)
        one = FinalRetrainRule(top_l=1)  # one assignment per budget: nothing to fill
        select_kw = dict(seed=seed, label=f"{name}, seed {seed}")  # names it in warnings
        if builtin and name in HEURISTICS:
            # One assignment per budget, no search: retrain each at its own budget.
            log = session.heuristic_log(name, budgets, **kwargs)
            search_s = time.perf_counter() - t0
            results = [
                selective_retrain(
                    session.heuristic_log(name, [c], **kwargs),
                    session.data,
                    step,
                    rule=one,
                    budgets=[c],
                    **select_kw,
                )[0]
                for c in budgets
            ]
        elif builtin and name in PRUNERS:
            if pep_masks is None:  # one PEP search serves both rows
                pep_masks = session.pep(budgets, seed=seed, **(agent_kwargs or {}).get("pep", {}))
                pep_s = time.perf_counter() - t0
            search_s = pep_s
            if name == "pep":
                log, pruned["pep"] = None, pep_masks
                results = [
                    retrain_pruned(
                        m.user_mask, m.item_mask, session.data, step, budget=m.budget, seed=seed
                    )
                    for m in pep_masks
                ]
            else:
                log = pep_prefix_log(pep_masks)
                results = [
                    selective_retrain(
                        pep_prefix_log([m]), session.data, step, rule=one, budgets=[m.budget],
                        **select_kw,
                    )[0]
                    for m in pep_masks
                ]  # fmt: skip
        elif builtin and name in ONE_BUDGET_AGENTS:
            results, parts, budget_logs, search_s = [], [], [], 0.0
            for c in budgets:
                t1 = time.perf_counter()
                log, curve = session.budget_search(name, c, episodes=episodes, **kwargs)
                search_s += time.perf_counter() - t1
                parts.append(curve.assign(budget=c))
                budget_logs.append(log)
                results.append(
                    selective_retrain(
                        log, session.data, step, rule=rule, budgets=[c], **select_kw,
                    )[0]
                )  # fmt: skip
            curves[name] = pd.concat(parts, ignore_index=True)
            log = _concat_logs(budget_logs)
        else:
            log, curve = session.search(agent, episodes=episodes, **kwargs)
            curves[name] = curve
            search_s = time.perf_counter() - t0
            logger.info("%s: search took %.1f s; retraining", name, search_s)
            results = selective_retrain(
                log, session.data, step, rule=rule, budgets=budgets, **select_kw,
            )  # fmt: skip
        if log is not None:
            logs[name] = log
        for c, res in zip(budgets, results, strict=True):
            rows.append(
                {"agent": name, "seed": seed, "budget": c, "search_s": search_s, **result_row(res)}
            )
    return rows, curves, logs, pruned


def _concat_logs(logs: Sequence[BudgetLog]) -> BudgetLog:
    """One log holding every entry of ``logs`` in order (one-budget searches, one per budget)."""
    from ciess_env.budget_log import BudgetLog

    first = logs[0]
    merged = BudgetLog(first.n_users, first.n_items, d_max=first.d_max)
    for log in logs:
        for e in log:
            merged.record(**e._asdict())
    return merged


def _close(fig) -> None:
    """Release a figure written to disk (pyplot keeps every figure until closed)."""
    import matplotlib.pyplot as plt

    plt.close(fig)


def _write(comparison: Comparison, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    comparison.table.to_csv(out / "results.csv", index=False)
    (out / "results.md").write_text(comparison.to_markdown() + "\n")
    if len(comparison.seeds) > 1:  # summary.md/.csv and the error-bar plot
        from agents.experiments.stats import write_report

        write_report(comparison.table, out)
    else:
        _close(comparison.plot(out / "quality_vs_memory.png"))
    for name, curve in comparison.curves.items():
        curve.to_csv(out / f"curve_{name}.csv", index=False)
    for name, log in comparison.logs.items():
        log.save(out / f"budget_log_{name}")
