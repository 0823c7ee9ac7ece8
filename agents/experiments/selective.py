"""Selective retraining over the top masks of a search (paper §2.3, Eqs. 15–16).

A search logs every size assignment it tried with its validation quality. For each budget c,
the l best assignments whose sparsity is at least c are retrained from scratch *to convergence*
(:func:`ciess_env.retrain.final_retrain`: validation every 50 batches, patience 8, best state
kept, capped at :meth:`~agents.experiments.session.SearchSession.final_batches`) and the best
one is reported on the test split, in the paper's Table 1 format. Every retraining goes through
:func:`ciess_env.retrain.retrain_and_evaluate`, the one entry point for one mask.

Selection never looks at the test split: each candidate is retrained on the training split and
ranked by its validation quality (mean per-entity q̄ as in Eq. 15, here the mean user/item
quality); only the winner is retrained on train + validation and scored on test. This costs
l + 1 trainings per budget; the authors' ``retrain()`` was never released, so this is our
reading of the paper.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.experiments.rundir import RunDirError, write_json_atomic
from ciess_env.budget import PAPER_BUDGETS, fill_to_budget, sparsity_of_kept
from ciess_env.budget_log import BudgetEntry, BudgetLog
from ciess_env.config import FinalRetrainRule, StepConfig, check_step
from ciess_env.data import InteractionData
from ciess_env.errors import InvalidArgumentError
from ciess_env.recommenders import Backbone, make_backbone
from ciess_env.retrain import (
    BudgetResult,
    KeptModel,
    final_retrain,
    finish_on_test,
    retrain_and_evaluate,
    train_on_merged,
)

__all__ = [
    "MODEL_FILE",
    "MODEL_INFO_FILE",
    "PAPER_BUDGETS",
    "BudgetResult",
    "fill_to_budget",
    "load_kept_model",
    "retrain_pruned",
    "save_kept_model",
    "selective_retrain",
]

MODEL_FILE = "model.safetensors"
MODEL_INFO_FILE = "model.json"

logger = logging.getLogger(__name__)


def selective_retrain(
    log: BudgetLog,
    data: InteractionData,
    step: StepConfig,
    *,
    rule: FinalRetrainRule | None = None,
    budgets: Sequence[float] = PAPER_BUDGETS,
    seed: int = 0,
    label: str = "",
    keep_model: bool = False,
) -> list[BudgetResult | None]:
    """Retrain the top-``l`` logged masks per budget and report the best on test.

    Args:
        log: The search's budget log.
        data: The data set the search ran on (train / validation / test).
        step: Backbone, schedule, size range, device and hyperparameters of every retraining
            (:meth:`~agents.experiments.session.SearchSession.final_step` for a search's env);
            ``step.train.n_batches`` caps each run with early stopping, or is the exact
            budget without it. Its ``retrain`` design is ignored (always a fresh model).
        rule: Final-retraining rule (default :class:`~ciess_env.config.FinalRetrainRule`):
            ``top_l`` masks per budget; with ``early_stopping`` each candidate is trained "to
            convergence" on the training split, stopping on validation quality, and the winner
            is retrained on train + validation for its own best batch count scaled to the
            larger split (:func:`ciess_env.retrain.merged_batches`), else every run trains
            exactly ``step.train.n_batches``; ``fill_budget`` grows each candidate with
            :func:`ciess_env.budget.fill_to_budget` first.
        budgets: Target sparsities c.
        seed: Seed of every retraining (same seed for all candidates: a fair comparison).
        label: Whose log it is, e.g. ``"rw-td3, seed 0"``: the warning for a budget no mask
            reaches names it (a comparison retrains many logs).
        keep_model: Keep each budget's trained winner in its result's ``model``
            (:class:`~ciess_env.retrain.KeptModel`: the first seed's train + validation model,
            with its seed, batches and own test metrics), e.g. to save or export it. The
            rows are the same either way.

    Returns:
        One :class:`BudgetResult` per budget, or ``None`` where no logged mask met the budget.

    Raises:
        InvalidTypeError: if ``step`` is not a :class:`~ciess_env.config.StepConfig`.
    """
    step = check_step(step, "selective_retrain").replace(retrain="scratch")
    rule = rule or FinalRetrainRule()
    results: list[BudgetResult | None] = []
    for c in budgets:
        entries = _candidates(log, c, rule.top_l)
        if not entries:
            logger.warning(
                "%sno logged mask reaches sparsity %.2f (the sparsest reaches %.2f); skipping "
                "this budget.", f"{label}: " if label else "", c, _sparsest(log),
            )  # fmt: skip
            results.append(None)
            continue
        if rule.fill_budget:
            entries = [fill_to_budget(e, c, d_min=step.d_min, d_max=step.d_max) for e in entries]
        results.append(_select_and_score(entries, c, data, step, rule, seed, keep_model))
    return results


def _select_and_score(
    entries: list[BudgetEntry],
    c: float,
    data: InteractionData,
    step: StepConfig,
    rule: FinalRetrainRule,
    seed: int,
    keep_model: bool,
) -> BudgetResult:
    """One budget's row: retrain ``entries`` on train, pick the best, score it on test."""
    if rule.early_stopping:
        runs = [
            final_retrain(data, e.user_sizes, e.item_sizes, step, rule=rule, seed=seed, test=False)
            for e in entries
        ]
        scores = [r.validation.mean_user_quality for r in runs]
    elif len(entries) == 1:  # nothing to choose or to measure
        scores = [entries[0].mean_quality]
    else:
        scores = [
            retrain_and_evaluate(
                step, data=data, user_sizes=e.user_sizes, item_sizes=e.item_sizes,
                init_seed=seed, train_seed=seed,
            ).eval.mean_user_quality
            for e in entries
        ]  # fmt: skip
    i = 0 if np.all(np.isnan(scores)) else int(np.nanargmax(scores))
    best = entries[i]
    if rule.early_stopping:  # every seed of the rule, each at its own count, averaged
        n_final = runs[i].final_batches
        test = finish_on_test(
            runs[i], data, best.user_sizes, best.item_sizes, step, keep_model=keep_model
        )
        first = (runs[i].runs or [runs[i]])[0]
        kept = (first.model, first.seed, first.final_batches, first.test)
    else:
        n_final = step.train.n_batches
        merged = train_on_merged(
            data, best.user_sizes, best.item_sizes, max(1, n_final), step, seed=seed
        )
        test = merged.test
        kept = (merged.model, seed, max(1, n_final), test)
    return BudgetResult(
        budget=float(c),
        sparsity=float(best.sparsity),
        candidates=len(entries),
        validation_quality=_nanmax(scores),
        batches=int(max(1, n_final)),
        recall_5=test.recall(5),
        recall_20=test.recall(20),
        ndcg_5=test.ndcg(5),
        ndcg_20=test.ndcg(20),
        model=KeptModel(kept[0], step.backbone, *kept[1:]) if keep_model else None,
    )


def retrain_pruned(
    user_mask: np.ndarray,
    item_mask: np.ndarray,
    data: InteractionData,
    step: StepConfig,
    *,
    budget: float,
    seed: int = 0,
    rule: FinalRetrainRule | None = None,
) -> BudgetResult:
    """The final retraining of one unstructured (elementwise) mask, e.g. PEP's.

    :func:`ciess_env.retrain.final_retrain`, the rule every selected winner above goes
    through, with all sizes ``step.d_max`` and the masks pruning individual entries. With the
    same ``seed`` as PEP's search the fresh model starts from the search's initial weights:
    PEP's lottery-ticket retraining.

    Args:
        user_mask: (n_users, d_max) booleans, the kept entries.
        item_mask: (n_items, d_max) booleans.
        data: The data set.
        step: Backbone, schedule (``train.n_batches`` caps the early-stopped run), size range,
            device and hyperparameters.
        budget: The target sparsity the mask was cut for (reported as ``budget``).
        seed: Seed of the initialisation and the sampling.
        rule: Final-retraining rule (default :class:`~ciess_env.config.FinalRetrainRule`).

    Returns:
        The test row (``candidates = 1``; ``sparsity`` counted from the kept entries).
    """
    step = check_step(step, "retrain_pruned")
    d_max = step.d_max
    full = (np.full(len(user_mask), d_max), np.full(len(item_mask), d_max))
    run = final_retrain(
        data, *full, step, rule=rule, seed=seed, element_masks=(user_mask, item_mask)
    )
    kept = int(np.count_nonzero(user_mask) + np.count_nonzero(item_mask))
    test = run.test
    return BudgetResult(
        budget=float(budget),
        sparsity=sparsity_of_kept(kept, len(user_mask) + len(item_mask), d_max),
        candidates=1,
        validation_quality=run.validation.mean_user_quality,
        batches=int(run.final_batches),
        recall_5=test.recall(5),
        recall_20=test.recall(20),
        ndcg_5=test.ndcg(5),
        ndcg_20=test.ndcg(20),
    )


def _candidates(log: BudgetLog, c: float, top_l: int) -> list[BudgetEntry]:
    """The top-``l`` logged masks at budget ``c``; unscored entries (NaN q̄) as a fallback.

    Heuristic baselines log their assignment without a validation score (they never train
    during a search); when nothing scored meets the budget, those entries are the candidates,
    in logging order.
    """
    entries = log.top_masks(c, top_l)
    if entries:
        return entries
    unscored = [e for e in log if e.sparsity >= c - 1e-12 and np.isnan(e.mean_quality)]
    return unscored[:top_l]


def _sparsest(log: BudgetLog) -> float:
    """The highest sparsity of any step of the search (or logged mask), NaN for an empty log."""
    values = [st.sparsity for st in log.steps] or list(log.column("sparsity"))
    return _nanmax(values) if values else float("nan")


def _nanmax(values: list[float]) -> float:
    return float("nan") if np.all(np.isnan(values)) else float(np.nanmax(values))


def save_kept_model(
    result: BudgetResult, folder: str | os.PathLike, *, info: Mapping[str, Any] | None = None
) -> Path:
    """Save the winner a ``selective_retrain(..., keep_model=True)`` row kept.

    Writes ``model.safetensors`` (the model's state dict: tables, sizes, extra weights) and
    ``model.json`` (:meth:`~ciess_env.retrain.KeptModel.summary`, the budget's row and
    ``info``). The model was trained on train + validation: rebuild it with
    ``make_backbone(backbone, data.merge_train_validation(), ...)`` and ``load_state_dict``
    to score or export it (:mod:`ciess_env.export`).

    Raises:
        InvalidArgumentError: if ``result`` holds no model, or ``folder`` is not empty.
    """
    from safetensors.torch import save_file

    if result.model is None:
        msg = "the result holds no model: run selective_retrain(..., keep_model=True)."
        raise InvalidArgumentError(msg)
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        msg = f"{folder} already holds files; move them aside first."
        raise InvalidArgumentError(msg)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in result.model.model.state_dict().items()}
    save_file(state, str(folder / MODEL_FILE))
    record = {
        **result.model.summary(),
        "row": result.as_dict(),
        "trained_on": "train + validation (score it on test with those positives hidden)",
        **dict(info or {}),
    }
    write_json_atomic(folder / MODEL_INFO_FILE, record)
    return folder


