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

from agents.baselines import fit_to_budget, kept_budget
from agents.experiments.rundir import RunDirError, write_json_atomic
from ciess_env.budget_log import BudgetEntry, BudgetLog
from ciess_env.config import StepConfig
from ciess_env.data import InteractionData
from ciess_env.errors import InvalidArgumentError
from ciess_env.metrics import sparsity as table_sparsity
from ciess_env.recommenders import Backbone, TrainConfig, make_backbone
from ciess_env.retrain import (
    BudgetResult,
    FinalRetrainRule,
    KeptModel,
    final_retrain,
    finish_on_test,
    retrain_and_evaluate,
    train_on_merged,
)
from ciess_env.spaces import PAPER_BUDGETS

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

#: Every final retraining starts from a fresh model with the paper's schedule.


def selective_retrain(
    log: BudgetLog,
    data: InteractionData,
    *,
    backbone: str,
    config: TrainConfig,
    budgets: Sequence[float] = PAPER_BUDGETS,
    top_l: int = 3,
    early_stopping: bool = True,
    seed: int = 0,
    d_max: int = 128,
    d_min: int = 1,
    device: str = "cpu",
    backbone_kwargs: dict | None = None,
    rule: FinalRetrainRule | None = None,
    fill_budget: bool = False,
    label: str = "",
    keep_model: bool = False,
) -> list[BudgetResult | None]:
    """Retrain the top-``l`` logged masks per budget and report the best on test.

    Args:
        log: The search's budget log.
        data: The data set the search ran on (train / validation / test).
        backbone: Backbone name, e.g. ``"lightgcn"``.
        config: Schedule of every retraining; ``config.n_batches`` caps each run with early
            stopping, or is the exact budget without it.
        budgets: Target sparsities c.
        top_l: How many masks per budget to retrain (the authors' code: 3).
        early_stopping: Train each candidate "to convergence" on the training split, stopping
            on validation quality by ``rule``; the winner is retrained on train + validation
            for its own best batch count scaled to the larger split
            (:func:`ciess_env.retrain.merged_batches`). Without it every run trains exactly
            ``config.n_batches``.
        seed: Seed of every retraining (same seed for all candidates: a fair comparison).
        d_max: Largest size.
        d_min: Smallest size.
        device: Torch device.
        backbone_kwargs: Extra backbone hyperparameters.
        rule: Final-retraining rule (default :class:`~ciess_env.retrain.FinalRetrainRule`).
        fill_budget: Grow each candidate with :func:`fill_to_budget` so that it meets the
            budget exactly before it is retrained (the paper retrains the logged masks as they
            are, however far past the budget they lie).
        label: Whose log it is, e.g. ``"rw-td3, seed 0"``: the warning for a budget no mask
            reaches names it (a comparison retrains many logs).
        keep_model: Keep each budget's trained winner in its result's ``model``
            (:class:`~ciess_env.retrain.KeptModel`: the first seed's train + validation model,
            with its seed, batches and own test metrics), e.g. to save or export it. The
            rows are the same either way.

    Returns:
        One :class:`BudgetResult` per budget, or ``None`` where no logged mask met the budget.
    """
    if top_l < 1:
        msg = f"top_l must be >= 1, got {top_l!r}."
        raise InvalidArgumentError(msg)
    step = StepConfig(
        backbone=backbone, train=config, d_min=d_min, d_max=d_max, device=device,
        backbone_kwargs=dict(backbone_kwargs or {}),
    )  # a fresh model (retrain="scratch") with this schedule  # fmt: skip
    results: list[BudgetResult | None] = []
    for c in budgets:
        entries = _candidates(log, c, top_l)
        if not entries:
            logger.warning(
                "%sno logged mask reaches sparsity %.2f (the sparsest reaches %.2f); skipping "
                "this budget.", f"{label}: " if label else "", c, _sparsest(log),
            )  # fmt: skip
            results.append(None)
            continue
        if fill_budget:
            entries = [fill_to_budget(e, c, d_min=d_min, d_max=d_max) for e in entries]
        if early_stopping:
            runs = [
                final_retrain(
                    data, e.user_sizes, e.item_sizes, backbone=backbone, config=config,
                    rule=rule, seed=seed, d_max=d_max, d_min=d_min, device=device,
                    backbone_kwargs=backbone_kwargs, test=False,
                )
                for e in entries
            ]  # fmt: skip
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
        common = dict(
            backbone=backbone, config=config, d_max=d_max, d_min=d_min, device=device,
            backbone_kwargs=backbone_kwargs,
        )  # fmt: skip
        if early_stopping:  # every seed of the rule, each at its own count, averaged
            n_final = runs[i].final_batches
            test = finish_on_test(
                runs[i], data, best.user_sizes, best.item_sizes, keep_model=keep_model, **common
            )
            first = (runs[i].runs or [runs[i]])[0]
            kept = (first.model, first.seed, first.final_batches, first.test)
        else:
            n_final = config.n_batches
            merged = train_on_merged(
                data, best.user_sizes, best.item_sizes, max(1, n_final), seed=seed, **common
            )
            test = merged.test
            kept = (merged.model, seed, max(1, n_final), test)
        results.append(
            BudgetResult(
                budget=float(c),
                sparsity=float(best.sparsity),
                candidates=len(entries),
                validation_quality=_nanmax(scores),
                batches=int(max(1, n_final)),
                recall_5=test.recall(5),
                recall_20=test.recall(20),
                ndcg_5=test.ndcg(5),
                ndcg_20=test.ndcg(20),
                model=KeptModel(kept[0], backbone, *kept[1:]) if keep_model else None,
            )
        )
    return results


