"""Full-ranking evaluation (Recall/NDCG@K, paper Eq. 8–9) and memory accounting.

Evaluation ranks *all* items for every user (no sampled candidates), hides known positives by
setting their scores to ``-inf`` (training positives; for the test split also validation
positives), takes one top-``max(ks)`` per user batch and computes every metric from the
(users × max K) hit matrix.

Definitions (those of the LightGCN and CIESS code):

* ``Recall@K = hits@K / |truth|``.
* ``NDCG@K = DCG@K / IDCG@K`` with ``DCG@K = Σ_{r<K} hit_r / log2(r + 2)`` and the ideal DCG
  over ``min(K, |truth|)`` relevant items.
* Per-user quality (Eq. 8): the mean of Recall and NDCG at every K (six numbers for
  K = 5, 10, 20).
* Per-item quality (Eq. 9): the mean quality of the users who interacted with the item in
  *training*; 0 for an item without such users.
* Users without ground-truth items in the split have no defined Recall/NDCG: their
  per-user values are 0, ``has_truth`` is ``False``, and they are left out of every mean and
  of the item averages (Eq. 9).
* ``-inf`` marks an item as skipped, in both :func:`top_k_items` and :func:`evaluate_scores`
  (a scorer may mark items it cannot or must not recommend): a skipped item is never a hit,
  even when fewer than K items are left to fill the top K. NaN is an error, not a ranking: it
  would sort above every number in ``torch.topk`` and give a diverged model a plausible
  Recall, so both functions raise :class:`~ciess_env.errors.NonFiniteError` on it;
  :func:`evaluate_scores` also refuses ``+inf``, which a model's scores only reach by
  diverging.
* Ties: items with equal scores are ranked by increasing item index. This is exact, not
  "whatever ``torch.topk`` returns": the K-th largest score is found with ``topk``, all
  items strictly above it are kept, the tied items at the boundary are taken lowest index
  first, and the K kept items are sorted by score with a stable sort.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import scipy.sparse as sp
import torch

from ciess_env.budget import kept_parameters, sparsity
from ciess_env.data.interactions import InteractionData, SplitName
from ciess_env.errors import InvalidArgumentError, NonFiniteError

__all__ = [
    "EvalResult",
    "evaluate",
    "evaluate_popularity",
    "evaluate_scores",
    "kept_parameters",
    "popularity_scores",
    "ragged_storage_bytes",
    "sparsity",
    "top_k_items",
]


class _Scorer(Protocol):
    def __call__(self, users: torch.Tensor) -> torch.Tensor: ...


@dataclass
class EvalResult:
    """Per-user and per-item full-ranking metrics of one model on one split.

    Attributes:
        split: The ground-truth split ("validation" or "test").
        ks: The cut-offs, ascending.
        user_recall: K → (n_users,) float64 Recall@K per user (0 where ``has_truth`` is False).
        user_ndcg: K → (n_users,) float64 NDCG@K per user (0 where ``has_truth`` is False).
        user_quality: (n_users,) float64 per-user quality, paper Eq. 8.
        item_quality: (n_items,) float64 per-item quality, paper Eq. 9.
        has_truth: (n_users,) bool, whether the user has ground truth in ``split``.
        item_has_users: (n_items,) bool, whether any training user with ground truth rated it.
        seconds: Wall-clock seconds of the evaluation.
    """

    split: str
    ks: tuple[int, ...]
    user_recall: dict[int, np.ndarray]
    user_ndcg: dict[int, np.ndarray]
    user_quality: np.ndarray
    item_quality: np.ndarray
    has_truth: np.ndarray
    item_has_users: np.ndarray
    seconds: float = 0.0

    def recall(self, k: int) -> float:
        """Mean Recall@k over users with ground truth."""
        return _masked_mean(self.user_recall[k], self.has_truth)

    def ndcg(self, k: int) -> float:
        """Mean NDCG@k over users with ground truth."""
        return _masked_mean(self.user_ndcg[k], self.has_truth)

    @property
    def mean_user_quality(self) -> float:
        """Mean per-user quality over users with ground truth (the paper's "average")."""
        return _masked_mean(self.user_quality, self.has_truth)

    @property
    def mean_item_quality(self) -> float:
        """Mean per-item quality over items with at least one training user with truth."""
        return _masked_mean(self.item_quality, self.item_has_users)

    @classmethod
    def average(cls, results: Sequence[EvalResult]) -> EvalResult:
        """Entity-wise mean of several evaluations on the same split (e.g. over seeds).

        Every mean metric of the result is the mean of the inputs' (the users with truth are
        the same in all of them).

        Raises:
            ValueError: if ``results`` is empty or the evaluations are of different splits,
                cut-offs or users.
        """
        if not results:
            msg = "`results` must hold at least one EvalResult, got none."
            raise InvalidArgumentError(msg)
        first = results[0]
        for r in results[1:]:
            if (r.split, r.ks) != (first.split, first.ks) or not np.array_equal(
                r.has_truth, first.has_truth
            ):
                msg = (
                    "`results` must be evaluations of the same split, cut-offs and users, got "
                    f"{first.split!r} {first.ks} and {r.split!r} {r.ks}."
                )
                raise InvalidArgumentError(msg)
        if len(results) == 1:
            return first

        def mean(arrays: list[np.ndarray]) -> np.ndarray:
            return np.mean(np.stack(arrays), axis=0)

        return cls(
            split=first.split,
            ks=first.ks,
            user_recall={k: mean([r.user_recall[k] for r in results]) for k in first.ks},
            user_ndcg={k: mean([r.user_ndcg[k] for r in results]) for k in first.ks},
            user_quality=mean([r.user_quality for r in results]),
            item_quality=mean([r.item_quality for r in results]),
            has_truth=first.has_truth,
            item_has_users=first.item_has_users,
            seconds=float(sum(r.seconds for r in results)),
        )

    def summary(self) -> dict[str, float]:
        """Flat dict of the means, e.g. ``{"recall@20": ..., "ndcg@20": ..., ...}``."""
        out = {f"recall@{k}": self.recall(k) for k in self.ks}
        out |= {f"ndcg@{k}": self.ndcg(k) for k in self.ks}
        out["user_quality"] = self.mean_user_quality
        out["item_quality"] = self.mean_item_quality
        return out


def _masked_mean(values: np.ndarray, mask: np.ndarray) -> float:
    return float(values[mask].mean()) if mask.any() else 0.0


# ---------------------------------------------------------------- ranking
def top_k_items(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` best items per row, ties broken by increasing item index.

    ``torch.topk`` alone leaves the order of equal scores unspecified. Ties *inside* the top k
    are ordered by a stable sort of the (ascending) indices; only rows with a tie that straddles
    the k-th place (rare with float scores, common when hidden items pad a short row) take the
    exact, slower path over the whole row.

    Args:
        scores: (B, n_items) float scores; ``-inf`` marks hidden items.
        k: How many items (at most ``n_items``).

    Returns:
        (B, k) int64 item indices, best first.

    Raises:
        NonFiniteError: If a score is NaN (``torch.topk`` would rank it first).
    """
    if scores.numel() and torch.isnan(scores.max()):  # one pass; max propagates NaN
        nan = torch.isnan(scores)
        rows = nan.any(dim=1).nonzero()[:, 0]
        msg = (
            f"`scores` must not be NaN, got {int(nan.sum())} NaN in {rows.numel()} row(s) "
            f"(first: row {int(rows[0])}); mark items to skip with -inf instead."
        )
        raise NonFiniteError(msg)
    return _top_k(scores, k)


def _top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """:func:`top_k_items` on scores already known to hold no NaN (no second scan)."""
    n = scores.shape[1]
    k = min(k, n)
    # One extra place tells whether the k-th score is tied with one left out.
    top = torch.topk(scores, min(k + 1, n), dim=1)
    idx = torch.sort(top.indices[:, :k], dim=1).values  # ascending item index
    order = torch.sort(scores.gather(1, idx), dim=1, descending=True, stable=True).indices
    idx = idx.gather(1, order)
    if k == n:
        return idx
    straddling = (top.values[:, k] == top.values[:, k - 1]).nonzero()[:, 0]
    if straddling.numel():
        idx[straddling] = _top_k_exact(scores[straddling], k)
    return idx


def _top_k_exact(scores: torch.Tensor, k: int) -> torch.Tensor:
    """:func:`top_k_items` for rows whose k-th place is tied: one pass over the whole row."""
    b = scores.shape[0]
    threshold = torch.topk(scores, k, dim=1).values[:, -1:]
    above = scores > threshold
    need = k - above.sum(dim=1, keepdim=True)
    tied = scores == threshold
    chosen = above | (tied & (torch.cumsum(tied, dim=1) <= need))
    idx = chosen.nonzero()[:, 1].view(b, k)  # ascending item index within each row
    order = torch.sort(scores.gather(1, idx), dim=1, descending=True, stable=True).indices
    return idx.gather(1, order)


def _rows(matrix: sp.csr_matrix, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(batch row, column) pairs of the nonzeros of ``matrix[users]``."""
    sub = matrix[users]
    rows = np.repeat(np.arange(users.shape[0]), np.diff(sub.indptr))
    return rows, sub.indices.astype(np.int64)


def evaluate_scores(
    scorer: _Scorer,
    data: InteractionData,
    split: SplitName = "validation",
    *,
    ks: tuple[int, ...] = (5, 10, 20),
    batch_size: int | None = None,
    device: torch.device | str = "cpu",
) -> EvalResult:
    """Full-ranking metrics of any scorer ``users -> (len(users), n_items) scores``.

    Args:
        scorer: Returns a fresh (writable) float tensor of scores for a batch of users;
            ``-inf`` skips an item (as in :func:`top_k_items`), NaN and ``+inf`` are refused.
        data: The data set.
        split: Ground truth: "validation" (search) or "test" (final report; validation
            positives are hidden too). "train" is rejected.
        ks: Cut-offs (paper: 5, 10, 20).
        batch_size: Users per scoring batch; default keeps one (batch × n_items) float
            block near 32 MB (≈ 220 users on Yelp2018).
        device: Device the user index tensors are put on (the scorer's device).

    Returns:
        The per-user and per-item metrics.

    Raises:
        ValueError: on an unknown split, ``"train"``, or bad ``ks``.
        NonFiniteError: If the scorer returns NaN or ``+inf`` (a diverged model).
    """
    if split not in ("validation", "test"):
        msg = f"split must be 'validation' or 'test', got {split!r}."
        raise InvalidArgumentError(msg)
    ks = tuple(sorted({int(k) for k in ks}))
    if not ks or ks[0] < 1:
        msg = f"ks must be positive integers, got {ks!r}."
        raise InvalidArgumentError(msg)
    start = time.perf_counter()
    n_users, n_items, max_k = data.n_users, data.n_items, ks[-1]
    if batch_size is None:
        batch_size = max(1, (1 << 23) // max(1, n_items))
    truth = data.csr(split)
    hidden = data.csr("train")
    if split == "test":
        hidden = (hidden + data.csr("validation")).tocsr()
    n_truth = np.diff(truth.indptr).astype(np.int64)
    has_truth = n_truth > 0
    recall = {k: np.zeros(n_users) for k in ks}
    ndcg = {k: np.zeros(n_users) for k in ks}
    discount = 1.0 / np.log2(np.arange(2, max_k + 2))
    ideal = np.cumsum(discount)  # ideal[m - 1] = IDCG with m relevant items
    eval_users = np.flatnonzero(has_truth)
    for lo in range(0, eval_users.shape[0], batch_size):
        users = eval_users[lo : lo + batch_size]
        scores = scorer(torch.from_numpy(users).to(device))
        _check_finite(scores, users)
        rows, cols = _rows(hidden, users)
        scores[
            torch.from_numpy(rows).to(scores.device), torch.from_numpy(cols).to(scores.device)
        ] = float("-inf")
        top_t = _top_k(scores, max_k)  # _check_finite refused NaN; -inf adds none
        # A row with fewer than max_k scored items is padded with -inf ones: never hits.
        scored = torch.isfinite(scores.gather(1, top_t)).cpu().numpy()
        top = top_t.cpu().numpy()
        rows, cols = _rows(truth, users)
        is_truth = np.zeros((users.shape[0], n_items), dtype=bool)
        is_truth[rows, cols] = True
        hits = (np.take_along_axis(is_truth, top, axis=1) & scored).astype(np.float64)
        if hits.shape[1] < max_k:  # fewer items than max_k
            hits = np.pad(hits, ((0, 0), (0, max_k - hits.shape[1])))
        cum_hits = np.cumsum(hits, axis=1)
        cum_dcg = np.cumsum(hits * discount, axis=1)
        m = n_truth[users]
        for k in ks:
            recall[k][users] = cum_hits[:, k - 1] / m
            ndcg[k][users] = cum_dcg[:, k - 1] / ideal[np.minimum(m, k) - 1]
    user_quality = (sum(recall.values()) + sum(ndcg.values())) / (2 * len(ks))
    # Eq. 9 as a sparse product: item mean over its training users (with ground truth).
    train_t = data.csr("train").T.tocsr()
    weight = has_truth.astype(np.float64)
    den = np.asarray(train_t @ weight).ravel()
    num = np.asarray(train_t @ (user_quality * weight)).ravel()
    item_has_users = den > 0
    item_quality = np.divide(num, den, out=np.zeros(n_items), where=item_has_users)
    return EvalResult(
        split=split,
        ks=ks,
        user_recall=recall,
        user_ndcg=ndcg,
        user_quality=user_quality,
        item_quality=item_quality,
        has_truth=has_truth,
        item_has_users=item_has_users,
        seconds=time.perf_counter() - start,
    )


def _check_finite(scores: torch.Tensor, users: np.ndarray) -> None:
    """Refuse NaN/+inf scores: a diverged model must not earn a plausible reward.

    ``-inf`` passes: it skips an item, as in :func:`top_k_items`, and is never a hit.
    """
    if not scores.numel():
        return
    top = scores.max()  # one pass, no mask: max propagates NaN, and is +inf if any is
    if not (torch.isnan(top) or torch.isposinf(top)):
        return
    bad = torch.isnan(scores) | torch.isposinf(scores)
    n_nan = int(torch.isnan(scores).sum())
    n_inf = int(bad.sum()) - n_nan
    first = int(users[int(bad.any(dim=1).nonzero()[0, 0])])
    msg = (
        f"Scores must be finite or -inf, got {n_nan} NaN and {n_inf} +inf of {scores.numel()} "
        f"in a batch of {len(users)} users (first: user {first}): the model diverged. Lower the "
        "learning rate or check the weights it was loaded from (-inf marks a skipped item)."
    )
    raise NonFiniteError(msg)


def evaluate(
    model: torch.nn.Module,
    data: InteractionData,
    split: SplitName = "validation",
    *,
    ks: tuple[int, ...] = (5, 10, 20),
    batch_size: int | None = None,
) -> EvalResult:
    """Full-ranking evaluation of a backbone (paper Eq. 8–9), in eval mode, without gradients.

    Calls ``model.prepare_scoring()`` once (graph backbones propagate once), then scores
    users in batches; see :func:`evaluate_scores` for the arguments. The model's train/eval
    mode is restored afterwards and its scoring cache released.
    """
    was_training = model.training
    start = time.perf_counter()
    model.eval()
    try:
        with torch.no_grad():
            model.prepare_scoring()
            result = evaluate_scores(
                model.score, data, split, ks=ks, batch_size=batch_size, device=model.device
            )
        result.seconds = time.perf_counter() - start  # include the propagation
        return result
    finally:
        model.invalidate_scoring()
        model.train(was_training)


# -------------------------------------------------------------- popularity
def popularity_scores(data: InteractionData) -> np.ndarray:
    """(n_items,) float32 score of the popularity baseline: the item's training frequency."""
    return data.item_freq.astype(np.float32)


def evaluate_popularity(
    data: InteractionData,
    split: SplitName = "validation",
    *,
    ks: tuple[int, ...] = (5, 10, 20),
    batch_size: int | None = None,
) -> EvalResult:
    """Evaluate the most-popular ranking (same items for everyone, known positives hidden).

    The floor any trained backbone must beat; ties (equal frequency) by item index.
    """
    pop = torch.from_numpy(popularity_scores(data))

    def scorer(users: torch.Tensor) -> torch.Tensor:
        return pop.expand(users.shape[0], -1).clone()

    return evaluate_scores(scorer, data, split, ks=ks, batch_size=batch_size)


# -------------------------------------------------------------- accounting
# ``kept_parameters`` and ``sparsity`` are :mod:`ciess_env.budget`'s (re-exported here).


def ragged_storage_bytes(
    user_sizes: np.ndarray, item_sizes: np.ndarray, dtype_bytes: int = 4, n_tables: int = 1
) -> int:
    """Bytes of a compact ragged layout of the masked tables.

    The kept values of every row are stored back to back (``kept · dtype_bytes``) plus one
    int32 offset per row and a final end offset (``4 · (|U| + |V| + 1)``), shared by the
    ``n_tables`` tables because they use the same sizes. This is what "zeroed entries cost
    nothing under sparse storage" (paper §1.1) means in bytes.
    """
    n_rows = len(user_sizes) + len(item_sizes)
    return kept_parameters(user_sizes, item_sizes, n_tables) * int(dtype_bytes) + 4 * (n_rows + 1)
