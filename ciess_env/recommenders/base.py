"""The interface every masked-embedding backbone implements.

A backbone owns one user table and one item table of width ``d_max`` and a per-entity size
``d ∈ [d_min, d_max]``; only the first ``d`` dimensions of a row are used (the prefix mask of
paper Eq. 1–2). Sizes are buffers, so changing them costs one small tensor write: the tables,
the graph and the optimiser state are never rebuilt.

Work proportional to what is kept: columns at or beyond the largest size in use,
``W = max(sizes)``, are zero in every masked row, so every product that reads the masked tables
runs over their first ``W`` columns only (:meth:`Backbone.size_masks`); the skipped columns
would contribute exact zeros to every score, loss and gradient. ``full_width = True`` restores
the computation over all ``d_max`` columns, for tests and benchmarks that compare the two.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import ClassVar, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from ciess_env._size_range import validate_size_range
from ciess_env.budget import sparsity_of_kept
from ciess_env.errors import InvalidArgumentError

__all__ = ["BPRLoss", "Backbone", "ElementMask", "gather_rows"]


def gather_rows(table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Rows ``idx`` of ``table`` (a batch's embeddings), differentiable in ``table``.

    Why not ``F.embedding`` everywhere: on the CPU its backward adds each index's gradient row
    with a separate kernel call, a large share of a batch at 30,000-150,000 indices, while
    ``index_select``'s backward is one ``index_add_`` that adds the same rows in the same order
    (the same sums, bit for bit) several times faster. Elsewhere (CUDA, MPS) ``index_add_``
    may accumulate with atomics, whose order varies between runs, so ``F.embedding`` stays.
    """
    if table.device.type != "cpu":
        return F.embedding(idx, table)
    return table.index_select(0, idx)


class BPRLoss(NamedTuple):
    """The two parts of the training loss of one batch.

    Attributes:
        bpr: Mean of ``softplus(score_neg - score_pos)`` over the batch (paper Eq. 4).
        reg: The L2 term, already multiplied by the backbone's weight ``l2``.
    """

    bpr: torch.Tensor
    reg: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        """``bpr + reg``, the quantity the optimiser minimises."""
        return self.bpr + self.reg


class ElementMask(nn.Module):
    """A fixed 0/1 mask multiplied into an embedding table (a torch parametrization).

    Registered on a table by :meth:`Backbone.set_element_masks`; every read of the table then
    returns ``weight ⊙ mask``, so masked entries contribute nothing and get an exact zero
    gradient, whatever the backbone does with the table.
    """

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask.to(torch.float32))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return weight * self.mask


