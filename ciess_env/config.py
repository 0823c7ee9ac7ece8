"""The settings that travel together, in one leaf module every layer can import.

* :class:`TrainConfig`: how one model is trained with BPR (batches, batch size, schedule).
* :class:`StepConfig`: how one mask is retrained (backbone, schedule, retrain design, size
  range, device, backbone hyperparameters): the env builds one for its steps, and every
  function that retrains, selects or scores a mask (:mod:`ciess_env.retrain`,
  :func:`ciess_env.recommenders.pretrain`, :mod:`agents.experiments.selective`) takes one
  instead of respelling its six fields.
* :class:`PretrainConfig`: how the full-size model is pretrained.
* :class:`FinalRetrainRule`: how a search's masks are retrained "to convergence" and chosen
  (early stopping, batch scaling, seeds, masks per budget).

This module imports nothing of the package above the error classes and the shared argument
checks, so the backbone layer (:mod:`ciess_env.recommenders`) can take these objects too.
Every class validates itself: a bad value fails where it is set, naming the field.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ciess_env._size_range import validate_size_range
from ciess_env.checks import check_device, check_int
from ciess_env.errors import InvalidArgumentError, InvalidTypeError

if TYPE_CHECKING:
    import torch

__all__ = [
    "PRESETS",
    "SEED_STRIDE",
    "FinalRetrainRule",
    "PretrainConfig",
    "StepConfig",
    "TrainConfig",
]

#: Named presets: defaults that apply where the caller passed ``None``.
PRESETS: dict[str, dict[str, int]] = {
    "paper": {},
    # For tests and demos: seconds per step on any data set, quality far below the paper's.
    "tiny": {
        "batches_per_step": 8,
        "batch_size": 256,
        "pretrain_max_batches": 24,
        "pretrain_eval_every": 12,
    },
}

#: Distance between the seeds of one multi-seed final retraining (:class:`FinalRetrainRule`).
SEED_STRIDE = 1000


def _check_count(name: str, value: Any) -> None:
    if value is not None and not (isinstance(value, int) and value >= 0):
        msg = f"`{name}` must be a non-negative integer or None, got {value!r}."
        raise InvalidArgumentError(msg)


def _check_flag(owner: str, name: str, value: Any) -> None:
    if not isinstance(value, bool | np.bool_):
        msg = f"`{owner}.{name}` must be True or False, got {value!r}."
        raise InvalidTypeError(msg)


@dataclass(frozen=True)
class TrainConfig:
    """How one model is trained with BPR (paper §4, §8; travels from env to trainer).

    The learning rate of batch ``b`` (0-based) is
    ``max(lr · lr_decay ** (b // decay_batches), lr_floor)``: the reference's multiplicative
    step decay with a floor.

    Attributes:
        n_batches: Number of mini-batches (the reference counts batches, not epochs).
        batch_size: Triples per batch (paper: 10,000 users, one positive and negative each).
        lr: Initial Adam learning rate (0.03).
        lr_decay: Factor applied every ``decay_batches`` batches (0.9).
        decay_batches: Batches between decays (LightGCN 200, NGCF 100, NCF 50).
        lr_floor: Smallest learning rate (1e-3; NCF 1e-4).
    """

    n_batches: int
    batch_size: int = 10_000
    lr: float = 0.03
    lr_decay: float = 0.9
    decay_batches: int = 200
    lr_floor: float = 1e-3

    def __post_init__(self) -> None:
        for name in ("n_batches", "batch_size", "decay_batches"):
            value = getattr(self, name)
            low = 0 if name == "n_batches" else 1
            if not isinstance(value, (int, np.integer)) or value < low:
                msg = f"{name} must be an integer >= {low}, got {value!r}."
                raise InvalidArgumentError(msg)
        if not (self.lr > 0 and 0 < self.lr_decay <= 1 and self.lr_floor >= 0):
            msg = (
                "lr, lr_decay and lr_floor must satisfy lr > 0, 0 < lr_decay <= 1, lr_floor >= 0, "
                f"got lr={self.lr!r}, lr_decay={self.lr_decay!r}, lr_floor={self.lr_floor!r}."
            )
            raise InvalidArgumentError(msg)

    def lr_at(self, batch: int) -> float:
        """Learning rate of 0-based batch ``batch``."""
        return max(self.lr * self.lr_decay ** (batch // self.decay_batches), self.lr_floor)

    def replace(self, **changes: object) -> TrainConfig:
        """A copy with some fields changed (e.g. ``config.replace(n_batches=400)``)."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class StepConfig:
    """How one size assignment is retrained and evaluated.

    Attributes:
        backbone: Backbone name (lowercase).
        train: The paper-derived scratch schedule the design derives its own from. For a
            final retraining, ``train.n_batches`` caps each early-stopped run.
        retrain: The retrain design string: ``"scratch"``, ``"fast"``, ``"short:K"``,
            ``"nested:B"``, ... (parsed by :class:`ciess_env.retrain.RetrainDesign`). Final
            retraining and pretraining ignore it: they always start from a fresh model.
        d_min: Smallest size.
        d_max: Largest size (table width).
        device: Torch device.
        backbone_kwargs: Backbone hyperparameters.
    """

    backbone: str
    train: TrainConfig
    retrain: str = "scratch"
    d_min: int = 1
    d_max: int = 128
    device: torch.device | str = "cpu"
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, kind, what in (
            ("backbone", str, "a backbone name such as 'mf'"),
            ("train", TrainConfig, "a TrainConfig (e.g. paper_train_config(backbone, data))"),
            ("retrain", str, "a retrain design string such as 'scratch'"),
            ("backbone_kwargs", Mapping, "a dict of backbone hyperparameters"),
        ):
            value = getattr(self, name)
            if not isinstance(value, kind):
                msg = f"`StepConfig.{name}` must be {what}, got {value!r} ({type(value).__name__})."
                raise InvalidTypeError(msg)
        validate_size_range(self.d_min, self.d_max)
        check_device(self.device, "StepConfig.device")
        object.__setattr__(self, "backbone", self.backbone.lower())
        object.__setattr__(self, "backbone_kwargs", dict(self.backbone_kwargs))

    def replace(self, **changes: Any) -> StepConfig:
        """A copy with ``changes`` applied (e.g. another schedule for final retraining)."""
        return dataclasses.replace(self, **changes)


def check_step(step: Any, where: str) -> StepConfig:
    """``step`` if it is a :class:`StepConfig`; else a clear error naming the old keywords."""
    if not isinstance(step, StepConfig):
        msg = (
            f"{where} takes a StepConfig (backbone, train schedule, d_min, d_max, device, "
            f"backbone_kwargs in one object), got {type(step).__name__}; build one with "
            "StepConfig('mf', TrainConfig(n_batches=...), d_max=...) or "
            "SearchSession.final_step()."
        )
        raise InvalidTypeError(msg)
    return step


@dataclass(frozen=True)
class PretrainConfig:
    """How the full-size model is pretrained (early stopping on validation).

    Attributes:
        max_batches: Cap on batches; ``None``: three scratch steps' worth.
        eval_every: Batches between evaluations; ``None``: ``min(200, batches per step)``.
        patience: Evaluations without improvement before stopping.
        seed: Seed of the pretrained model (fixed across resets).
        cache_dir: Pretraining cache; else ``$CIESS_CACHE_DIR``, then the user cache.
    """

    max_batches: int | None = None
    eval_every: int | None = None
    patience: int = 2
    seed: int = 0
    cache_dir: str | os.PathLike[str] | None = None

    def __post_init__(self) -> None:
        _check_count("pretrain_max_batches", self.max_batches)
        _check_count("pretrain_eval_every", self.eval_every)
        if self.eval_every == 0:
            msg = "`pretrain_eval_every` must be >= 1 or None (the default), got 0."
            raise InvalidArgumentError(msg)
        check_int(self.patience, "pretrain_patience", minimum=1)
        check_int(self.seed, "pretrain_seed", minimum=0)
        object.__setattr__(self, "patience", int(self.patience))
        object.__setattr__(self, "seed", int(self.seed))

    def resolved(self, train: TrainConfig) -> tuple[int, int]:
        """``(max_batches, eval_every)`` for a step schedule ``train``, defaults filled in."""
        max_batches = 3 * train.n_batches if self.max_batches is None else self.max_batches
        eval_every = self.eval_every or min(200, max(1, train.n_batches))
        return max_batches, eval_every

    def replace(self, **changes: Any) -> PretrainConfig:
        """A copy with ``changes`` applied (e.g. ``settings.replace(seed=1)``)."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class FinalRetrainRule:
    """How a search's masks are trained "to convergence", chosen and scored on test.

    1. Train on the training split; evaluate the validation mean user quality every
       ``eval_every`` batches; keep the best state; stop after ``patience`` evaluations without
       improvement or at the cap (the step config's ``train.n_batches``).
    2. Retrain a fresh model (same seed) on train + validation for the best count scaled by
       ``|train ∪ validation| / |train|`` (:func:`ciess_env.retrain.merged_batches`): as many
       passes over the larger split as were best on validation. The learning-rate schedule is
       unchanged.
    3. Do both for ``seeds`` seeds and average: a mask's validation score (the selection
       score) and its test metrics are means over seeds. One seed's test Recall@20 moves by
       about 1 % from the initialisation and the sampling alone, even at a fixed batch count
       (``benchmarks/results/final_retraining_ml-100k.md``); the mean of two halves that.

    Selective retraining (:func:`agents.experiments.selective.selective_retrain`) applies it
    to the ``top_l`` best logged masks of each budget and reports the best on test.

    :meth:`legacy` (every 200 batches, patience 2, the same count, one seed) is the rule before
    issue 14: on ML-100K its stopping point alone cost ES 6 % of test Recall@20.

    Attributes:
        eval_every: Batches between validation evaluations.
        patience: Evaluations without improvement before stopping.
        scale_to_merged: Retrain on train + validation for the best batch count scaled by
            ``|train ∪ validation| / |train|`` (equal passes); False keeps the count (legacy).
        seeds: Independent retrainings averaged per mask: seed ``s`` of a call runs seeds
            ``s, s + 1000, s + 2000, ...`` (:meth:`seed_list`), so calls whose seeds differ by
            less than 1,000 share no retraining.
        top_l: Masks per budget that selective retraining retrains (the authors' code: 3).
        early_stopping: Steps 1–3 above. False: every run trains exactly ``train.n_batches``
            on one seed, and the winner is retrained on train + validation for as many.
        fill_budget: Grow each candidate with :func:`ciess_env.budget.fill_to_budget` so that
            it meets the budget exactly before it is retrained (the paper retrains the logged
            masks as they are, however far past the budget they lie).
    """

    eval_every: int = 50
    patience: int = 8
    scale_to_merged: bool = True
    seeds: int = 2
    top_l: int = 3
    early_stopping: bool = True
    fill_budget: bool = False

    def __post_init__(self) -> None:
        for name in ("eval_every", "patience", "seeds", "top_l"):
            check_int(getattr(self, name), f"FinalRetrainRule.{name}", minimum=1)
        for name in ("scale_to_merged", "early_stopping", "fill_budget"):
            _check_flag("FinalRetrainRule", name, getattr(self, name))

    @classmethod
    def legacy(cls) -> FinalRetrainRule:
        """The rule before issue 14: every 200 batches, patience 2, same count, one seed."""
        return cls(eval_every=200, patience=2, scale_to_merged=False, seeds=1)

    def seed_list(self, seed: int) -> list[int]:
        """The seeds a call with ``seed`` retrains (the first is ``seed`` itself)."""
        return [int(seed) + SEED_STRIDE * k for k in range(self.seeds)]

    def replace(self, **changes: Any) -> FinalRetrainRule:
        """A copy with ``changes`` applied (e.g. ``rule.replace(top_l=1)``)."""
        return dataclasses.replace(self, **changes)
