"""Config objects for the bundles of settings that travel together.

:class:`StepConfig` is how one mask is retrained (backbone, schedule, retrain design, size
range, device, hyperparameters): the env builds one and every retraining
(:func:`ciess_env.retrain.retrain_and_evaluate`) takes it. :class:`PretrainConfig` is how the
full-size model is pretrained. Both validate themselves, so a bad value fails where it is set.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

import torch

from ciess_env._size_range import validate_size_range
from ciess_env.errors import InvalidArgumentError
from ciess_env.recommenders import TrainConfig

__all__ = ["PRESETS", "PretrainConfig", "StepConfig"]

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


def _check_count(name: str, value: Any) -> None:
    if value is not None and not (isinstance(value, int) and value >= 0):
        msg = f"`{name}` must be a non-negative integer or None, got {value!r}."
        raise InvalidArgumentError(msg)


@dataclass(frozen=True)
class StepConfig:
    """How one size assignment is retrained and evaluated.

    Attributes:
        backbone: Backbone name (lowercase).
        train: The paper-derived scratch schedule the design derives its own from.
        retrain: The retrain design string: ``"scratch"``, ``"fast"``, ``"short:K"``,
            ``"nested:B"`` (parsed by :class:`ciess_env.retrain.RetrainDesign`).
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
        validate_size_range(self.d_min, self.d_max)
        object.__setattr__(self, "backbone", self.backbone.lower())
        object.__setattr__(self, "backbone_kwargs", dict(self.backbone_kwargs))

    def replace(self, **changes: Any) -> StepConfig:
        """A copy with ``changes`` applied (e.g. another schedule for final retraining)."""
        return dataclasses.replace(self, **changes)


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
        object.__setattr__(self, "patience", int(self.patience))
        object.__setattr__(self, "seed", int(self.seed))

    def resolved(self, train: TrainConfig) -> tuple[int, int]:
        """``(max_batches, eval_every)`` for a step schedule ``train``, defaults filled in."""
        max_batches = 3 * train.n_batches if self.max_batches is None else self.max_batches
        eval_every = self.eval_every or min(200, max(1, train.n_batches))
        return max_batches, eval_every
