"""Matrix factorisation: the dot product of masked embeddings (the fastest backbone)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ciess_env.data.interactions import InteractionData
from ciess_env.recommenders.base import Backbone, BPRLoss, gather_rows

__all__ = ["MF"]


class MF(Backbone):
    """BPR-MF on prefix-masked tables: ``ŷ_uv = ⟨e_u ⊙ m_u, e_v ⊙ m_v⟩``.

    Not one of the paper's backbones; it is here as the cheapest model for tests, demos and
    fast proxies. It uses LightGCN's initialisation and L2 convention.

    Args:
        data: The data set (only its sizes are used).
        d_max: Table width and largest size.
        d_min: Smallest size.
        l2: L2 weight on the batch's masked embeddings, ``l2 · 0.5 · ‖·‖² / batch``.
        init_std: Standard deviation of the normal initialisation.
        generator: Seeds the initialisation.
        device: Torch device.
    """

    name = "mf"

    def __init__(
        self,
        data: InteractionData,
        *,
        d_max: int = 128,
        d_min: int = 1,
        l2: float = 1e-4,
        init_std: float = 0.1,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__(data.n_users, data.n_items, d_max=d_max, d_min=d_min, device=device)
        self.l2 = float(l2)
        self._new_tables(init_std, generator)
        self.to(device)

    def bpr_loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> BPRLoss:
        """BPR loss (paper Eq. 4) and the L2 term on the batch's masked embeddings."""
        user_table, item_table = self.prefix_masked(self.user_emb, self.item_emb)
        items = torch.cat([pos, neg])
        u = gather_rows(user_table, users)
        p, n = gather_rows(item_table, items).split(users.shape[0])
        bpr = F.softplus((u * n).sum(1) - (u * p).sum(1)).mean()
        reg = self.l2_terms(users, user_table) + self.l2_terms(items, item_table)
        return BPRLoss(bpr, self.l2 * 0.5 * reg / users.shape[0])

    @torch.no_grad()
    def score(self, users: torch.Tensor) -> torch.Tensor:
        """(len(users), n_items) dot products of masked embeddings (active width only)."""
        user_table, item_table = self.prefix_masked(self.user_emb, self.item_emb)
        return user_table[users] @ item_table.T
