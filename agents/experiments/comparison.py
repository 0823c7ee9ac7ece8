"""Compare size-search agents on one environment at several budgets, in one call.

Every agent is judged by the same protocol, so the comparison is fair. Each agent, whatever its
kind (:data:`agents.registry.AGENT_KINDS`), proposes candidate masks per budget
(:meth:`SearchSession.propose <agents.experiments.session.SearchSession.propose>`, an
:class:`~agents.protocol.Proposal`):

* heuristics (ES, MR, MDE) one size assignment per budget, directly;
* RL agents search on the per-entity vector env for ``episodes`` episodes, and the env's budget
  log collects every size assignment they tried (``"esapn"`` sees the env through
  :class:`~ciess_env.wrappers.DiscreteSizes`: six candidate sizes);
* one-budget agents (the Lagrangian RW-TD3 and the structured black-box searches) search
  ``episodes`` episodes *per budget*, aimed at that budget, so they use ``len(budgets)`` times
  the env steps of an RL agent, which searches once for all;
* pruners (``"pep"``, PEP, :mod:`agents.pep`) prune individual weights: one mask per budget from
  one search; ``"pep-prefix"`` shares PEP's search and proposes its projection onto prefix
  sizes (each entity's surviving count, fitted to the budget).

Then every candidate goes through the same final retraining: size assignments through
selective retraining (top-l per budget, retrained from scratch, scored on test;
:func:`agents.experiments.selective.selective_retrain`), an elementwise mask by the same
schedule (:func:`agents.experiments.selective.retrain_pruned`, PEP's lottery ticket).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from agents.protocol import AgentBuilder
from agents.registry import agent_spec, check_user_kwargs
from ciess_env.budget import PAPER_BUDGETS
from ciess_env.errors import InvalidArgumentError

if TYPE_CHECKING:  # torch and pandas load with the first comparison: `ciess --help` imports
    import pandas as pd  # this module and must answer without them

    from agents.experiments.selective import BudgetResult
    from agents.experiments.session import SearchSession
    from agents.protocol import BudgetCandidates

__all__ = ["Comparison", "compare", "markdown_table"]

logger = logging.getLogger(__name__)

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
        agents: Registered agent names (:func:`agents.registry.agent_names`; ``ciess compare
            --help`` lists them by kind; :func:`~agents.registry.register_agent` adds one), or
            ``(label, builder)`` pairs for any other agent (:mod:`agents.protocol`:
            ``builder(vec_env, seed)`` returns an object with ``predict``, and ``learn`` if it
            learns), searched like an RL agent.
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
            fields of :class:`agents.pep.PEPConfig`). An agent that shares another's search
            (``AgentSpec.search_of``: ``"pep-prefix"``) reads that agent's (``"pep"``).
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
    from agents.experiments.session import SearchSession
    from agents.protocol import search_proposal

    for entry in agents:  # fail before any agent has spent minutes
        if isinstance(entry, str):
            spec = agent_spec(entry)
            check_user_kwargs(spec.kwargs_key, (agent_kwargs or {}).get(spec.kwargs_key, {}))
    session = SearchSession(
        env_id, seed=seed, env_kwargs=env_kwargs, progress_bar=progress_bar,
        log_budgets=budgets, log_top_l=top_l,
    )  # fmt: skip
    _ = session.env.pretrained  # pretrain (or load) before any agent's clock starts
    rows, curves, logs, pruned = [], {}, {}, {}
    for entry in agents:
        if isinstance(entry, str):
            name = entry
            kwargs = (agent_kwargs or {}).get(agent_spec(name).kwargs_key, {})
            proposal = session.propose(name, budgets, episodes=episodes, **kwargs)
        else:  # a (label, builder) pair
            name, builder = entry
            kwargs = (agent_kwargs or {}).get(name, {})
            proposal = search_proposal(session, builder, budgets, episodes=episodes, **kwargs)
        logger.info("%s: search took %.1f s; retraining", name, proposal.search_s)
        results = [
            _retrain(cands, session, seed=seed, top_l=top_l, fill_budget=fill_budget,
                     retrain_batches=retrain_batches, label=f"{name}, seed {seed}")
            for cands in proposal.candidates
        ]  # fmt: skip
        for value, table in (
            (proposal.log, logs),
            (proposal.curve, curves),
            (proposal.pruned, pruned),
        ):
            if value is not None:
                table[name] = value
        for c, res in zip(budgets, results, strict=True):
            rows.append(
                {"agent": name, "seed": seed, "budget": c, "search_s": proposal.search_s,
                 **result_row(res)}
            )  # fmt: skip
    return rows, curves, logs, pruned


def _retrain(
    cands: BudgetCandidates, session: SearchSession, *, seed: int, top_l: int, fill_budget: bool,
    retrain_batches: int | None, label: str,
) -> BudgetResult | None:  # fmt: skip
    """The final retraining of one budget's candidates: the same for every agent."""
    from agents.experiments.selective import retrain_pruned, selective_retrain
    from ciess_env.config import FinalRetrainRule

    if cands.result is not None:  # a finished row (MagPrune as published): no retraining
        return cands.result
    step = session.final_step(retrain_batches)
    if cands.element_masks is not None:
        user_mask, item_mask = cands.element_masks
        return retrain_pruned(
            user_mask, item_mask, session.data, step, budget=cands.budget, seed=seed
        )
    rule = FinalRetrainRule(
        top_l=top_l if cands.top_l is None else cands.top_l,
        fill_budget=fill_budget and cands.fillable,
    )
    return selective_retrain(
        cands.log, session.data, step, rule=rule, budgets=[cands.budget], seed=seed, label=label
    )[0]


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
