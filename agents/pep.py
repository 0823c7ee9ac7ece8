"""PEP — learnable soft-threshold pruning of embedding tables (Liu et al., ICLR 2021).

PEP is the strongest non-RL compressor in the CIESS paper's Table 1. It prunes individual
weights, not prefixes, so it runs beside the env rather than through it:

1. **Search.** Every table entry ``v`` is read through the reparameterisation
   ``v̂ = sign(v) · ReLU(|v| − g(s))`` with ``g = sigmoid`` and a learnable threshold ``s``
   (:class:`SoftThreshold`). The default granularity is one threshold per entity × dimension
   (PEP's ``feature_dim``, the finest of its options); ``"entity"``, ``"dimension"`` and
   ``"global"`` share thresholds along rows, columns or the whole table. The backbone is
   trained with BPR under the paper's schedule; thresholds rise where the loss lets them and
   the table's sparsity grows.
2. **Exact budgets by threshold annealing.** Learned thresholds alone settle far below
   80 % sparsity under BPR (≈ 15 % after 600 batches on the synthetic default), so, as in
   gradual magnitude pruning (Zhu & Gupta 2017), a common offset ``τ ≥ 0`` is added to every
   threshold and raised every ``check_every`` batches so that the sparsity of ``v̂`` is at
   least the cubic schedule ``c_max · (1 − (1 − t/T)³)`` (``T = max_batches``, ``c_max`` the
   largest budget); ``τ`` stays 0 while the learned thresholds are ahead of the schedule. The
   learned ``s`` still decide *which* entries go (they rank the entries), the offset only how
   many. The first check at which the sparsity reaches a budget ``c`` cuts its mask: the
   ``k = ⌊(1 − c) · d_max · N⌋`` entries with the largest margin ``|v| − g(s)`` are kept, so the
   achieved sparsity is ``c`` up to one entry. :attr:`PEPMask.threshold_sparsity` records how
   far the learned thresholds alone had got. ``anneal=False`` is plain PEP (no offset; the
   final cut at ``max_batches`` does whatever the thresholds did not).
3. **Retrain (PEP's lottery-ticket step).** A fresh backbone with the *same* initialisation as
   the search (the ticket's original weights) is trained with only the kept entries, by the
   package's final-retraining schedule
   (:func:`agents.experiments.selective.retrain_pruned`: early stopping on validation, then
   train + validation for the best count, scored on test); ``compare`` runs it for ``"pep"``.

Memory is counted from the non-zero entries with the prefix masks' accounting
(``1 − nnz / (d_max · N)``). Unstructured sparsity also needs a column index per kept entry,
which prefix masks do not: :meth:`PEPMask.storage_bytes` gives both layouts' bytes.
:meth:`PEPMask.prefix_sizes` is the "PEP-as-prefix" projection (each entity keeps its count of
surviving weights as a prefix size, fitted to the same budget) that can be fed back into the
env or retrained like any other size assignment.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from ciess_env.budget import fit_to_budget, kept_budget, sparsity, sparsity_of_kept
from ciess_env.budget_log import BudgetLog
from ciess_env.config import StepConfig, check_step
from ciess_env.data import InteractionData
from ciess_env.errors import InvalidArgumentError
from ciess_env.metrics import ragged_storage_bytes
from ciess_env.recommenders import Backbone, BPRTrainer, make_backbone

__all__ = ["PEPConfig", "PEPMask", "SoftThreshold", "pep_prefix_log", "pep_search"]

logger = logging.getLogger(__name__)

Granularity = Literal["entity_dimension", "entity", "dimension", "global"]


class SoftThreshold(nn.Module):
    """PEP's reparameterised sparse weight ``sign(v) · ReLU(|v| − sigmoid(gk · s))``.

    Args:
        shape: (n, d) of the table it is registered on.
        granularity: Which entries share a threshold (see the module docstring).
        init: Initial ``s``; ``sigmoid(gk · init)`` should be far below the weights' scale so
            that nothing is pruned at the start (default −6: 0.0025 vs weights of ≈ 0.1).
        gk: PEP's temperature on ``s``.
    """

    def __init__(
        self,
        shape: tuple[int, int],
        granularity: Granularity = "entity_dimension",
        init: float = -6.0,
        gk: float = 1.0,
    ) -> None:
        super().__init__()
        n, d = shape
        shapes = {
            "entity_dimension": (n, d),
            "entity": (n, 1),
            "dimension": (1, d),
            "global": (1, 1),
        }
        if granularity not in shapes:
            msg = f"`granularity` must be one of {sorted(shapes)}, got {granularity!r}."
            raise InvalidArgumentError(msg)
        self.s = nn.Parameter(torch.full(shapes[granularity], float(init)))
        self.gk = float(gk)
        # The annealed common offset τ (not learned; see the module docstring).
        self.register_buffer("offset", torch.zeros(()))

    def threshold(self) -> torch.Tensor:
        """``g(s)``, broadcastable to the table (without the offset)."""
        return torch.sigmoid(self.gk * self.s)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return torch.sign(weight) * torch.relu(weight.abs() - self.threshold() - self.offset)


@dataclass(frozen=True)
class PEPConfig:
    """Settings of the PEP search.

    Attributes:
        granularity: Threshold sharing: ``"entity_dimension"`` (default), ``"entity"``,
            ``"dimension"`` or ``"global"``.
        threshold_init: Initial ``s``.
        gk: Temperature of ``g(s) = sigmoid(gk · s)``.
        max_batches: Cap on the search's training batches; ``None``: the env's per-step
            schedule (``train_config.n_batches``, the paper's 2,000 for LightGCN).
        check_every: Batches between sparsity checks (the overshoot past ``c`` is cut anyway).
        anneal: Raise a common threshold offset along the cubic sparsity schedule (default);
            ``False``: learned thresholds only.
    """

    granularity: Granularity = "entity_dimension"
    threshold_init: float = -6.0
    gk: float = 1.0
    max_batches: int | None = None
    check_every: int = 50
    anneal: bool = True

    def __post_init__(self) -> None:
        if self.check_every < 1 or (self.max_batches is not None and self.max_batches < 1):
            msg = (
                "check_every and max_batches must be >= 1, got "
                f"{self.check_every!r} and {self.max_batches!r}."
            )
            raise InvalidArgumentError(msg)


@dataclass(frozen=True)
class PEPMask:
    """PEP's pruned structure for one budget.

    Attributes:
        budget: Target sparsity c.
        user_mask: (n_users, d_max) bool, kept entries.
        item_mask: (n_items, d_max) bool.
        reached_at_batch: Search batch at which the sparsity of ``v̂`` (learned thresholds plus
            the annealed offset) first reached ``c``; ``None`` if it never did within
            ``max_batches`` (only without annealing) and the final cut did the rest.
        threshold_sparsity: Sparsity of the learned thresholds alone (no offset) at the cut.
        d_min: Smallest prefix size of the projection.
    """

    budget: float
    user_mask: np.ndarray
    item_mask: np.ndarray
    reached_at_batch: int | None
    threshold_sparsity: float
    d_min: int = 1

    @property
    def d_max(self) -> int:
        """Table width."""
        return int(self.user_mask.shape[1])

    @property
    def kept(self) -> int:
        """Kept (non-zero) entries."""
        return int(self.user_mask.sum() + self.item_mask.sum())

    @property
    def sparsity(self) -> float:
        """``1 − nnz / (d_max · N)``, the prefix masks' accounting."""
        n = self.user_mask.shape[0] + self.item_mask.shape[0]
        return sparsity_of_kept(self.kept, n, self.d_max)

    def row_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Surviving weights per user and per item."""
        return self.user_mask.sum(1).astype(np.int64), self.item_mask.sum(1).astype(np.int64)

    def prefix_sizes(self) -> tuple[np.ndarray, np.ndarray]:
        """The "PEP-as-prefix" projection: sizes ∝ surviving counts, at the same budget.

        Each entity's size is its surviving-weight count, clipped to ``[d_min, d_max]``;
        entities PEP pruned to nothing need ``d_min``, so the counts are rescaled by the
        budget fit the heuristics use (largest remainder) to keep the total at the cap.
        """
        users, items = self.row_counts()
        counts = np.concatenate([users, items]).astype(np.float64)
        cap = kept_budget(self.budget, counts.shape[0], self.d_max)
        sizes = fit_to_budget(np.maximum(counts, 1e-3), cap, self.d_min, self.d_max)
        return sizes[: users.shape[0]], sizes[users.shape[0] :]

    def storage_bytes(self, dtype_bytes: int = 4) -> dict[str, int]:
        """Bytes of the kept values in two layouts.

        ``"csr"``: values plus a one-byte column index per kept entry (``d_max ≤ 256``) and an
        int32 row pointer per row — what unstructured sparsity costs. ``"prefix_equivalent"``:
        the ragged prefix layout for the same number of kept values (no column indices), as in
        :func:`ciess_env.metrics.ragged_storage_bytes`.
        """
        n_rows = self.user_mask.shape[0] + self.item_mask.shape[0]
        index_bytes = 1 if self.d_max <= 256 else 2
        users, items = self.row_counts()
        return {
            "csr": self.kept * (dtype_bytes + index_bytes) + 4 * (n_rows + 1),
            "prefix_equivalent": ragged_storage_bytes(users, items, dtype_bytes),
        }


def _thresholds(model: Backbone) -> list[tuple[torch.Tensor, SoftThreshold]]:
    """(raw weight, threshold module) of the user table, then the item table."""
    out = []
    for side in ("user", "item"):
        name = model.masked_tables[side][0]
        group = getattr(model.parametrizations, name)
        out.append((group.original, group[0]))
    return out


def pep_prefix_log(masks: Sequence[PEPMask]) -> BudgetLog:
    """A budget log of the "PEP-as-prefix" projections, one entry per mask.

    Like the heuristics' logs, entries carry no validation score; selective retraining (or
    ``env.step``) can take them from here as ordinary size assignments.
    """
    first = masks[0]
    log = BudgetLog(first.user_mask.shape[0], first.item_mask.shape[0], d_max=first.d_max)
    for i, m in enumerate(masks):
        users, items = m.prefix_sizes()
        log.record(
            episode=0, step=i + 1, user_sizes=users, item_sizes=items,
            sparsity=sparsity(users, items, m.d_max), mean_quality=float("nan"),
        )  # fmt: skip
    return log


def _margins(model: Backbone) -> torch.Tensor:
    """``|v| − g(s)`` of every entry, users then items, (N, d_max); > τ means kept."""
    rows = [w.detach().abs() - m.threshold().detach() for w, m in _thresholds(model)]
    return torch.cat(rows)


def _set_offset(model: Backbone, margins: torch.Tensor, target_kept: int) -> float:
    """Raise τ (never lower it) so that at most ``target_kept`` margins exceed it."""
    modules = [m for _, m in _thresholds(model)]
    tau = float(modules[0].offset)
    flat = margins.flatten()
    if 0 <= target_kept < flat.numel() and int((flat > tau).sum()) > target_kept:
        # The (target_kept + 1)-th largest margin: exactly target_kept lie above it (no ties).
        tau = max(tau, float(torch.topk(flat, target_kept + 1).values[-1]))
    for m in modules:
        m.offset.fill_(tau)
    return tau


def _cut(margins: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of the ``k`` largest margins (ties broken by index: deterministic)."""
    flat = margins.flatten()
    keep = torch.zeros(flat.shape[0], dtype=torch.bool, device=flat.device)
    if k > 0:
        keep[torch.topk(flat, k, sorted=False).indices] = True
    return keep.view_as(margins)


