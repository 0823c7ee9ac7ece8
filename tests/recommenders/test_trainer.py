"""BPR training: schedule, paper budgets, determinism, resumability, nested sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ciess_env.errors import UnknownNameError
from ciess_env.recommenders import (
    BPRTrainer,
    TrainConfig,
    make_backbone,
    paper_train_config,
    train_bpr,
)

SMALL = TrainConfig(n_batches=20, batch_size=256, decay_batches=5)


def test_learning_rate_steps_and_floors():
    """The learning rate is max(0.03 · 0.9^(b // 200), 1e-3)."""
    cfg = TrainConfig(n_batches=1)
    assert cfg.lr_at(0) == pytest.approx(0.03)
    assert cfg.lr_at(199) == pytest.approx(0.03)
    assert cfg.lr_at(200) == pytest.approx(0.027)
    assert cfg.lr_at(400) == pytest.approx(0.0243)
    assert cfg.lr_at(100_000) == pytest.approx(1e-3)


@pytest.mark.parametrize(
    ("backbone", "dataset", "n", "decay", "floor"),
    [
        ("lightgcn", "ml-1m", 2000, 200, 1e-3),
        ("lightgcn", "yelp2018", 4000, 200, 1e-3),
        ("ngcf", "ml-1m", 3000, 100, 1e-3),
        ("NGCF", "yelp2018", 5000, 100, 1e-3),
        ("ncf", "ml-1m", 1500, 50, 1e-4),
        ("ncf", "yelp2018", 3000, 50, 1e-4),
    ],
)
def test_paper_train_config(backbone, dataset, n, decay, floor):
    """The reference's batch budgets and decay intervals (paper §8)."""
    cfg = paper_train_config(backbone, dataset)
    assert (cfg.n_batches, cfg.decay_batches, cfg.lr_floor) == (n, decay, floor)
    assert (cfg.batch_size, cfg.lr, cfg.lr_decay) == (10_000, 0.03, 0.9)


def test_bad_config_and_unknown_backbone_raise():
    """Invalid schedules and unknown backbone names are clear ValueErrors."""
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        TrainConfig(n_batches=5, batch_size=0)
    with pytest.raises(ValueError, match="lr_decay"):
        TrainConfig(n_batches=5, lr_decay=1.5)
    with pytest.raises(UnknownNameError, match="Did you mean 'lightgcn'"):
        paper_train_config("lightgnc", "ml-1m")


@pytest.mark.parametrize("name", ["lightgcn", "ngcf", "ncf", "mf"])
def test_same_seed_gives_bitwise_identical_weights(name, clustered_data):
    """Two runs with one seed give identical weights; another seed gives different ones."""

    def run(seed: int) -> dict[str, torch.Tensor]:
        model = make_backbone(name, clustered_data, d_max=8, seed=0)
        train_bpr(model, clustered_data, SMALL, seed=seed)
        return model.state_dict()

    a, b, c = run(1), run(1), run(2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_training_in_chunks_equals_one_run(clustered_data):
    """run(8) + run(12) equals run(20): optimiser, schedule and RNG streams persist."""
    m1 = make_backbone("ngcf", clustered_data, d_max=8)
    m2 = make_backbone("ngcf", clustered_data, d_max=8)
    BPRTrainer(m1, clustered_data, SMALL, seed=3).run()
    t2 = BPRTrainer(m2, clustered_data, SMALL, seed=3)
    t2.run(8)
    r = t2.run(12)
    assert t2.batches_done == 20
    assert r.final_lr == pytest.approx(SMALL.lr_at(19))
    s1, s2 = m1.state_dict(), m2.state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)


def test_training_reduces_loss_and_reports(clustered_data):
    """Losses are recorded per batch, fall, and the model is left in eval mode."""
    model = make_backbone("mf", clustered_data, d_max=8)
    result = train_bpr(model, clustered_data, SMALL.replace(n_batches=60), seed=0)
    assert result.losses.shape == (60,)
    assert result.bpr_losses.dtype == np.float32
    assert result.losses[-10:].mean() < result.losses[:5].mean() - 0.1
    assert np.all(result.losses >= result.bpr_losses)
    assert not model.training
    assert result.seconds > 0


def test_nested_training_restores_sizes_and_trains_prefixes(clustered_data):
    """Nested mode draws sizes per batch but leaves the model's sizes as they were."""
    model = make_backbone("lightgcn", clustered_data, d_max=8)
    model.set_sizes(np.full(120, 6), np.full(100, 5))
    before = model.item_emb.detach().clone()
    train_bpr(model, clustered_data, SMALL, seed=0, nested=True)
    assert torch.all(model.user_sizes == 6)
    assert torch.all(model.item_sizes == 5)
    # column 7 lies beyond every fixed size, but nested sizes reach it, so it trains
    assert not torch.equal(model.item_emb.detach()[:, 7], before[:, 7])


def test_mismatched_model_and_data_raise(clustered_data, clustered_factory):
    """A model built for other data is rejected with the two shapes in the message."""
    other = clustered_factory(n_users=10, n_items=12)
    model = make_backbone("mf", other, d_max=4)
    with pytest.raises(ValueError, match=r"model and data must have the same shape"):
        train_bpr(model, clustered_data, SMALL, seed=0)
