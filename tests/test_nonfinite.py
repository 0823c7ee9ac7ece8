"""A diverged model never earns a plausible score: NaN/inf scores and losses raise."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from ciess_env.data.interactions import InteractionData, Interactions
from ciess_env.errors import CIESSError, NonFiniteError
from ciess_env.metrics import evaluate, evaluate_scores, top_k_items
from ciess_env.recommenders import TrainConfig, make_backbone, train_bpr

NAN, INF = float("nan"), float("inf")


@pytest.fixture
def tiny() -> InteractionData:
    """4 users × 6 items, every user with train and validation items."""
    users = np.repeat(np.arange(4), 3)
    items = np.array([0, 1, 2, 1, 2, 3, 2, 3, 4, 3, 4, 5])
    split = np.tile([0, 1, 2], 4)
    parts = [Interactions.from_arrays(users[split == s], items[split == s]) for s in range(3)]
    return InteractionData("tiny", 4, 6, *parts, np.arange(4), np.arange(6))


def test_top_k_refuses_nan_scores_instead_of_ranking_them_first():
    """torch.topk puts NaN above every number; top_k_items names the row and refuses."""
    scores = torch.tensor([[0.5, 2.0, 1.0], [0.5, NAN, 2.0]])
    with pytest.raises(
        NonFiniteError,
        match=re.escape("`scores` must not be NaN, got 1 NaN in 1 row(s) (first: row 1)"),
    ):
        top_k_items(scores, 2)
    assert top_k_items(torch.tensor([[0.5, -INF, 2.0]]), 2).tolist() == [[2, 0]]


def test_all_nan_scores_raise_instead_of_reporting_a_recall(tiny):
    """An all-NaN score matrix used to give a positive Recall@20; now it is an error."""

    def scorer(users: torch.Tensor) -> torch.Tensor:
        return torch.full((users.shape[0], 6), NAN)

    with pytest.raises(NonFiniteError) as info:
        evaluate_scores(scorer, tiny, ks=(1, 2))
    message = str(info.value)
    assert "Scores must be finite or -inf, got 24 NaN and 0 +inf of 24" in message
    assert "the model diverged" in message
    assert isinstance(info.value, CIESSError)
    assert isinstance(info.value, ValueError)


def test_plus_inf_model_scores_raise(tiny):
    """+inf would rank first: a diverged model's +inf is refused, naming the count."""

    def scorer(users: torch.Tensor) -> torch.Tensor:
        out = torch.arange(6, dtype=torch.float32).repeat(users.shape[0], 1)
        out[0, 2] = INF
        return out

    with pytest.raises(NonFiniteError, match=re.escape("0 NaN and 1 +inf of 24")):
        evaluate_scores(scorer, tiny, ks=(1,))


def test_nan_and_plus_inf_are_found_beside_minus_inf(tiny):
    """The cheap check (one max per batch) still counts NaN and +inf mixed with -inf."""

    def scorer(users: torch.Tensor) -> torch.Tensor:
        out = torch.full((users.shape[0], 6), -INF)
        out[0, 1], out[-1, 4] = NAN, INF
        return out

    with pytest.raises(NonFiniteError, match=re.escape("1 NaN and 1 +inf of 24")):
        evaluate_scores(scorer, tiny, ks=(1,))
    with pytest.raises(NonFiniteError, match=re.escape("got 1 NaN in 1 row(s) (first: row 1)")):
        top_k_items(torch.tensor([[-INF, 1.0], [NAN, -INF]]), 1)


def test_minus_inf_scores_skip_items_as_in_top_k_items(tiny):
    """-inf skips an item in evaluate_scores as top_k_items says: accepted, and never a hit."""

    def ranked(users: torch.Tensor) -> torch.Tensor:
        return torch.arange(6, dtype=torch.float32).repeat(users.shape[0], 1)

    def skip_all(users: torch.Tensor) -> torch.Tensor:
        return torch.full((users.shape[0], 6), -INF)

    def skip_truth(users: torch.Tensor) -> torch.Tensor:
        out = ranked(users)
        out[:, 1:5] = -INF  # every validation item (user u's is u + 1)
        return out

    assert evaluate_scores(ranked, tiny, ks=(6,)).recall(6) == 1.0  # nothing skipped
    # Skipped items fill the top K only as padding: they count as misses, not hits.
    assert evaluate_scores(skip_all, tiny, ks=(6,)).recall(6) == 0.0
    assert evaluate_scores(skip_truth, tiny, ks=(6,)).recall(6) == 0.0


def test_evaluate_a_model_with_nan_weights_raises(tiny):
    """A backbone whose weights went NaN cannot be evaluated into a reward."""
    model = make_backbone("mf", tiny, d_max=4, seed=0)
    with torch.no_grad():
        model.user_emb[1] = NAN
    with pytest.raises(NonFiniteError, match="the model diverged"):
        evaluate(model, tiny)


def test_nan_bpr_loss_raises_naming_the_first_batch(tiny):
    """Training that produces a NaN loss stops with an error, not a NaN-weighted model."""
    model = make_backbone("mf", tiny, d_max=4, seed=0)
    with torch.no_grad():
        model.item_emb[:] = NAN
    with pytest.raises(
        NonFiniteError, match=re.escape("BPR loss must be finite, got nan at batch 1 of 3")
    ):
        train_bpr(model, tiny, TrainConfig(n_batches=3, batch_size=8), seed=0)