class Backbone(nn.Module, abc.ABC):
    """A pairwise recommender whose user and item embeddings are prefix-masked.

    Subclasses implement :meth:`bpr_loss` and :meth:`score`; everything about sizes and
    parameter accounting lives here so all backbones count memory the same way.

    Args:
        n_users: Number of users.
        n_items: Number of items.
        d_max: Width of the tables, and the largest size (paper: 128).
        d_min: The smallest size (paper: 1).
        device: Torch device of the parameters.
    """

    #: Short lowercase name used in env ids and registries, e.g. ``"lightgcn"``.
    name: str = "backbone"
    #: How many masked (n_users + n_items, d_max) tables the backbone holds: NeuMF has two
    #: (GMF and MLP towers, both masked with the same sizes), the others one.
    n_tables: int = 1
    #: Per side, the names of the (n, d_max) parameters the masks apply to (``n_tables`` each).
    masked_tables: ClassVar[dict[str, tuple[str, ...]]] = {
        "user": ("user_emb",),
        "item": ("item_emb",),
    }
    #: Compute over all ``d_max`` columns, rebuilding the masks every batch and taking the L2
    #: term over gathered rows (the computation before work-proportional training). Equal to
    #: the default to float tolerance; kept so tests and benchmarks can compare the two paths.
    full_width: bool = False

    def __init__(
        self,
        n_users: int,
        n_items: int,
        *,
        d_max: int = 128,
        d_min: int = 1,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__()
        d_min, d_max = validate_size_range(d_min, d_max)
        self.n_users = int(n_users)
        self.n_items = int(n_items)
        self.d_max = int(d_max)
        self.d_min = int(d_min)
        self.register_buffer("user_sizes", torch.full((n_users,), d_max, dtype=torch.long))
        self.register_buffer("item_sizes", torch.full((n_items,), d_max, dtype=torch.long))
        self.register_buffer("_dims", torch.arange(d_max))
        # Randomness used *during training* (dropout); the trainer seeds it (see set_generator).
        self._generator: torch.Generator | None = None
        self._masks_key: tuple | None = None
        self._masks: tuple[int, torch.Tensor, torch.Tensor] | None = None
        self._masks_all_ones: tuple[bool, bool] = (False, False)

    @property
    def device(self) -> torch.device:
        """The device of the model's buffers and parameters."""
        return self.user_sizes.device

    def set_generator(self, generator: torch.Generator | None) -> None:
        """Use ``generator`` for the randomness of training (dropout), so runs are reproducible.

        Library code never seeds the global torch RNG; the trainer passes a generator seeded
        from its ``seed`` instead. ``None`` falls back to a fresh, unseeded generator.
        """
        self._generator = generator

    def _rand(self, *shape: int) -> torch.Tensor:
        """Uniform [0, 1) floats on the model's device from the training generator."""
        if self._generator is None or self._generator.device != self.device:
            self._generator = torch.Generator(device=self.device)
            self._generator.seed()
        return torch.rand(shape, generator=self._generator, device=self.device)

    def _new_tables(
        self, init_std: float | None = None, generator: torch.Generator | None = None
    ) -> None:
        """Allocate the (n, d_max) ``user_emb`` and ``item_emb`` parameters.

        With ``init_std`` both are filled from N(0, init_std²), users first, drawn from
        ``generator``; without it the caller initialises them.
        """
        self.user_emb = nn.Parameter(torch.empty(self.n_users, self.d_max))
        self.item_emb = nn.Parameter(torch.empty(self.n_items, self.d_max))
        if init_std is not None:
            with torch.no_grad():
                self.user_emb.normal_(0.0, init_std, generator=generator)
                self.item_emb.normal_(0.0, init_std, generator=generator)

    # ------------------------------------------------------------------ sizes
    def set_sizes(
        self, user_sizes: np.ndarray | torch.Tensor, item_sizes: np.ndarray | torch.Tensor
    ) -> None:
        """Set every user's and item's embedding size (integers in ``[d_min, d_max]``).

        Raises:
            ValueError: on a wrong shape, a non-integer value or a size out of range.
        """
        users = self._check_sizes(user_sizes, self.n_users, "user_sizes")
        items = self._check_sizes(item_sizes, self.n_items, "item_sizes")
        self.user_sizes.copy_(users)
        self.item_sizes.copy_(items)
        self.invalidate_scoring()

    def _check_sizes(self, sizes: np.ndarray | torch.Tensor, n: int, what: str) -> torch.Tensor:
        try:
            # np.array copies: the caller's array may be read-only (e.g. a budget-log entry).
            t = torch.as_tensor(np.array(sizes) if not torch.is_tensor(sizes) else sizes)
        except (TypeError, ValueError, RuntimeError) as err:
            msg = f"{what} must be an array of integers, got {type(sizes).__name__}."
            raise InvalidArgumentError(msg) from err
        if t.dtype == torch.bool or t.is_complex():
            msg = f"{what} must be an array of integers, got dtype {t.dtype}."
            raise InvalidArgumentError(msg)
        if t.shape != (n,):
            msg = f"{what} must have shape ({n},), got {tuple(t.shape)}."
            raise InvalidArgumentError(msg)
        if t.is_floating_point():
            if not torch.all(torch.isfinite(t) & (t == torch.round(t))):
                bad = t[~(torch.isfinite(t) & (t == torch.round(t)))][0].item()
                msg = f"{what} must be whole numbers, got {bad!r}; round them first."
                raise InvalidArgumentError(msg)
        t = t.to(torch.long)
        if n == 0:
            return t.to(self.user_sizes.device)
        lo, hi = int(t.min()), int(t.max())
        if lo < self.d_min or hi > self.d_max:
            msg = f"{what} must lie in [{self.d_min}, {self.d_max}], got values in [{lo}, {hi}]."
            raise InvalidArgumentError(msg)
        return t.to(self.user_sizes.device)

    def user_mask(self) -> torch.Tensor:
        """(n_users, d_max) float mask with ones in the first ``d_u`` columns of row u."""
        return (self._dims < self.user_sizes[:, None]).to(torch.float32)

    def item_mask(self) -> torch.Tensor:
        """(n_items, d_max) float mask with ones in the first ``d_v`` columns of row v."""
        return (self._dims < self.item_sizes[:, None]).to(torch.float32)

    def active_width(self) -> int:
        """Columns any user or item keeps: ``max(sizes)`` (``d_max`` when ``full_width``)."""
        return self.size_masks()[0]

    def size_masks(self) -> tuple[int, torch.Tensor, torch.Tensor]:
        """``(W, user mask, item mask)``: the active width and the (n, W) float prefix masks.

        Built once per size assignment and reused by every batch: the key is the sizes
        buffers' storage and version counters, so any in-place write to them (``set_sizes``,
        ``load_state_dict``, the nested trainer's draws) or a move to another device rebuilds
        them. With ``full_width`` they are rebuilt at full width on every call.
        """
        us, its = self.user_sizes, self.item_sizes
        if self.full_width:
            self._masks_key = None
            return self.d_max, self.user_mask(), self.item_mask()
        key = (us.data_ptr(), us._version, its.data_ptr(), its._version)
        if self._masks is None or self._masks_key != key:
            largest = [int(t.max()) for t in (us, its) if t.numel()]
            width = max(largest, default=self.d_min)
            dims = self._dims[:width]
            self._masks = (
                width,
                (dims < us[:, None]).to(torch.float32),
                (dims < its[:, None]).to(torch.float32),
            )
            # A side whose every size is W has an all-ones mask: multiplying by it is the
            # identity (values and gradients bit for bit), so prefix_masked skips it (ES masks,
            # the full-size model).
            self._masks_all_ones = (bool((us >= width).all()), bool((its >= width).all()))
            self._masks_key = key
        return self._masks

    def prefix_masked(
        self, user_table: torch.Tensor, item_table: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``W`` columns of a (n_users, d_max) and a (n_items, d_max) table, masked.

        Returns:
            ((n_users, W), (n_items, W)) rows with columns ``>= size`` zeroed.
        """
        width, user_mask, item_mask = self.size_masks()
        users, items = user_table[:, :width], item_table[:, :width]
        ones_u, ones_i = (False, False) if self.full_width else self._masks_all_ones
        return (users if ones_u else users * user_mask, items if ones_i else items * item_mask)

    def l2_terms(self, nodes: torch.Tensor, *tables: torch.Tensor) -> torch.Tensor:
        """``Σ_i Σ_t ‖t[nodes[i]]‖²`` over row-aligned ``tables``, without gathering rows.

        Equal to gathering the batch's rows and squaring them: each row's squared norm times
        how often the batch uses it, ``bincount(nodes) · ‖row‖²`` (a gather of 30,000 rows
        becomes one pass over the table).
        """
        if self.full_width:
            return sum(gather_rows(t, nodes).square().sum() for t in tables)
        row_sq = sum(t.square().sum(1) for t in tables)
        counts = torch.bincount(nodes, minlength=tables[0].shape[0]).to(tables[0].dtype)
        return counts @ row_sq

    def masked_rows(self, table: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
        """Apply the prefix mask (paper Eq. 1–2) to rows of ``table``.

        Multiplying by the mask (rather than slicing) keeps every entity in one dense
        (n, d_max) tensor, so mixed sizes batch together, and the gradient of a masked
        entry is exactly zero.

        Args:
            table: (n, d_max) float rows, e.g. ``weight[idx]`` or a whole table.
            sizes: (n,) int64 sizes of those rows.

        Returns:
            (n, d_max) rows with columns ``>= size`` zeroed.
        """
        return table * (self._dims < sizes[:, None]).to(table.dtype)

    def invalidate_scoring(self) -> None:
        """Forget whatever :meth:`prepare_scoring` cached (sizes or weights changed)."""

    # ------------------------------------------------------ elementwise masks
    def parametrize_tables(self, make: Callable[[str, torch.Tensor], nn.Module]) -> None:
        """Reparameterise every masked table: reads of it return ``make(side, weight)(weight)``.

        The one hook for methods that prune individual weights rather than prefixes (PEP's
        soft thresholds, fixed elementwise masks). It uses ``torch.nn.utils.parametrize``, so
        the backbones' own code is unchanged and the prefix masks still apply on top. Learnable
        parts of the returned modules become parameters of the model (and of its optimiser).

        Args:
            make: Called once per table with its side (``"user"`` or ``"item"``) and weight.
        """
        for side, names in self.masked_tables.items():
            for name in names:
                parametrize.register_parametrization(self, name, make(side, getattr(self, name)))
        self.invalidate_scoring()

    def clear_parametrizations(self) -> None:
        """Remove every table parametrization, keeping the raw (unmasked) weights."""
        for names in self.masked_tables.values():
            for name in names:
                if parametrize.is_parametrized(self, name):
                    parametrize.remove_parametrizations(self, name, leave_parametrized=False)
        self.invalidate_scoring()

    def set_element_masks(
        self, user_mask: np.ndarray | torch.Tensor, item_mask: np.ndarray | torch.Tensor
    ) -> None:
        """Keep only the ``True`` entries of every table (unstructured pruning, e.g. PEP).

        Replaces any earlier table parametrization. The prefix sizes still apply, so with all
        sizes at ``d_max`` the masks alone decide; memory accounting
        (:meth:`kept_embedding_parameters`) then counts the entries both keep.

        Args:
            user_mask: (n_users, d_max) booleans.
            item_mask: (n_items, d_max) booleans.

        Raises:
            ValueError: on a wrong shape or a non-boolean dtype.
        """
        masks = {
            "user": self._check_mask(user_mask, self.n_users, "user_mask"),
            "item": self._check_mask(item_mask, self.n_items, "item_mask"),
        }
        self.clear_parametrizations()
        self.parametrize_tables(lambda side, _weight: ElementMask(masks[side]))

    def _check_mask(self, mask: np.ndarray | torch.Tensor, n: int, what: str) -> torch.Tensor:
        t = torch.as_tensor(np.asarray(mask) if not torch.is_tensor(mask) else mask)
        if t.dtype != torch.bool:
            msg = f"{what} must be a boolean array, got dtype {t.dtype}; use `mask != 0`."
            raise InvalidArgumentError(msg)
        if t.shape != (n, self.d_max):
            msg = f"{what} must have shape ({n}, {self.d_max}), got {tuple(t.shape)}."
            raise InvalidArgumentError(msg)
        return t.to(self.device)

    def element_masks(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The (users, items) boolean masks set by :meth:`set_element_masks`, or ``None``."""
        found = []
        for side in ("user", "item"):
            name = self.masked_tables[side][0]
            if not parametrize.is_parametrized(self, name):
                return None
            module = getattr(self.parametrizations, name)[0]
            if not isinstance(module, ElementMask):
                return None
            found.append(module.mask.bool())
        return found[0], found[1]

    # --------------------------------------------------------------- training
    @abc.abstractmethod
    def bpr_loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> BPRLoss:
        """BPR loss and L2 term for a batch of (user, positive item, negative item) indices."""

    @abc.abstractmethod
    def score(self, users: torch.Tensor) -> torch.Tensor:
        """(len(users), n_items) scores of ``users`` against every item (evaluation mode)."""

    def prepare_scoring(self) -> None:
        """Hook run once before a batch of :meth:`score` calls (e.g. propagate the graph once).

        The default does nothing; graph backbones cache their propagated tables here. The
        cache is dropped by :meth:`set_sizes`, :meth:`bpr_loss` and ``train()``.
        """

    def train(self, mode: bool = True) -> Backbone:
        """Switch train/eval mode; drops the scoring cache because weights may change."""
        self.invalidate_scoring()
        return super().train(mode)

    # ------------------------------------------------------------- accounting
    def kept_embedding_parameters(self) -> int:
        """``n_tables`` × Σ d over users and items: the embedding parameters the masks keep.

        With elementwise masks (:meth:`set_element_masks`), the entries kept by both the
        element mask and the prefix mask, so both kinds of pruning are counted the same way.
        """
        masks = self.element_masks()
        if masks is None:
            return self.n_tables * (int(self.user_sizes.sum()) + int(self.item_sizes.sum()))
        users, items = masks
        kept = (users & self.user_mask().bool()).sum() + (items & self.item_mask().bool()).sum()
        return self.n_tables * int(kept)

    def full_embedding_parameters(self) -> int:
        """Embedding parameters at full size: ``n_tables × d_max × (n_users + n_items)``."""
        return self.n_tables * self.d_max * (self.n_users + self.n_items)

    def sparsity(self) -> float:
        """Fraction of embedding parameters the masks zero out (the budget ``c`` of paper Eq. 5)."""
        return sparsity_of_kept(
            self.kept_embedding_parameters(), self.n_users + self.n_items, self.d_max, self.n_tables
        )

    def extra_parameters(self) -> int:
        """Parameters beyond the masked tables (GNN weights, MLP towers); 0 for MF/LightGCN."""
        return 0
