"""The interface every masked-embedding backbone implements.

A backbone owns one user table and one item table of width ``d_max`` and a per-entity size
``d ∈ [d_min, d_max]``; only the first ``d`` dimensions of a row are used (the prefix mask of
paper Eq. 1–2). Sizes are buffers, so changing them costs one small tensor write: the tables,
the graph and the optimiser state are never rebuilt.
"""

from __future__ import annotations

import abc
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

__all__ = ["Backbone", "BPRLoss"]


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
        if not 1 <= d_min <= d_max:
            msg = f"d_min and d_max must satisfy 1 <= d_min <= d_max, got d_min={d_min}, d_max={d_max}."
            raise ValueError(msg)
        self.n_users = int(n_users)
        self.n_items = int(n_items)
        self.d_max = int(d_max)
        self.d_min = int(d_min)
        self.register_buffer("user_sizes", torch.full((n_users,), d_max, dtype=torch.long))
        self.register_buffer("item_sizes", torch.full((n_items,), d_max, dtype=torch.long))
        self.register_buffer("_dims", torch.arange(d_max))

    # ------------------------------------------------------------------ sizes
    def set_sizes(self, user_sizes: np.ndarray | torch.Tensor, item_sizes: np.ndarray | torch.Tensor) -> None:
        """Set every user's and item's embedding size (integers in ``[d_min, d_max]``).

        Raises:
            ValueError: on a wrong shape, a non-integer value or a size out of range.
        """
        self.user_sizes.copy_(self._check_sizes(user_sizes, self.n_users, "user_sizes"))
        self.item_sizes.copy_(self._check_sizes(item_sizes, self.n_items, "item_sizes"))

    def _check_sizes(self, sizes: np.ndarray | torch.Tensor, n: int, what: str) -> torch.Tensor:
        t = torch.as_tensor(np.asarray(sizes) if not torch.is_tensor(sizes) else sizes)
        if t.shape != (n,):
            msg = f"{what} must have shape ({n},), got {tuple(t.shape)}."
            raise ValueError(msg)
        if t.is_floating_point():
            if not torch.all(t == torch.round(t)):
                msg = f"{what} must be whole numbers; round them first."
                raise ValueError(msg)
        t = t.to(torch.long)
        lo, hi = int(t.min()), int(t.max())
        if lo < self.d_min or hi > self.d_max:
            msg = f"{what} must lie in [{self.d_min}, {self.d_max}], got values in [{lo}, {hi}]."
            raise ValueError(msg)
        return t.to(self.user_sizes.device)

    def user_mask(self) -> torch.Tensor:
        """(n_users, d_max) float mask with ones in the first ``d_u`` columns of row u."""
        return (self._dims < self.user_sizes[:, None]).to(torch.float32)

    def item_mask(self) -> torch.Tensor:
        """(n_items, d_max) float mask with ones in the first ``d_v`` columns of row v."""
        return (self._dims < self.item_sizes[:, None]).to(torch.float32)

    # --------------------------------------------------------------- training
    @abc.abstractmethod
    def bpr_loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> BPRLoss:
        """BPR loss and L2 term for a batch of (user, positive item, negative item) indices."""

    @abc.abstractmethod
    def score(self, users: torch.Tensor) -> torch.Tensor:
        """(len(users), n_items) scores of ``users`` against every item (evaluation mode)."""

    def prepare_scoring(self) -> None:
        """Hook run once before a batch of :meth:`score` calls (e.g. propagate the graph once).

        The default does nothing; graph backbones cache their propagated tables here.
        """

    # ------------------------------------------------------------- accounting
    def kept_embedding_parameters(self) -> int:
        """``n_tables`` × Σ d over users and items: the embedding parameters the masks keep."""
        return self.n_tables * (int(self.user_sizes.sum()) + int(self.item_sizes.sum()))

    def full_embedding_parameters(self) -> int:
        """Embedding parameters at full size: ``n_tables × d_max × (n_users + n_items)``."""
        return self.n_tables * self.d_max * (self.n_users + self.n_items)

    def sparsity(self) -> float:
        """Fraction of embedding parameters the masks zero out (the budget ``c`` of paper Eq. 5)."""
        return 1.0 - self.kept_embedding_parameters() / self.full_embedding_parameters()

    def extra_parameters(self) -> int:
        """Parameters beyond the masked tables (GNN weights, MLP towers); 0 for MF/LightGCN."""
        return 0
