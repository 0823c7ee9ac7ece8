"""Retraining one size assignment (a mask): the one entry point, the step designs, final retraining.

The paper retrains a fresh recommender for a fixed budget at every step (Algorithm 1, lines
7–11): the dominant cost of the whole search. :func:`retrain_and_evaluate` is that procedure
for one mask, used by the env's steps, by selective retraining (early-stopped, on any split)
and by ``benchmarks/fast_mode_fidelity.py``, so all of them run exactly the same code. The
cheaper "fast" designs sit behind one parser.

Designs (the ``retrain=`` strings of the env):

* ``"scratch"`` — the paper: a fresh model, ``n_batches`` batches, the paper's schedule.
* ``"short:K"`` — a fresh model trained for ``n_batches / K`` batches with the learning-rate
  schedule compressed by the same factor (decay every ``decay_batches / K`` batches), so the run
  ends at the same learning rate as the full one.
* ``"epochs:E"`` — the paper's text: a fresh model trained for ``E`` passes over the training
  split (``round(E · |train| / batch_size)`` batches) with the scratch learning-rate schedule
  compressed onto them: decay every ``max(1, round(decay_batches · n / n_batches))`` batches,
  so the run sees the same number of decays as the full step and ends near its learning rate.
* ``"nested:B"`` — start from the nested-prefix pretrained model (every prefix of every row was
  trained), apply the mask, fine-tune ``B`` batches (0 = zero-shot) at the
  constant learning rate ``lr / 10``.
* ``"sprint:B"`` — a fresh model trained for ``B`` large batches at a high learning rate:
  :data:`SPRINT_BATCH_FACTOR` × the batch size, :data:`SPRINT_LR_FACTOR` × the learning rate,
  decayed × :data:`SPRINT_DECAY` every ``max(1, round(B / 7.5))`` batches. LightGCN's batch cost
  on real data is mostly the graph propagation, which does not grow with the batch, so large
  batches buy more samples per second; the high, steeply decayed rate gets a small-width mask
  near its plateau in a few hundred thousand triples. Measured against the final-retrained
  ground truth in ``benchmarks/results/fidelity_ground_truth_<data>.md``.
* ``"fast"`` — the env's fast mode, an alias of :data:`FAST_DESIGN`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, fields
from typing import Any, Literal

import numpy as np
import torch

from ciess_env.config import FinalRetrainRule, StepConfig, TrainConfig, check_step
from ciess_env.data.interactions import InteractionData, SplitName
from ciess_env.errors import InvalidArgumentError, InvalidTypeError
from ciess_env.metrics import EvalResult, evaluate
from ciess_env.recommenders import (
    Backbone,
    BPRTrainer,
    make_backbone,
    train_bpr,
    train_until_converged,
)
from ciess_env.recommenders.memory import release_free_memory

__all__ = [
    "FAST_DESIGN",
    "SPRINT_BATCH_FACTOR",
    "SPRINT_DECAY",
    "SPRINT_LR_FACTOR",
    "BudgetResult",
    "FinalRetrainResult",
    "FinalRetrainRule",
    "KeptModel",
    "MergedRun",
    "RetrainDesign",
    "StepOutcome",
    "final_retrain",
    "finish_on_test",
    "merged_batches",
    "retrain_and_evaluate",
    "score_on_test",
    "train_on_merged",
]

#: The design ``retrain="fast"`` stands for. Chosen on measured rank fidelity against scratch
#: (benchmarks/results/env_fast_mode_synthetic.md: Spearman 0.93 vs 0.39 for ``short:8``); the
#: few fine-tuning batches are there to let the model adapt to the mask, which zero-shot nested
#: models under-rate for popularity-skewed masks on ML-1M.
FAST_DESIGN = "nested:20"

#: ``sprint:B``'s schedule relative to the paper's (issue 29's exploration on ML-1M).
SPRINT_BATCH_FACTOR = 5
SPRINT_LR_FACTOR = 10.0
SPRINT_DECAY = 0.8


@dataclass(frozen=True)
class RetrainDesign:
    """A parsed ``retrain=`` string.

    Attributes:
        kind: ``"scratch"``, ``"short"``, ``"nested"``, ``"epochs"``, ``"converge"`` or
            ``"sprint"``.
        factor: ``short``: the batch-count divisor K (1 for scratch); ``sprint``: its batches.
        finetune_batches: ``nested``: fine-tuning batches after applying the mask.
        epochs: ``epochs``: passes over the training split.
        eval_every: ``converge``: batches between validation evaluations.
        patience: ``converge``: evaluations without improvement before the step stops.

    ``converge:E/P`` trains a fresh model like ``scratch`` (its batches are the cap) but
    evaluates validation every E batches, stops after P evaluations without improvement and
    reports the best state: the first half of the final retraining, run as a step
    (``benchmarks/results/fidelity_ground_truth_ml-100k.md`` scores it as ``converge:50/4``).
    """

    kind: Literal["scratch", "short", "nested", "epochs", "converge", "sprint"]
    factor: int = 1
    finetune_batches: int = 0
    epochs: float = 0.0
    eval_every: int = 0
    patience: int = 0

    @classmethod
    def parse(cls, spec: str) -> RetrainDesign:
        """Parse a design: scratch, fast, short:K, epochs:E, nested:B, converge:E/P or sprint:B.

        Raises:
            ValueError: for anything else, listing the accepted forms.
        """
        if not isinstance(spec, str):
            msg = f"`retrain` must be a string, got {spec!r}."
            raise InvalidTypeError(msg)
        text = FAST_DESIGN if spec == "fast" else spec
        kind, _, arg = text.partition(":")
        try:
            if kind == "scratch" and not arg:
                return cls("scratch")
            if kind == "short" and int(arg) >= 1:
                return cls("short", factor=int(arg))
            if kind == "sprint" and int(arg) >= 1:
                return cls("sprint", factor=int(arg))
            if kind == "nested" and int(arg or 0) >= 0:
                return cls("nested", finetune_batches=int(arg or 0))
            if kind == "epochs" and float(arg) > 0:
                return cls("epochs", epochs=float(arg))
            if kind == "converge":
                every, _, patience = arg.partition("/")
                if int(every) >= 1 and int(patience) >= 1:
                    return cls("converge", eval_every=int(every), patience=int(patience))
        except ValueError:
            pass
        msg = (
            "`retrain` must be 'scratch', 'fast', 'short:K' (K >= 1), 'epochs:E' (E > 0), "
            f"'nested:B' (B >= 0), 'converge:E/P' (E, P >= 1) or 'sprint:B' (B >= 1), "
            f"got {spec!r}."
        )
        raise InvalidArgumentError(msg)

    def __str__(self) -> str:
        if self.kind in ("short", "sprint"):
            return f"{self.kind}:{self.factor}"
        if self.kind == "nested":
            return f"nested:{self.finetune_batches}"
        if self.kind == "epochs":
            return f"epochs:{self.epochs:g}"
        if self.kind == "converge":
            return f"converge:{self.eval_every}/{self.patience}"
        return "scratch"

    @property
    def needs_nested_model(self) -> bool:
        """Whether the design starts from the nested-prefix pretrained model."""
        return self.kind == "nested"

    def config(self, base: TrainConfig, n_train: int | None = None) -> TrainConfig:
        """The training schedule this design runs, derived from the paper's ``base``.

        Args:
            base: The scratch step's schedule.
            n_train: Training pairs (needed by ``epochs`` designs).
        """
        if self.kind == "epochs":
            if n_train is None:
                msg = f"design {self} needs the training split's size (n_train), got None."
                raise InvalidArgumentError(msg)
            n = max(1, round(self.epochs * n_train / base.batch_size))
            decay = max(1, round(base.decay_batches * n / max(1, base.n_batches)))
            return base.replace(n_batches=n, decay_batches=decay)
        if self.kind == "short":
            return base.replace(
                n_batches=max(1, math.ceil(base.n_batches / self.factor)),
                decay_batches=max(1, round(base.decay_batches / self.factor)),
            )
        if self.kind == "sprint":
            return base.replace(
                n_batches=self.factor,
                batch_size=base.batch_size * SPRINT_BATCH_FACTOR,
                lr=base.lr * SPRINT_LR_FACTOR,
                lr_decay=SPRINT_DECAY,
                decay_batches=max(1, round(self.factor / 7.5)),
            )
        if self.kind == "nested":
            # A short, gentle fine-tune: the weights are already trained, so the paper's
            # initial lr (tuned for a random start) would undo them.
            return base.replace(
                n_batches=self.finetune_batches, lr=base.lr / 10, lr_decay=1.0, lr_floor=0.0
            )
        return base


@dataclass
class StepOutcome:
    """What retraining for one size assignment produced.

    Attributes:
        eval: Metrics of the retrained model on the evaluated split.
        model: The retrained model (eval mode; the best state with early stopping).
        train_seconds: Wall-clock seconds of model building and training (not the final
            evaluation; with early stopping, its validation checks are included).
        n_batches: Training batches run (to the best state, with early stopping).
        history: With early stopping, ``(batches, validation mean user quality)`` at every
            evaluation; empty otherwise.
    """

    eval: EvalResult
    model: Backbone
    train_seconds: float
    n_batches: int
    history: list[tuple[int, float]] = field(default_factory=list)


def retrain_and_evaluate(
    step: StepConfig,
    *,
    data: InteractionData,
    user_sizes: np.ndarray,
    item_sizes: np.ndarray,
    init_seed: int,
    train_seed: int,
    nested_state: dict[str, torch.Tensor] | None = None,
    progress_bar: bool = False,
    split: SplitName = "validation",
    early_stopping: bool = False,
    rule: FinalRetrainRule | None = None,
    element_masks: tuple[np.ndarray, np.ndarray] | None = None,
) -> StepOutcome:
    """Build, train and evaluate one model for a size assignment under ``step``.

    Args:
        step: Backbone, schedule, retrain design, size range, device and hyperparameters.
        data: The data set (train split for training, validation for evaluation).
        user_sizes: (n_users,) int sizes.
        item_sizes: (n_items,) int sizes.
        init_seed: Seed of the fresh model's initialisation.
        train_seed: Seed of BPR sampling and training randomness.
        nested_state: The nested-prefix pretrained weights (required by ``nested`` designs).
        progress_bar: Show a tqdm bar while training.
        split: Split to evaluate on (selective retraining scores its winner on "test").
        early_stopping: Train "to convergence": stop on validation quality by ``rule`` with
            the design's ``n_batches`` as the cap, and keep the best state; ``split`` must then
            be "validation".
        rule: Early-stopping rule (default :class:`FinalRetrainRule`: every 50 batches,
            patience 8).
        element_masks: (n_users, d_max) and (n_items, d_max) booleans pruning individual
            entries on top of the sizes (``Backbone.set_element_masks``; PEP's structures,
            with all sizes ``d_max``).

    Returns:
        The evaluation, the model and the training time.

    Raises:
        ValueError: for early stopping on a split other than validation, or a nested design
            without ``nested_state``.
    """
    if early_stopping and split != "validation":
        msg = f"early stopping needs split='validation', got {split!r}."
        raise InvalidArgumentError(msg)
    # A search runs thousands of these; hand the last one's freed buffers back to the OS so
    # the resident size stays flat (ciess_env/recommenders/memory.py).
    release_free_memory()
    design = RetrainDesign.parse(step.retrain)
    start = time.perf_counter()
    model = make_backbone(
        step.backbone, data, d_max=step.d_max, d_min=step.d_min, seed=init_seed,
        device=step.device, **step.backbone_kwargs,
    )  # fmt: skip
    if design.needs_nested_model:
        if nested_state is None:
            msg = f"`nested_state` must be given for retrain design {design}, got None."
            raise InvalidArgumentError(msg)
        model.load_state_dict(nested_state)
    model.set_sizes(user_sizes, item_sizes)
    if element_masks is not None:
        model.set_element_masks(*element_masks)
    config = design.config(step.train, n_train=len(data.train))
    if design.kind == "converge" and not early_stopping:
        early_stopping = split == "validation"
        rule = FinalRetrainRule(eval_every=design.eval_every, patience=design.patience, seeds=1)
    if early_stopping:
        rule = rule or FinalRetrainRule()
        best = train_until_converged(
            model, data, config, seed=train_seed, eval_every=rule.eval_every,
            patience=rule.patience, max_batches=config.n_batches, progress_bar=progress_bar,
        )  # fmt: skip
        seconds = time.perf_counter() - start
        return StepOutcome(
            eval=best.eval, model=model, train_seconds=seconds, n_batches=best.best_batches,
            history=best.history,
        )  # fmt: skip
    if config.n_batches > 0:
        train_bpr(model, data, config, seed=train_seed, progress_bar=progress_bar)
    model.eval()
    seconds = time.perf_counter() - start
    result = evaluate(model, data, split)
    return StepOutcome(eval=result, model=model, train_seconds=seconds, n_batches=config.n_batches)


# ------------------------------------------------------------------ final retraining
# A search ends by retraining its best masks "to convergence" (paper §2.3): a fresh model is
# trained on the training split with early stopping on validation, then retrained on
# train + validation and scored on test. ``final_retrain`` is that procedure's one
# implementation; selective retraining, ``compare``, the CLI and
# ``benchmarks/fidelity_ground_truth.py`` all call it, so "the quality of a mask" means the
# same thing everywhere. The rule and its measured seed-to-seed spread:
# ``benchmarks/results/final_retraining_ml-100k.md``. The rule itself,
# :class:`~ciess_env.config.FinalRetrainRule`, lives with the other settings.


def merged_batches(best_batches: int, data: InteractionData, rule: FinalRetrainRule) -> int:
    """Batches of the train + validation retraining for a run that was best at ``best_batches``.

    With ``scale_to_merged``: ``best_batches · |train ∪ validation| / |train|`` rounded to a
    multiple of ``rule.eval_every`` (when ``best_batches`` is at least one interval), so the
    merged run makes as many passes over its larger split as the best train-split run did.
    """
    if not rule.scale_to_merged or len(data.train) == 0:
        return max(1, int(best_batches))
    ratio = (len(data.train) + len(data.validation)) / len(data.train)
    grid = rule.eval_every
    if best_batches < grid:  # a cap below one evaluation interval: no grid to round to
        return max(1, round(best_batches * ratio))
    return grid * round(best_batches * ratio / grid)


@dataclass
class FinalRetrainResult:
    """One mask after final retraining.

    Attributes:
        validation: Validation metrics of the best state of the train-split run (selection
            score: ``validation.mean_user_quality``).
        best_batches: Batches of the train-split run at its best validation quality.
        history: ``(batches, validation mean user quality)`` at every evaluation.
        final_batches: Batches of the train + validation retraining.
        test: Test metrics after the train + validation retraining (``None`` when not run).
        test_trace: ``(batches, test metrics)`` along the train + validation run, when traced
            (diagnostics: what other counts would have scored; does not change ``test``).
        seed: The (first) seed.
        runs: With several seeds, every seed's own result; ``validation`` and ``test`` are
            their means, ``best_batches`` and ``final_batches`` their rounded mean counts, and
            ``history`` / ``test_trace`` the first seed's. Empty for one seed.
        model: With ``keep_model=True``: the train + validation model (eval mode) of this
            seed; with several seeds, the first seed's (its own metrics are ``runs[0].test``).
    """

    validation: EvalResult
    best_batches: int
    history: list[tuple[int, float]]
    final_batches: int
    test: EvalResult | None
    test_trace: list[tuple[int, EvalResult]] = field(default_factory=list)
    seed: int = 0
    runs: list[FinalRetrainResult] = field(default_factory=list)
    model: Backbone | None = field(default=None, repr=False, compare=False)

    @classmethod
    def mean_of(cls, runs: list[FinalRetrainResult]) -> FinalRetrainResult:
        """One result from several seeds' (means of the metrics and of the counts)."""
        if len(runs) == 1:
            return runs[0]
        tests = [r.test for r in runs]
        return cls(
            validation=EvalResult.average([r.validation for r in runs]),
            best_batches=round(float(np.mean([r.best_batches for r in runs]))),
            history=runs[0].history,
            final_batches=round(float(np.mean([r.final_batches for r in runs]))),
            test=None if any(t is None for t in tests) else EvalResult.average(tests),
            test_trace=runs[0].test_trace,
            seed=runs[0].seed,
            runs=list(runs),
        )

    def summary(self) -> dict[str, float]:
        """Plain numbers for a results table or a JSONL cache."""
        out = {
            "val_quality": self.validation.mean_user_quality,
            "val_recall_20": self.validation.recall(20),
            "val_ndcg_20": self.validation.ndcg(20),
            "best_batches": int(self.best_batches),
            "final_batches": int(self.final_batches),
        }
        if self.test is not None:
            out.update(
                test_recall_20=self.test.recall(20),
                test_ndcg_20=self.test.ndcg(20),
                test_recall_5=self.test.recall(5),
                test_ndcg_5=self.test.ndcg(5),
            )
        return out


