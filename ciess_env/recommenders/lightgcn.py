"""LightGCN with prefix-masked ego embeddings (the CIESS reference's main backbone)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ciess_env.data.interactions import InteractionData
from ciess_env.recommenders.base import Backbone, BPRLoss
from ciess_env.recommenders.graph import normalized_adjacency, propagate, scipy_to_torch_csr

__all__ = ["LightGCN"]


class LightGCN(Backbone):
    """LightGCN (He et al., SIGIR 2020) on a masked ego table (paper §1.1, §4).

    The ego (layer-0) table is masked, then propagated ``n_layers`` times with the normalised
    adjacency; the readout is the mean of the layer outputs and the score a dot product. The
    propagated embeddings are dense, but the stored parameters are sparse (paper §1.1).

    Differences from the reference code:

    1. The propagation uses a CSR adjacency and a custom symmetric backward
       (:mod:`ciess_env.recommenders.graph`), ≈3× faster per batch; the maths is identical.
    2. Sizes are buffers: changing them rewrites two small tensors; nothing is rebuilt.

    Args:
        data: The data set; its training split defines the graph.
        d_max: Table width and largest size (paper: 128).
        d_min: Smallest size (paper: 1).
        n_layers: Propagation layers (paper §4: 3).
        l2: L2 weight on the batch's masked ego embeddings, LightGCN style
            ``l2 · 0.5 · ‖·‖² / batch`` (paper §4: 1e-4).
        init_std: Standard deviation of the normal initialisation. The reference's "N(0, 0.01)"
            is LightGCN-PyTorch's ``normal_(std=0.1)``, i.e. variance 0.01.
        generator: Seeds the initialisation (``make_backbone`` passes one seeded from ``seed``).
        device: Torch device.
    """

    name = "lightgcn"

    def __init__(
        self,
        data: InteractionData,
        *,
        d_max: int = 128,
        d_min: int = 1,
        n_layers: int = 3,
        l2: float = 1e-4,
        init_std: float = 0.1,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__(data.n_users, data.n_items, d_max=d_max, d_min=d_min, device=device)
        if n_layers < 0:
            msg = f"n_layers must be >= 0, got {n_layers!r}."
            raise ValueError(msg)
        self.n_layers = int(n_layers)
        self.l2 = float(l2)
        self.user_emb = nn.Parameter(torch.empty(self.n_users, self.d_max))
        self.item_emb = nn.Parameter(torch.empty(self.n_items, self.d_max))
        with torch.no_grad():
            self.user_emb.normal_(0.0, init_std, generator=generator)
            self.item_emb.normal_(0.0, init_std, generator=generator)
        adj = normalized_adjacency(data.train, data.n_users, data.n_items)
        # Not persistent: the graph is data, rebuilt from `data`, never stored in checkpoints.
        self.register_buffer("adj", scipy_to_torch_csr(adj), persistent=False)
        self._cache: tuple[torch.Tensor, torch.Tensor] | None = None
        self.to(device)

    # ------------------------------------------------------------ propagation
    def ego(self) -> torch.Tensor:
        """(n_users + n_items, d_max) masked layer-0 table, users first."""
        return torch.cat(
            [
                self.masked_rows(self.user_emb, self.user_sizes),
                self.masked_rows(self.item_emb, self.item_sizes),
            ]
        )

    def readout(self, ego: torch.Tensor) -> torch.Tensor:
        """Layer-mean readout ``mean(ego, Âego, …, Â^L ego)``, (n_users + n_items, d_max)."""
        x, acc = ego, ego
        for _ in range(self.n_layers):
            x = propagate(self.adj, x)
            acc = acc + x
        return acc / (self.n_layers + 1)

    def propagate_all(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Final tables of every user and item: ((n_users, d_max), (n_items, d_max))."""
        out = self.readout(self.ego())
        return out[: self.n_users], out[self.n_users :]

    # --------------------------------------------------------------- training
    def bpr_loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> BPRLoss:
        """BPR loss (paper Eq. 4) and the L2 term on the batch's masked ego embeddings."""
        self.invalidate_scoring()
        ego = self.ego()
        out = self.readout(ego)
        # One gather per table: F.embedding's backward is much cheaper than indexing's.
        nodes = torch.cat([users, pos + self.n_users, neg + self.n_users])
        b = users.shape[0]
        u, p, n = F.embedding(nodes, out).split(b)
        bpr = F.softplus((u * n).sum(1) - (u * p).sum(1)).mean()
        reg = self.l2 * 0.5 * F.embedding(nodes, ego).square().sum() / b
        return BPRLoss(bpr, reg)

    # -------------------------------------------------------------- scoring
    def invalidate_scoring(self) -> None:  # noqa: D102 (documented in Backbone)
        self._cache = None

    @torch.no_grad()
    def prepare_scoring(self) -> None:
        """Propagate once and cache the final user/item tables for :meth:`score`."""
        self._cache = self.propagate_all()

    @torch.no_grad()
    def score(self, users: torch.Tensor) -> torch.Tensor:
        """(len(users), n_items) dot-product scores with the propagated tables."""
        if self._cache is None:
            self.prepare_scoring()
        all_u, all_i = self._cache
        return all_u[users] @ all_i.T
