"""NGCF with prefix-masked ego embeddings."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ciess_env.checks import check_int
from ciess_env.data.interactions import InteractionData
from ciess_env.errors import InvalidArgumentError
from ciess_env.recommenders.graph import (
    GraphBackbone,
    adjacency_edge_ids,
    graph_memo,
    propagate,
)

__all__ = ["NGCF"]


class NGCF(GraphBackbone):
    """Neural Graph Collaborative Filtering (Wang et al., SIGIR 2019) on a masked ego table.

    Layer ``l`` computes ``E' = LeakyReLU_0.2(W1(ÂE + E) + W2(ÂE ⊙ E))`` (NGCF Eq. 7 with
    ``L + I``), message dropout on ``E'``, then L2-normalises it for the readout; the final
    representation concatenates the ego table and every normalised layer output
    (width ``(n_layers + 1) · d_max``) and the score is a dot product. Settings follow
    paper §4 (3 layers of width 128, dropouts 0.1, L2 1e-3, Xavier initialisation).

    Differences from the reference code:

    1. Node and message dropout are active in training only. The reference leaves them on
       during evaluation, which makes its evaluation noisy; we evaluate the deterministic model.
    2. "Node dropout" is implemented as the reference does it in spirit — dropping entries of
       the normalised adjacency, rescaled by ``1/(1-p)`` — but both directions of an
       interaction are dropped together so the matrix stays symmetric and the fast
       symmetric backward applies; the sparsity pattern is fixed and dropped entries are
       zeroed in place (no per-batch rebuild).
    3. The L2 term is on the batch's masked ego embeddings (as LightGCN), so it only acts on
       kept parameters.

    Args:
        data: The data set; its training split defines the graph.
        d_max: Table width, layer width and largest size (paper: 128).
        d_min: Smallest size (paper: 1).
        n_layers: Propagation layers (paper §4: 3).
        node_dropout: Fraction of interactions dropped from the adjacency per batch (0.1).
        message_dropout: Dropout on each layer's output (0.1).
        l2: L2 weight, ``l2 · 0.5 · ‖ego‖² / batch`` (paper §4: 1e-3).
        generator: Seeds the initialisation.
        device: Torch device.
    """

    name = "ngcf"

    def __init__(
        self,
        data: InteractionData,
        *,
        d_max: int = 128,
        d_min: int = 1,
        n_layers: int = 3,
        node_dropout: float = 0.1,
        message_dropout: float = 0.1,
        l2: float = 1e-3,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__(data.n_users, data.n_items, d_max=d_max, d_min=d_min, device=device)
        for what, p in (("node_dropout", node_dropout), ("message_dropout", message_dropout)):
            if not 0.0 <= p < 1.0:
                msg = f"{what} must lie in [0, 1), got {p!r}."
                raise InvalidArgumentError(msg)
        self.n_layers = check_int(n_layers, "n_layers", minimum=0)
        self.node_dropout = float(node_dropout)
        self.message_dropout = float(message_dropout)
        self.l2 = float(l2)
        self._new_tables()  # Xavier-initialised below, with the layer weights
        self.w1 = nn.ModuleList(nn.Linear(self.d_max, self.d_max) for _ in range(self.n_layers))
        self.w2 = nn.ModuleList(nn.Linear(self.d_max, self.d_max) for _ in range(self.n_layers))
        with torch.no_grad():
            for table in (self.user_emb, self.item_emb, *self._weights()):
                _xavier_(table, generator)
            for lin in (*self.w1, *self.w2):
                lin.bias.zero_()
        self._init_graph(data)
        memo = graph_memo(data)
        if "edge_ids" not in memo:
            ids = adjacency_edge_ids(data.train, data.n_users, data.n_items)
            memo["edge_ids"] = torch.from_numpy(ids)
        self.register_buffer("_edge_ids", memo["edge_ids"], persistent=False)
        self.n_edges = len(data.train)
        self.to(device)

    def _weights(self) -> list[torch.Tensor]:
        return [lin.weight for lin in (*self.w1, *self.w2)]

    def extra_parameters(self) -> int:
        """Weights and biases of the 2 × ``n_layers`` square transforms."""
        return sum(p.numel() for lin in (*self.w1, *self.w2) for p in lin.parameters())

    # ------------------------------------------------------------ propagation
    def _dropped_adjacency(self) -> torch.Tensor:
        """The adjacency with a random ``node_dropout`` share of interactions zeroed."""
        keep = (self._rand(self.n_edges) >= self.node_dropout).to(self.adj.values().dtype)
        values = self.adj.values() * keep[self._edge_ids] / (1.0 - self.node_dropout)
        return torch.sparse_csr_tensor(
            self.adj.crow_indices(),
            self.adj.col_indices(),
            values,
            size=self.adj.shape,
            check_invariants=False,
        )

    def readout(self, ego: torch.Tensor) -> torch.Tensor:
        """Concatenated readout ``[ego, ‖E1‖, …, ‖EL‖]``, (n_users + n_items, W + L·d_max).

        Only the first layer reads the masked table: its propagation and its input columns
        run over the ego's ``W`` active columns (the weights' other input columns would
        multiply zeros). ``W1``/``W2`` mix all columns, so later layers are ``d_max`` wide.
        """
        training = self.training
        adj = self._dropped_adjacency() if training and self.node_dropout > 0 else self.adj
        x, outs = ego, [ego]
        for w1, w2 in zip(self.w1, self.w2, strict=True):
            side = propagate(adj, x)
            width = x.shape[1]
            x = F.leaky_relu(
                F.linear(side + x, w1.weight[:, :width], w1.bias)
                + F.linear(side * x, w2.weight[:, :width], w2.bias),
                negative_slope=0.2,
            )
            if training and self.message_dropout > 0:
                keep = self._rand(*x.shape) >= self.message_dropout
                x = x * keep / (1.0 - self.message_dropout)
            outs.append(F.normalize(x, p=2, dim=1))
        return torch.cat(outs, dim=1)


def _xavier_(t: torch.Tensor, generator: torch.Generator | None) -> None:
    """Xavier-uniform initialisation in place, drawn from ``generator``."""
    fan_out, fan_in = t.shape
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    t.uniform_(-bound, bound, generator=generator)