def retrain_pruned(
    user_mask: np.ndarray,
    item_mask: np.ndarray,
    data: InteractionData,
    *,
    budget: float,
    backbone: str,
    config: TrainConfig,
    seed: int = 0,
    d_max: int = 128,
    d_min: int = 1,
    device: str = "cpu",
    backbone_kwargs: dict | None = None,
    rule: FinalRetrainRule | None = None,
) -> BudgetResult:
    """The final retraining of one unstructured (elementwise) mask, e.g. PEP's.

    :func:`ciess_env.retrain.final_retrain`, the rule every selected winner above goes
    through, with all sizes ``d_max`` and the masks pruning individual entries. With the same
    ``seed`` as PEP's search the fresh model starts from the search's initial weights: PEP's
    lottery-ticket retraining.

    Args:
        user_mask: (n_users, d_max) booleans, the kept entries.
        item_mask: (n_items, d_max) booleans.
        data: The data set.
        budget: The target sparsity the mask was cut for (reported as ``budget``).
        backbone: Backbone name.
        config: Schedule; ``config.n_batches`` caps the early-stopped run.
        seed: Seed of the initialisation and the sampling.
        d_max: Table width.
        d_min: Smallest size.
        device: Torch device.
        backbone_kwargs: Extra backbone hyperparameters.
        rule: Final-retraining rule (default :class:`~ciess_env.retrain.FinalRetrainRule`).

    Returns:
        The test row (``candidates = 1``; ``sparsity`` counted from the kept entries).
    """
    full = (np.full(len(user_mask), d_max), np.full(len(item_mask), d_max))
    run = final_retrain(
        data, *full, backbone=backbone, config=config, rule=rule, seed=seed, d_max=d_max,
        d_min=d_min, device=device, backbone_kwargs=backbone_kwargs,
        element_masks=(user_mask, item_mask),
    )  # fmt: skip
    kept = int(np.count_nonzero(user_mask) + np.count_nonzero(item_mask))
    test = run.test
    return BudgetResult(
        budget=float(budget),
        sparsity=1.0 - kept / (d_max * (len(user_mask) + len(item_mask))),
        candidates=1,
        validation_quality=run.validation.mean_user_quality,
        batches=int(run.final_batches),
        recall_5=test.recall(5),
        recall_20=test.recall(20),
        ndcg_5=test.ndcg(5),
        ndcg_20=test.ndcg(20),
    )


def fill_to_budget(
    entry: BudgetEntry, c: float, *, d_min: int = 1, d_max: int = 128
) -> BudgetEntry:
    """``entry`` with its sizes grown by one common factor until the table meets ``c`` exactly.

    A search's masks only have to be *at least* as sparse as ``c``, and an agent that does not
    steer to the budget leaves part of it unspent (a mask at sparsity 0.87 kept for c = 0.8
    wastes 7 % of the table), so it is compared with baselines that spend all of it. Growing
    every size in proportion, capped at ``d_max``, keeps the agent's allocation (who is larger
    than whom) and adds only the unspent budget; :func:`agents.baselines.fit_to_budget` does
    the budget-exact rounding, as for the baselines. The search's scores (``mean_quality``,
    ...) stay those of the mask as logged: the grown mask was never evaluated.

    Args:
        entry: A logged mask with sparsity ≥ ``c``.
        c: Target sparsity.
        d_min: Smallest size.
        d_max: Largest size.

    Returns:
        The entry with new ``user_sizes`` / ``item_sizes`` (same dtype) and ``sparsity``.

    Raises:
        InvalidArgumentError: if the mask is denser than ``c`` already (shrinking it would
            change the allocation, not fill it).
    """
    users, items = np.asarray(entry.user_sizes), np.asarray(entry.item_sizes)
    sizes = np.concatenate([users, items]).astype(np.int64)
    cap = kept_budget(c, sizes.size, d_max)
    if int(sizes.sum()) > cap:
        msg = (
            f"fill_to_budget: the mask keeps {int(sizes.sum())} of {d_max * sizes.size} "
            f"parameters (sparsity {entry.sparsity:.4f}), more than budget {c} allows ({cap}); "
            "only a mask at least as sparse as c can be filled."
        )
        raise InvalidArgumentError(msg)
    filled = fit_to_budget(sizes, cap, d_min, d_max)
    u = filled[: users.size].astype(users.dtype)
    v = filled[users.size :].astype(items.dtype)
    return entry._replace(user_sizes=u, item_sizes=v, sparsity=table_sparsity(u, v, d_max))


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