def load_kept_model(
    folder: str | os.PathLike, merged: InteractionData, **backbone_kwargs: Any
) -> tuple[Backbone, dict[str, Any]]:
    """The model :func:`save_kept_model` wrote to ``folder``, rebuilt on ``merged``, and its info.

    Args:
        folder: A ``RUN/models/budget-<c>`` folder.
        merged: The train + validation data it was trained on (its graph, for LightGCN/NGCF).
        **backbone_kwargs: The backbone's extra hyperparameters (the run's env settings).

    Raises:
        RunDirError: if a file is missing, or damaged or not this data set's (one line).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    info_path, model_path = folder / MODEL_INFO_FILE, folder / MODEL_FILE
    if not (info_path.is_file() and model_path.is_file()):
        msg = f"{folder} holds no saved model ({MODEL_INFO_FILE} and {MODEL_FILE})."
        raise RunDirError(msg)
    try:
        info = json.loads(info_path.read_text())
        model = make_backbone(
            info["backbone"], merged, d_max=info["d_max"], d_min=info["d_min"], **backbone_kwargs
        )
        model.load_state_dict(load_file(str(model_path)))
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as err:
        one_line = " ".join(str(err).split())[:300]
        msg = (
            f"{folder} holds a damaged model, or one of another data set "
            f"({type(err).__name__}: {one_line}); retrain it with `ciess retrain`."
        )
        raise RunDirError(msg) from err
    return model.eval(), info
