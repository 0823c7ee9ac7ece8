"""The normalised user–item graph and a fast, symmetric sparse propagation.

Graph backbones (LightGCN, NGCF) propagate embeddings with the symmetric-normalised adjacency
``Â = D^-1/2 A D^-1/2`` of the bipartite training graph, ``A = [[0, R], [Rᵀ, 0]]``
(users first, then items). Two facts make this fast on a CPU:

1. ``Â`` is stored once as a torch CSR tensor; a CSR ``sparse.mm`` is several times faster than
   the COO form the reference code uses (``benchmarks/bench_backbones.py`` measures it).
2. ``Â`` is symmetric, so the gradient of ``Â X`` with respect to ``X`` is ``Â · grad``: the
   same CSR product. Autograd's generic sparse backward is the slow part of the reference
   (144 ms for three layers), so :class:`SymmetricPropagate` supplies that backward itself.
"""

from __future__ import annotations

import abc
import warnings
import weakref
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from ciess_env.data.interactions import InteractionData, Interactions
from ciess_env.recommenders.base import Backbone, BPRLoss, gather_rows

__all__ = [
    "SymmetricPropagate",
    "adjacency_edge_ids",
    "cached_adjacency",
    "graph_memo",
    "normalized_adjacency",
    "propagate",
    "scipy_to_torch_csr",
]


def normalized_adjacency(train: Interactions, n_users: int, n_items: int) -> sp.csr_matrix:
    """Build ``D^-1/2 A D^-1/2`` of the bipartite training graph with scipy.sparse.

    Nodes ``0 .. n_users-1`` are users and ``n_users .. n_users+n_items-1`` items. A node with
    no training interactions has degree 0; its scale is set to 0 instead of ``inf`` (its row
    and column are empty anyway), so isolated users/items keep only their ego embedding.

    Args:
        train: Training interactions (each pair becomes one undirected edge).
        n_users: Number of users.
        n_items: Number of items.

    Returns:
        (n_users + n_items, n_users + n_items) float32 CSR matrix, symmetric, sorted indices.
    """
    n = n_users + n_items
    rows = np.concatenate([train.users, train.items + n_users])
    cols = np.concatenate([train.items + n_users, train.users])
    adj = sp.csr_matrix((np.ones(rows.shape[0], dtype=np.float32), (rows, cols)), shape=(n, n))
    deg = np.asarray(adj.sum(axis=1)).ravel()
    with np.errstate(divide="ignore"):
        inv_sqrt = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1e-12)), 0.0)
    scale = sp.diags(inv_sqrt.astype(np.float32))
    out = (scale @ adj @ scale).tocsr().astype(np.float32)
    out.sort_indices()
    return out


def adjacency_edge_ids(train: Interactions, n_users: int, n_items: int) -> np.ndarray:
    """Edge index (row of ``train``) of each stored entry of :func:`normalized_adjacency`.

    Both directions of an interaction share one id, so dropping ids keeps the matrix
    symmetric (what NGCF's edge dropout needs for the symmetric backward).

    Returns:
        (2·len(train),) int64, aligned with the sorted CSR entries of the adjacency.
    """
    n = n_users + n_items
    n_edges = len(train)
    rows = np.concatenate([train.users, train.items + n_users])
    cols = np.concatenate([train.items + n_users, train.users])
    # +1 so that edge 0 is not an explicit zero scipy might drop.
    ids = np.concatenate([np.arange(n_edges), np.arange(n_edges)]).astype(np.int64) + 1
    m = sp.csr_matrix((ids, (rows, cols)), shape=(n, n))
    m.sort_indices()
    return np.asarray(m.data, dtype=np.int64) - 1


def scipy_to_torch_csr(matrix: sp.csr_matrix, device: torch.device | str = "cpu") -> torch.Tensor:
    """Convert a scipy CSR matrix to a torch ``sparse_csr`` tensor (float32 values).

    Indices are int32 when every index fits in it (all data sets here), else int64.
    """
    matrix = matrix.tocsr()
    with warnings.catch_warnings():
        # torch calls its CSR support "beta"; we rely on it deliberately and test it.
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        # Some torch releases (seen on 2.11) announce that invariant checks are off, which is
        # exactly what check_invariants=False asks for.
        warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly")
        return _csr(matrix, device)


def _csr(matrix: sp.csr_matrix, device: torch.device | str) -> torch.Tensor:
    # int32 indices where they fit: the CPU sparse kernel (MKL) takes int32 and would
    # otherwise convert both index arrays on every product (the result is the same).
    small = max(matrix.nnz, *matrix.shape) < np.iinfo(np.int32).max
    index = np.int32 if small else np.int64
    return torch.sparse_csr_tensor(
        torch.from_numpy(matrix.indptr.astype(index)),
        torch.from_numpy(matrix.indices.astype(index)),
        torch.from_numpy(matrix.data.astype(np.float32)),
        size=matrix.shape,
        device=device,
        check_invariants=False,  # built by scipy, already valid; opting out explicitly
    )


