"""Retraining one size assignment (a mask): the one entry point, and the env's step designs.

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
* ``"nested:B"`` — start from the nested-prefix pretrained model (every prefix of every row was
  trained), apply the mask, fine-tune ``B`` batches (0 = zero-shot) at the
  constant learning rate ``lr / 10``.
* ``"fast"`` — the env's fast mode, an alias of :data:`FAST_DESIGN`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from ciess_env.data.interactions import InteractionData, SplitName
from ciess_env.errors import InvalidArgumentError, InvalidTypeError
from ciess_env.metrics import EvalResult, evaluate
from ciess_env.recommenders import (
    Backbone,
    TrainConfig,
    make_backbone,
    train_bpr,
    train_until_converged,
)

__all__ = ["FAST_DESIGN", "RetrainDesign", "StepOutcome", "retrain_and_evaluate"]

#: The design ``retrain="fast"`` stands for. Chosen on measured rank fidelity against scratch
#: (benchmarks/results/env_fast_mode_synthetic.md: Spearman 0.93 vs 0.39 for ``short:8``); the
#: few fine-tuning batches are there to let the model adapt to the mask, which zero-shot nested
#: models under-rate for popularity-skewed masks on ML-1M.
FAST_DESIGN = "nested:20"


@dataclass(frozen=True)
class RetrainDesign:
    """A parsed ``retrain=`` string.

    Attributes:
        kind: ``"scratch"``, ``"short"`` or ``"nested"``.
        factor: ``short``: the batch-count divisor K (1 for scratch).
        finetune_batches: ``nested``: fine-tuning batches after applying the mask.
    """

    kind: Literal["scratch", "short", "nested"]
    factor: int = 1
    finetune_batches: int = 0

    @classmethod
    def parse(cls, spec: str) -> RetrainDesign:
        """Parse ``"scratch"``, ``"fast"``, ``"short:K"`` or ``"nested:B"``.

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
            if kind == "nested" and int(arg or 0) >= 0:
                return cls("nested", finetune_batches=int(arg or 0))
        except ValueError:
            pass
        msg = (
            "`retrain` must be 'scratch', 'fast', 'short:K' (K >= 1) or 'nested:B' (B >= 0), "
            f"got {spec!r}."
        )
        raise InvalidArgumentError(msg)

    def __str__(self) -> str:
        if self.kind == "short":
            return f"short:{self.factor}"
        if self.kind == "nested":
            return f"nested:{self.finetune_batches}"
        return "scratch"

    @property
    def needs_nested_model(self) -> bool:
        """Whether the design starts from the nested-prefix pretrained model."""
        return self.kind == "nested"

    def config(self, base: TrainConfig) -> TrainConfig:
        """The training schedule this design runs, derived from the paper's ``base``."""
        if self.kind == "short":
            return base.replace(
                n_batches=max(1, math.ceil(base.n_batches / self.factor)),
                decay_batches=max(1, round(base.decay_batches / self.factor)),
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
    """

    eval: EvalResult
    model: Backbone
    train_seconds: float
    n_batches: int


def retrain_and_evaluate(
    design: RetrainDesign,
    *,
    backbone: str,
    data: InteractionData,
    user_sizes: np.ndarray,
    item_sizes: np.ndarray,
    base_config: TrainConfig,
    init_seed: int,
    train_seed: int,
    d_min: int,
    d_max: int,
    device: torch.device | str = "cpu",
    backbone_kwargs: dict[str, Any] | None = None,
    nested_state: dict[str, torch.Tensor] | None = None,
    progress_bar: bool = False,
    split: SplitName = "validation",
    early_stopping: bool = False,
) -> StepOutcome:
    """Build, train and evaluate one model for a size assignment under ``design``.

    Args:
        design: The retraining design.
        backbone: Backbone name.
        data: The data set (train split for training, validation for evaluation).
        user_sizes: (n_users,) int sizes.
        item_sizes: (n_items,) int sizes.
        base_config: The paper schedule the design derives its own from.
        init_seed: Seed of the fresh model's initialisation.
        train_seed: Seed of BPR sampling and training randomness.
        d_min: Smallest size.
        d_max: Largest size.
        device: Torch device.
        backbone_kwargs: Backbone hyperparameters.
        nested_state: The nested-prefix pretrained weights (required by ``nested`` designs).
        progress_bar: Show a tqdm bar while training.
        split: Split to evaluate on (selective retraining scores its winner on "test").
        early_stopping: Train "to convergence": stop on validation quality (every 200 batches,
            patience 2) with the design's ``n_batches`` as the cap, and keep the best state;
            ``split`` must then be "validation".

    Returns:
        The evaluation, the model and the training time.

    Raises:
        ValueError: for early stopping on a split other than validation, or a nested design
            without ``nested_state``.
    """
    if early_stopping and split != "validation":
        msg = f"early stopping needs split='validation', got {split!r}."
        raise InvalidArgumentError(msg)
    start = time.perf_counter()
    model = make_backbone(
        backbone, data, d_max=d_max, d_min=d_min, seed=init_seed, device=device,
        **(backbone_kwargs or {}),
    )  # fmt: skip
    if design.needs_nested_model:
        if nested_state is None:
            msg = f"`nested_state` must be given for retrain design {design}, got None."
            raise InvalidArgumentError(msg)
        model.load_state_dict(nested_state)
    model.set_sizes(user_sizes, item_sizes)
    config = design.config(base_config)
    if early_stopping:
        best = train_until_converged(
            model, data, config, seed=train_seed, max_batches=config.n_batches,
            progress_bar=progress_bar,
        )  # fmt: skip
        seconds = time.perf_counter() - start
        return StepOutcome(
            eval=best.eval, model=model, train_seconds=seconds, n_batches=best.best_batches
        )
    if config.n_batches > 0:
        train_bpr(model, data, config, seed=train_seed, progress_bar=progress_bar)
    model.eval()
    seconds = time.perf_counter() - start
    result = evaluate(model, data, split)
    return StepOutcome(eval=result, model=model, train_seconds=seconds, n_batches=config.n_batches)