def _fresh(step: StepConfig, where: str) -> StepConfig:
    """``step`` as a fresh model's retraining (``retrain="scratch"``), checked."""
    step = check_step(step, where)
    return step if step.retrain == "scratch" else step.replace(retrain="scratch")


def final_retrain(
    data: InteractionData,
    user_sizes: np.ndarray,
    item_sizes: np.ndarray,
    step: StepConfig,
    *,
    rule: FinalRetrainRule | None = None,
    seed: int = 0,
    test: bool = True,
    trace_test_every: int | None = None,
    trace_until: int | None = None,
    element_masks: tuple[np.ndarray, np.ndarray] | None = None,
    keep_model: bool = False,
) -> FinalRetrainResult:
    """Train one size assignment to convergence on validation, then score it on test.

    Args:
        data: The data set (train / validation / test).
        user_sizes: (n_users,) sizes.
        item_sizes: (n_items,) sizes.
        step: Backbone, schedule, size range, device and hyperparameters;
            ``step.train.n_batches`` caps the train-split run. Its ``retrain`` design is
            ignored: final retraining always trains a fresh model.
        rule: Stopping and retraining rule (default :class:`FinalRetrainRule`).
        seed: Seeds both models' initialisation and sampling.
        test: Run the train + validation retraining and score test (False: selection only).
        trace_test_every: Also evaluate test every this many batches of the merged run.
        trace_until: Continue the traced merged run to this many batches (at least
            ``final_batches``); ``test`` is still the state at ``final_batches``.
        element_masks: Elementwise masks applied to both models (see
            :func:`retrain_and_evaluate`); PEP's final retraining.
        keep_model: Keep the train + validation models in ``result.model`` / ``runs[k].model``
            (to save or export the winner); the metrics are the same either way.

    Returns:
        The validation score, both batch counts and the test metrics.

    Raises:
        InvalidTypeError: if ``step`` is not a :class:`~ciess_env.config.StepConfig`.
    """
    rule = rule or FinalRetrainRule()
    step = _fresh(step, "final_retrain")
    parts = []
    for s in rule.seed_list(seed):  # step 1 per seed
        best = retrain_and_evaluate(
            step, data=data, user_sizes=user_sizes, item_sizes=item_sizes, init_seed=s,
            train_seed=s, early_stopping=True, rule=rule, element_masks=element_masks,
        )  # fmt: skip
        n_final = merged_batches(best.n_batches, data, rule)
        parts.append(
            FinalRetrainResult(best.eval, best.n_batches, best.history, n_final, None, seed=s)
        )
    result = FinalRetrainResult.mean_of(parts)
    if test:  # step 2 per seed
        finish_on_test(
            result, data, user_sizes, item_sizes, step, element_masks=element_masks,
            trace_test_every=trace_test_every, trace_until=trace_until, keep_model=keep_model,
        )  # fmt: skip
    return result