#: id(data) -> (weak reference to data, its train split, {name: tensor}); see graph_memo.
_GRAPHS: dict[int, tuple[weakref.ref, Interactions, dict[str, Any]]] = {}


def graph_memo(data: InteractionData) -> dict[str, Any]:
    """Per-data-set store of what graph backbones derive from the training split.

    Every env step builds a fresh model on the same data; rebuilding the normalised adjacency
    each time costs a scipy pass over every interaction and a new CSR copy per model. The
    entry lives as long as ``data`` (a weak reference), and is rebuilt if ``data.train`` is
    replaced. The tensors in it are shared between models and never written in place.
    """
    key = id(data)
    entry = _GRAPHS.get(key)
    if entry is None or entry[0]() is not data or entry[1] is not data.train:
        entry = (weakref.ref(data), data.train, {})
        _GRAPHS[key] = entry
        weakref.finalize(data, _GRAPHS.pop, key, None)
    return entry[2]


def cached_adjacency(data: InteractionData) -> torch.Tensor:
    """:func:`normalized_adjacency` of ``data`` as a CPU torch CSR tensor, built once per data."""
    memo = graph_memo(data)
    if "adj" not in memo:
        adj = normalized_adjacency(data.train, data.n_users, data.n_items)
        memo["adj"] = scipy_to_torch_csr(adj)
    return memo["adj"]


class SymmetricPropagate(torch.autograd.Function):
    """``Â @ X`` for a *symmetric* sparse ``Â``, with the backward pass ``Â @ grad``.

    Autograd through ``torch.sparse.mm`` would form ``Âᵀ`` (and track a gradient for ``Â``);
    here ``Â`` is a constant and equals its transpose, so the backward is one more CSR product.
    The caller guarantees symmetry (both :func:`normalized_adjacency` and the NGCF edge
    dropout keep it).
    """

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, adj: torch.Tensor, x: torch.Tensor):  # noqa: D102
        ctx.adj = adj
        return torch.sparse.mm(adj, x)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor):  # noqa: D102
        return None, torch.sparse.mm(ctx.adj, grad.contiguous())


def propagate(adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Return ``adj @ x`` for a symmetric CSR ``adj`` (fast custom backward when ``x`` needs grad).

    Args:
        adj: (n, n) symmetric sparse CSR float32.
        x: (n, d) dense float32.

    Returns:
        (n, d) dense float32.
    """
    if x.requires_grad and torch.is_grad_enabled():
        return SymmetricPropagate.apply(adj, x)
    return torch.sparse.mm(adj, x)


class GraphBackbone(Backbone):
    """The shared half of LightGCN and NGCF: masked ego table → propagation → dot product.

    Subclasses set ``user_emb``, ``item_emb`` and ``l2`` and implement :meth:`readout`; the
    BPR loss, the L2 term on the batch's masked ego rows and the cached full-ranking scores
    are shared, so both models train and evaluate the same way.
    """

    def _init_graph(self, data: InteractionData) -> None:
        """Register the normalised training adjacency and an empty scoring cache."""
        # Not persistent: the graph is data, rebuilt from `data`, never stored in checkpoints.
        self.register_buffer("adj", cached_adjacency(data), persistent=False)
        self._cache: tuple[torch.Tensor, torch.Tensor] | None = None

    def ego(self) -> torch.Tensor:
        """(n_users + n_items, W) masked layer-0 table, users first (W: active width)."""
        return torch.cat(self.prefix_masked(self.user_emb, self.item_emb))

    @abc.abstractmethod
    def readout(self, ego: torch.Tensor) -> torch.Tensor:
        """Final representation of every node from the masked ego table, users first."""

    def propagate_all(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Final tables of every user and item: ((n_users, width), (n_items, width))."""
        out = self.readout(self.ego())
        return out[: self.n_users], out[self.n_users :]

    def bpr_loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> BPRLoss:
        """BPR loss (paper Eq. 4) and the L2 term on the batch's masked ego embeddings."""
        self.invalidate_scoring()
        ego = self.ego()
        out = self.readout(ego)
        # One gather for the whole batch; its backward is one index_add_ (see gather_rows).
        nodes = torch.cat([users, pos + self.n_users, neg + self.n_users])
        b = users.shape[0]
        u, p, n = gather_rows(out, nodes).split(b)
        bpr = F.softplus((u * n).sum(1) - (u * p).sum(1)).mean()
        reg = self.l2 * 0.5 * self.l2_terms(nodes, ego) / b
        return BPRLoss(bpr, reg)

    def invalidate_scoring(self) -> None:
        self._cache = None

    @torch.no_grad()
    def prepare_scoring(self) -> None:
        """Propagate once (eval mode: no dropout) and cache the final user/item tables."""
        self._cache = self.propagate_all()

    @torch.no_grad()
    def score(self, users: torch.Tensor) -> torch.Tensor:
        """(len(users), n_items) dot-product scores with the propagated tables."""
        if self._cache is None:
            self.prepare_scoring()
        all_u, all_i = self._cache
        return all_u[users] @ all_i.T