def pep_search(
    data: InteractionData,
    step: StepConfig,
    *,
    budgets: Sequence[float],
    config: PEPConfig | None = None,
    seed: int = 0,
) -> list[PEPMask]:
    """Train the soft-threshold model once and cut one mask per budget (steps 1–2).

    Args:
        data: The data set (training split).
        step: Backbone (one table per side: LightGCN, MF, NGCF), schedule (learning rate and
            batch size; its ``n_batches`` is the default cap), table width ``d_max``, the
            prefix projection's smallest size ``d_min``, device and backbone hyperparameters
            (e.g. an env's ``step_config``; its ``retrain`` design is not used).
        budgets: Target sparsities c.
        config: PEP settings.
        seed: Seeds the initialisation and the sampling; the lottery-ticket retraining must
            use the same seed to start from the same weights.

    Returns:
        One :class:`PEPMask` per budget, in the order of ``budgets``.

    Raises:
        ValueError: for a backbone with more than one table per side, or a budget outside
            [0, 1).
    """
    step = check_step(step, "pep_search")
    config = config or PEPConfig()
    backbone, train_config, d_min, d_max = step.backbone, step.train, step.d_min, step.d_max
    model = make_backbone(
        backbone, data, d_max=d_max, d_min=d_min, seed=seed, device=step.device,
        **step.backbone_kwargs,
    )  # fmt: skip
    if model.n_tables != 1:
        msg = (
            f"PEP here prunes one table per side; backbone {backbone!r} has {model.n_tables} "
            "(NCF's GMF and MLP towers). Use LightGCN, NGCF or MF."
        )
        raise InvalidArgumentError(msg)
    n = data.n_users + data.n_items
    caps = {float(c): kept_budget(c, n, d_max) for c in budgets}
    model.parametrize_tables(
        lambda _side, w: SoftThreshold(
            tuple(w.shape), config.granularity, config.threshold_init, config.gk
        ).to(w.device)
    )
    trainer = BPRTrainer(model, data, train_config, seed=seed)
    max_batches = config.max_batches or train_config.n_batches
    c_max = max(caps)
    found: dict[float, PEPMask] = {}

    def cut(c: float, margins: torch.Tensor, reached: int | None) -> None:
        sp = sparsity_of_kept(int((margins > 0).sum()), n, d_max)
        keep = _cut(margins, caps[c]).cpu().numpy()
        found[c] = PEPMask(c, keep[: data.n_users], keep[data.n_users :], reached, sp, d_min)

    while trainer.batches_done < max_batches and len(found) < len(caps):
        trainer.run(min(config.check_every, max_batches - trainer.batches_done))
        margins = _margins(model)
        if config.anneal:
            target = c_max * (1.0 - (1.0 - trainer.batches_done / max_batches) ** 3)
            _set_offset(model, margins, kept_budget(min(target, c_max), n, d_max))
        kept = int((margins > float(_thresholds(model)[0][1].offset)).sum())
        logger.info(
            "PEP: %d batches, sparsity %.4f", trainer.batches_done, sparsity_of_kept(kept, n, d_max)
        )
        for c, cap in caps.items():
            if c not in found and kept <= cap:
                cut(c, margins, trainer.batches_done)
    margins = _margins(model)
    for c in caps:
        if c not in found:
            logger.info("PEP: thresholds did not reach %.2f in %d batches; cutting", c, max_batches)
            cut(c, margins, None)
    return [found[float(c)] for c in budgets]