def finish_on_test(
    result: FinalRetrainResult,
    data: InteractionData,
    user_sizes: np.ndarray,
    item_sizes: np.ndarray,
    step: StepConfig,
    *,
    element_masks: tuple[np.ndarray, np.ndarray] | None = None,
    trace_test_every: int | None = None,
    trace_until: int | None = None,
    keep_model: bool = False,
) -> EvalResult:
    """Step 2 for a result of ``final_retrain(..., test=False)``: every seed's test, averaged.

    Selective retraining selects among candidates on validation first and scores only the
    winner on test; this is that second half, with each seed's own batch count. ``step`` and
    the trace options are :func:`score_on_test`'s; ``result.test_trace`` is the first seed's.
    With ``keep_model`` every seed's model is kept in its ``model`` and ``result.model`` is
    the first seed's.
    """
    step = _fresh(step, "finish_on_test")
    parts = result.runs or [result]
    for p in parts:
        run = train_on_merged(
            data, user_sizes, item_sizes, p.final_batches, step, seed=p.seed,
            element_masks=element_masks, trace_test_every=trace_test_every,
            trace_until=trace_until,
        )  # fmt: skip
        p.test, p.test_trace = run.test, run.trace
        p.model = run.model if keep_model else None
    result.test = EvalResult.average([p.test for p in parts])
    result.test_trace = parts[0].test_trace
    result.model = parts[0].model
    return result.test


