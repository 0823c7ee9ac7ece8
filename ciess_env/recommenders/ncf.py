"""NeuMF (NCF) with both embedding tables prefix-masked."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ciess_env.data.interactions import InteractionData
from ciess_env.recommenders.base import Backbone, BPRLoss, gather_rows

__all__ = ["NCF"]


class NCF(Backbone):
    """NeuMF (He et al., WWW 2017): a GMF tower and a one-layer MLP tower, trained with BPR.

    ``ŷ_uv = h · [p_u ⊙ q_v ; ReLU(W [p'_u ; q'_v] + b)] + c`` where (p, q) is the GMF table
    and (p', q') the MLP table, each of width ``d_max``; ``W`` maps ``2·d_max → d_max``
    (paper §4). Both tables are masked with the same per-entity size, so ``n_tables = 2``.

    Full ranking is cheap because the first MLP layer splits: ``W [p'; q'] = W_u p' + W_i q'``.
    :meth:`prepare_scoring` computes ``B_i = W_i q'_i + b`` for every item once; :meth:`score`
    computes ``A_u = W_u p'_u`` per user and evaluates ``ReLU(A_u + B_i)`` over
    (users × item-chunk) blocks, never materialising the 2·d_max concatenation.

    Differences from the reference code:

    1. The GMF table is masked too. The reference masks only the MLP table yet counts the
       (dense) GMF table as kept parameters; masking both makes the accounting true.
    2. The L2 term covers the batch's masked embeddings of both tables
       (``l2 · 0.5 · ‖·‖² / batch``).

    Args:
        data: The data set (only its sizes are used).
        d_max: Table width and largest size (paper: 128).
        d_min: Smallest size (paper: 1).
        l2: L2 weight (paper §4: 1e-2).
        init_std: Standard deviation of the embedding initialisation (NeuMF: 0.01).
        score_chunk_elems: Target size of one (users × items × d_max) scoring block, in
            elements; bounds evaluation memory, and blocks that fit in the CPU cache (2 MB by
            default) score faster than large ones.
        generator: Seeds the initialisation.
        device: Torch device.
    """

    name = "ncf"
    n_tables = 2
    masked_tables: ClassVar[dict[str, tuple[str, ...]]] = {
        "user": ("gmf_user", "mlp_user"),
        "item": ("gmf_item", "mlp_item"),
    }

    def __init__(
        self,
        data: InteractionData,
        *,
        d_max: int = 128,
        d_min: int = 1,
        l2: float = 1e-2,
        init_std: float = 0.01,
        score_chunk_elems: int = 1 << 19,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__(data.n_users, data.n_items, d_max=d_max, d_min=d_min, device=device)
        self.l2 = float(l2)
        self.score_chunk_elems = int(score_chunk_elems)
        d = self.d_max
        self.gmf_user = nn.Parameter(torch.empty(self.n_users, d))
        self.gmf_item = nn.Parameter(torch.empty(self.n_items, d))
        self.mlp_user = nn.Parameter(torch.empty(self.n_users, d))
        self.mlp_item = nn.Parameter(torch.empty(self.n_items, d))
        self.w_user = nn.Parameter(torch.empty(d, d))  # first MLP layer, user half
        self.w_item = nn.Parameter(torch.empty(d, d))  # first MLP layer, item half
        self.b_mlp = nn.Parameter(torch.zeros(d))
        self.h_gmf = nn.Parameter(torch.empty(d))  # prediction layer, GMF half
        self.h_mlp = nn.Parameter(torch.empty(d))  # prediction layer, MLP half
        self.b_out = nn.Parameter(torch.zeros(()))
        with torch.no_grad():
            for t in (self.gmf_user, self.gmf_item, self.mlp_user, self.mlp_item):
                t.normal_(0.0, init_std, generator=generator)
            bound = math.sqrt(6.0 / (2 * d + d))  # Xavier for the (d, 2d) layer
            self.w_user.uniform_(-bound, bound, generator=generator)
            self.w_item.uniform_(-bound, bound, generator=generator)
            bound = math.sqrt(6.0 / (2 * d + 1))  # Xavier for the (1, 2d) prediction layer
            self.h_gmf.uniform_(-bound, bound, generator=generator)
            self.h_mlp.uniform_(-bound, bound, generator=generator)
        self._item_cache: tuple[torch.Tensor, torch.Tensor] | None = None
        self.to(device)

    def extra_parameters(self) -> int:
        """The MLP layer (2·d_max·d_max + d_max) and the prediction layer (2·d_max + 1)."""
        return sum(
            p.numel()
            for p in (self.w_user, self.w_item, self.b_mlp, self.h_gmf, self.h_mlp, self.b_out)
        )

    def _tables(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Masked GMF and MLP tables at the active width: gmf user, mlp user, gmf/mlp item."""
        gu, gi = self.prefix_masked(self.gmf_user, self.gmf_item)
        mu, mi = self.prefix_masked(self.mlp_user, self.mlp_item)
        return gu, mu, gi, mi

    def _users(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gu, mu, _, _ = self._tables()
        return gather_rows(gu, users), gather_rows(mu, users)

    def _items(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _, _, gi, mi = self._tables()
        return gather_rows(gi, items), gather_rows(mi, items)

    def _mlp_in(self, rows: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """``rows @ weight.T`` over the rows' active columns (the others multiply zeros)."""
        return rows @ weight[:, : rows.shape[1]].T

    def _pair_scores(self, gu, mu, gi, mi) -> torch.Tensor:
        hidden = F.relu(self._mlp_in(mu, self.w_user) + self._mlp_in(mi, self.w_item) + self.b_mlp)
        return (gu * gi) @ self.h_gmf[: gu.shape[1]] + hidden @ self.h_mlp + self.b_out

    # --------------------------------------------------------------- training
    def bpr_loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> BPRLoss:
        """BPR loss (paper Eq. 4) and the L2 term on the batch's masked embeddings."""
        self.invalidate_scoring()
        tu, tmu, ti, tmi = self._tables()
        items = torch.cat([pos, neg])
        gu, mu = gather_rows(tu, users), gather_rows(tmu, users)
        gi, mi = gather_rows(ti, items), gather_rows(tmi, items)
        (gp, gn), (mp, mn) = gi.split(users.shape[0]), mi.split(users.shape[0])
        bpr = F.softplus(self._pair_scores(gu, mu, gn, mn) - self._pair_scores(gu, mu, gp, mp))
        sq = self.l2_terms(users, tu, tmu) + self.l2_terms(items, ti, tmi)
        return BPRLoss(bpr.mean(), self.l2 * 0.5 * sq / users.shape[0])

    # -------------------------------------------------------------- scoring
    def invalidate_scoring(self) -> None:  # noqa: D102 (documented in Backbone)
        self._item_cache = None

    @torch.no_grad()
    def prepare_scoring(self) -> None:
        """Cache every item's GMF row and MLP projection ``W_i q'_i + b``."""
        _, _, gi, mi = self._tables()
        self._item_cache = (gi, self._mlp_in(mi, self.w_item) + self.b_mlp)

    @torch.no_grad()
    def score(self, users: torch.Tensor) -> torch.Tensor:
        """(len(users), n_items) NeuMF scores, computed in (users × item-chunk) blocks."""
        if self._item_cache is None:
            self.prepare_scoring()
        gi, bi = self._item_cache
        gu, mu = self._users(users)
        out = (gu * self.h_gmf[: gu.shape[1]]) @ gi.T + self.b_out  # GMF: Σ_k h_k p_uk q_ik
        au = self._mlp_in(mu, self.w_user)  # (B, d)
        chunk = max(1, self.score_chunk_elems // max(1, users.shape[0] * self.d_max))
        for start in range(0, self.n_items, chunk):
            stop = min(start + chunk, self.n_items)
            hidden = F.relu(au[:, None, :] + bi[None, start:stop, :])  # (B, c, d)
            out[:, start:stop] += hidden @ self.h_mlp
        return out
