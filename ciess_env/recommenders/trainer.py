"""BPR training: the configuration, the step-decay schedule and the training loop."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from ciess_env.config import TrainConfig
from ciess_env.data.interactions import InteractionData
from ciess_env.data.specs import dataset_spec
from ciess_env.errors import InvalidArgumentError, NonFiniteError
from ciess_env.recommenders.base import Backbone
from ciess_env.recommenders.registry import backbone_spec
from ciess_env.recommenders.sampling import BPRSampler

__all__ = ["BPRTrainer", "TrainConfig", "TrainResult", "paper_train_config", "train_bpr"]

logger = logging.getLogger(__name__)


#: (batches, Yelp2018 batches, decay_batches, lr_floor) of the reference code (paper §8).
def paper_train_config(backbone: str, dataset: str | InteractionData) -> TrainConfig:
    """The reference code's per-step training budget for ``backbone`` on ``dataset`` (§8).

    Read from the backbone's :class:`~ciess_env.recommenders.registry.BackboneSpec`: its
    ``paper_batches_large`` on data sets whose :class:`~ciess_env.data.specs.DatasetSpec` says
    ``large`` (Yelp2018), else ``paper_batches``; unregistered data (e.g. from
    :func:`~ciess_env.data.from_pairs`) gets the standard budget.

    Args:
        backbone: Backbone name (case-insensitive).
        dataset: A data set name or an :class:`InteractionData`.

    Raises:
        UnknownNameError: for an unknown backbone.
    """
    spec = backbone_spec(backbone)
    name = dataset.name if isinstance(dataset, InteractionData) else str(dataset)
    data_spec = dataset_spec(name)
    large = data_spec is not None and data_spec.large
    n = spec.paper_batches_large if large else spec.paper_batches
    return TrainConfig(n_batches=n, decay_batches=spec.decay_batches, lr_floor=spec.lr_floor)


@dataclass
class TrainResult:
    """What a training run did.

    Attributes:
        losses: (n_batches,) float32 total loss (BPR + L2) of each batch.
        bpr_losses: (n_batches,) float32 BPR part of each batch's loss.
        seconds: Wall-clock seconds of the run (sampling + forward + backward + update).
        n_batches: Batches run.
        final_lr: Learning rate of the last batch.
    """

    losses: np.ndarray
    bpr_losses: np.ndarray
    seconds: float
    n_batches: int
    final_lr: float

    @property
    def seconds_per_batch(self) -> float:
        """Mean wall-clock seconds per batch."""
        return self.seconds / max(1, self.n_batches)


class BPRTrainer:
    """Stateful BPR training of one model: resumable in chunks (used by pretraining).

    The optimiser state, the batch counter (which drives the learning-rate schedule) and
    both random streams persist between :meth:`run` calls, so ``run(100); run(100)`` equals
    ``run(200)`` bit for bit.

    Args:
        model: The backbone; trained in place on its own device.
        data: The data set (training split).
        config: The schedule.
        seed: Seeds the batch sampler (numpy) and the training randomness (dropout, nested
            sizes; a ``torch.Generator`` on the model's device).
        nested: Nested-prefix training: every batch draws a fresh uniform size in
            ``[d_min, d_max]`` for every user and item, so every prefix of every row is trained
            (Matryoshka-style). The model's sizes are restored after each run.
        progress_bar: Show a tqdm bar.
        fused_adam: Use the fused Adam kernel (one pass over all parameters instead of a
            dozen per tensor; equal to float tolerance). ``None``: wherever this torch build
            supports it on the model's device, unless the model computes at full width
            (``model.full_width``, the reference path, which keeps plain Adam).
    """

    def __init__(
        self,
        model: Backbone,
        data: InteractionData,
        config: TrainConfig,
        *,
        seed: int,
        nested: bool = False,
        progress_bar: bool = False,
        fused_adam: bool | None = None,
    ) -> None:
        if model.n_users != data.n_users or model.n_items != data.n_items:
            msg = (
                f"model and data must have the same shape, got model ({model.n_users}, "
                f"{model.n_items}) and data ({data.n_users}, {data.n_items})."
            )
            raise InvalidArgumentError(msg)
        self.model = model
        self.config = config
        self.nested = nested
        self.progress_bar = progress_bar
        sample_seed, torch_seed = np.random.SeedSequence(seed).generate_state(2)
        self.sampler = BPRSampler(data, np.random.default_rng(int(sample_seed)))
        self.generator = torch.Generator(device=model.device).manual_seed(int(torch_seed))
        model.set_generator(self.generator)
        if fused_adam is None:
            fused_adam = not model.full_width and fused_adam_supported(model.device)
        self.optimizer = torch.optim.Adam(
            model.parameters(), lr=config.lr, fused=fused_adam or None
        )
        self.batches_done = 0

    def run(self, n_batches: int | None = None) -> TrainResult:
        """Train ``n_batches`` more batches (default ``config.n_batches``)."""
        n = self.config.n_batches if n_batches is None else int(n_batches)
        model, cfg, device = self.model, self.config, self.model.device
        model.train()
        model.set_generator(self.generator)
        saved = (model.user_sizes.clone(), model.item_sizes.clone()) if self.nested else None
        losses = torch.zeros(n, device=device)
        bprs = torch.zeros(n, device=device)
        lr = cfg.lr_at(self.batches_done)
        start = time.perf_counter()
        for i in tqdm(range(n), disable=not self.progress_bar, desc=f"BPR {model.name}"):
            lr = cfg.lr_at(self.batches_done)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            batch = self.sampler.sample(cfg.batch_size)
            users, pos, neg = (torch.from_numpy(a).to(device) for a in batch)
            if self.nested:
                self._draw_sizes()
            loss = model.bpr_loss(users, pos, neg)
            self.optimizer.zero_grad(set_to_none=True)
            loss.total.backward()
            self.optimizer.step()
            losses[i] = loss.total.detach()
            bprs[i] = loss.bpr.detach()
            self.batches_done += 1
        if saved is not None:
            model.user_sizes.copy_(saved[0])
            model.item_sizes.copy_(saved[1])
        model.eval()
        _check_finite_losses(losses, self.batches_done - n)
        seconds = time.perf_counter() - start
        logger.debug("trained %s for %d batches in %.2f s", model.name, n, seconds)
        return TrainResult(
            losses=losses.cpu().numpy(),
            bpr_losses=bprs.cpu().numpy(),
            seconds=seconds,
            n_batches=n,
            final_lr=lr,
        )

    def _draw_sizes(self) -> None:
        model, gen = self.model, self.generator
        lo, hi = model.d_min, model.d_max + 1
        model.user_sizes.copy_(
            torch.randint(lo, hi, (model.n_users,), generator=gen, device=model.device)
        )
        model.item_sizes.copy_(
            torch.randint(lo, hi, (model.n_items,), generator=gen, device=model.device)
        )


def _check_finite_losses(losses: torch.Tensor, first_batch: int) -> None:
    """Refuse a run whose loss went NaN/inf (checked once per run: no sync per batch)."""
    bad = ~torch.isfinite(losses)
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        msg = (
            f"BPR loss must be finite, got {float(losses[i])} at batch {first_batch + i + 1} "
            f"of {first_batch + losses.numel()}: training diverged. Lower the learning rate "
            "(TrainConfig.lr) or check the initial weights."
        )
        raise NonFiniteError(msg)


def fused_adam_supported(device: torch.device | str) -> bool:
    """Whether this torch build has a fused Adam kernel for float32 on ``device``."""
    probe = torch.zeros(1, device=device, requires_grad=True)
    try:
        torch.optim.Adam([probe], fused=True)
    except (RuntimeError, ValueError):
        return False
    return True


def train_bpr(
    model: Backbone,
    data: InteractionData,
    config: TrainConfig,
    *,
    seed: int,
    device: torch.device | str | None = None,
    nested: bool = False,
    progress_bar: bool = False,
) -> TrainResult:
    """Train ``model`` in place with BPR and Adam under ``config``'s step-decay schedule.

    Same model initialisation + same ``seed`` ⇒ bit-identical weights on the CPU.
    The model is left in eval mode.

    Args:
        model: The backbone (sizes already set).
        data: The data set (training split).
        config: Batches, batch size and learning-rate schedule.
        seed: Seeds sampling and training randomness.
        device: Move the model here first (``None``: keep its device). All tensors of the
            loop live on the model's device.
        nested: Nested-prefix training (see :class:`BPRTrainer`).
        progress_bar: Show a tqdm bar.

    Returns:
        Per-batch losses and timing.
    """
    if device is not None and torch.device(device) != model.device:
        model.to(device)
    trainer = BPRTrainer(model, data, config, seed=seed, nested=nested, progress_bar=progress_bar)
    return trainer.run()