def score_on_test(
    data: InteractionData,
    user_sizes: np.ndarray,
    item_sizes: np.ndarray,
    n_batches: int,
    step: StepConfig,
    *,
    seed: int = 0,
    trace_test_every: int | None = None,
    trace_until: int | None = None,
    element_masks: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[EvalResult, list[tuple[int, EvalResult]]]:
    """Step 2 of the rule: a fresh model on train + validation for ``n_batches``, test metrics.

    :func:`train_on_merged` without the model (the same run, the same numbers).

    Args:
        data: The data set (it is merged here).
        user_sizes: (n_users,) sizes.
        item_sizes: (n_items,) sizes.
        n_batches: Batches to train.
        step: Backbone, schedule (``train.n_batches`` ignored), size range, device and
            hyperparameters; its ``retrain`` design is ignored.
        seed: Seeds the initialisation and the sampling.
        trace_test_every: Also evaluate test every this many batches.
        trace_until: Continue the traced run to this many batches (≥ ``n_batches``).
        element_masks: Elementwise masks (see :func:`retrain_and_evaluate`).

    Returns:
        Test metrics at ``n_batches`` and the trace (empty unless traced). Evaluating does
        not touch the training random streams, so the trace does not change the result.
    """
    run = train_on_merged(
        data, user_sizes, item_sizes, n_batches, step, seed=seed,
        trace_test_every=trace_test_every, trace_until=trace_until, element_masks=element_masks,
    )  # fmt: skip
    return run.test, run.trace


@dataclass
class MergedRun:
    """One train + validation retraining (:func:`train_on_merged`).

    Attributes:
        test: Test metrics at the requested batch count.
        trace: ``(batches, test metrics)`` along the run when traced, else empty.
        model: The trained model (eval mode), on the merged data's graph: the model whose
            test metrics ``test`` are, e.g. to export (:mod:`ciess_env.export`). With a trace
            past ``n_batches`` it is the state at the end of the trace.
    """

    test: EvalResult
    trace: list[tuple[int, EvalResult]]
    model: Backbone


def train_on_merged(
    data: InteractionData,
    user_sizes: np.ndarray,
    item_sizes: np.ndarray,
    n_batches: int,
    step: StepConfig,
    *,
    seed: int = 0,
    trace_test_every: int | None = None,
    trace_until: int | None = None,
    element_masks: tuple[np.ndarray, np.ndarray] | None = None,
) -> MergedRun:
    """:func:`score_on_test` returning the trained model too (same arguments, same numbers)."""
    step = check_step(step, "train_on_merged")
    merged = data.merge_train_validation()
    model = make_backbone(
        step.backbone, merged, seed=seed, d_max=step.d_max, d_min=step.d_min,
        device=step.device, **step.backbone_kwargs,
    )  # fmt: skip
    model.set_sizes(user_sizes, item_sizes)
    if element_masks is not None:
        model.set_element_masks(*element_masks)
    trainer = BPRTrainer(model, merged, step.train, seed=seed)
    stops = {int(n_batches)}
    if trace_test_every:
        until = max(int(n_batches), int(trace_until or n_batches))
        stops |= set(range(trace_test_every, until + 1, trace_test_every))
    test, trace = None, []
    for stop in sorted(stops):
        trainer.run(stop - trainer.batches_done)
        ev = evaluate(model, merged, "test")
        if stop == n_batches:
            test = ev
        if trace_test_every and stop % trace_test_every == 0:
            trace.append((stop, ev))
    assert test is not None
    return MergedRun(test, trace, model.eval())


@dataclass(frozen=True)
class BudgetResult:
    """Test-split quality of the mask chosen for one budget (one row of Table 1).

    Attributes:
        budget: Target sparsity c.
        sparsity: Sparsity the chosen mask achieves (≥ c).
        candidates: How many logged masks met the budget and were retrained (≤ l).
        validation_quality: Mean user quality on validation of the chosen mask (selection score).
        batches: Batches of the final (train + validation) retraining.
        recall_5, recall_20, ndcg_5, ndcg_20: Test metrics after retraining on train + validation.
        model: With ``keep_model=True`` (selective retraining): the trained winner. Not part
            of the row (:meth:`as_dict`).
    """

    budget: float
    sparsity: float
    candidates: int
    validation_quality: float
    batches: int
    recall_5: float
    recall_20: float
    ndcg_5: float
    ndcg_20: float
    model: KeptModel | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict[str, float]:
        """The row as a plain dict (for pandas / JSON), without the kept model."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "model"}


@dataclass
class KeptModel:
    """The trained model of a budget's selected mask, with what it is and how it scored.

    Attributes:
        model: The train + validation model (eval mode) on the merged data's graph.
        backbone: Backbone name.
        seed: Seed of its initialisation and sampling (the first seed of the rule).
        batches: Batches it was trained for.
        test: Its own test metrics. With several seeds the budget's row reports their mean;
            this is the kept seed's.
    """

    model: Backbone
    backbone: str
    seed: int
    batches: int
    test: EvalResult

    def summary(self) -> dict[str, Any]:
        """Plain facts for a JSON file next to the saved model."""
        sizes = {
            side: {"min": int(t.min()), "max": int(t.max()), "sum": int(t.sum()), "n": len(t)}
            for side, t in (("user", self.model.user_sizes), ("item", self.model.item_sizes))
        }
        return {
            "backbone": self.backbone,
            "seed": int(self.seed),
            "batches": int(self.batches),
            "sparsity": self.model.sparsity(),
            "sizes": sizes,
            "d_max": int(self.model.d_max),
            "d_min": int(self.model.d_min),
            "test_recall_20": self.test.recall(20),
            "test_ndcg_20": self.test.ndcg(20),
            "test_recall_5": self.test.recall(5),
            "test_ndcg_5": self.test.ndcg(5),
        }
