"""Prefix masks, size validation and parameter accounting of every backbone."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from ciess_env.recommenders import BACKBONES, make_backbone

D_MAX = 8


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_masked_entries_are_zero_and_get_zero_gradient(name, clustered_data):
    """A size-d entity's embedding beyond d is zero in use and its weights get zero gradient."""
    model = make_backbone(name, clustered_data, d_max=D_MAX, seed=0)
    rng = np.random.default_rng(0)
    us = rng.integers(1, D_MAX + 1, size=clustered_data.n_users)
    its = rng.integers(1, D_MAX + 1, size=clustered_data.n_items)
    model.set_sizes(us, its)
    users = torch.arange(clustered_data.n_users)
    pos, neg = users % clustered_data.n_items, (users + 7) % clustered_data.n_items
    model.bpr_loss(users, pos, neg).total.backward()
    beyond_u = torch.arange(D_MAX)[None, :] >= torch.from_numpy(us)[:, None]
    beyond_i = torch.arange(D_MAX)[None, :] >= torch.from_numpy(its)[:, None]
    tables = {
        side: [p for p in model.parameters() if p.shape == (n, D_MAX)]
        for side, n in (("user", clustered_data.n_users), ("item", clustered_data.n_items))
    }
    assert len(tables["user"]) == model.n_tables == len(tables["item"])
    for table in tables["user"]:
        assert table.grad is not None
        assert torch.all(table.grad[beyond_u] == 0)
        assert torch.all(model.masked_rows(table, model.user_sizes)[beyond_u] == 0)
        assert torch.any(table.grad[~beyond_u] != 0)
    for table in tables["item"]:
        assert torch.all(table.grad[beyond_i] == 0)


def test_size_change_rewrites_buffers_without_rebuilding(clustered_data):
    """set_sizes keeps the same parameter tensors and changes only the size buffers."""
    model = make_backbone("lightgcn", clustered_data, d_max=D_MAX)
    before = [id(p) for p in model.parameters()]
    weights = model.user_emb.detach().clone()
    model.set_sizes(np.full(clustered_data.n_users, 3), np.full(clustered_data.n_items, 5))
    assert [id(p) for p in model.parameters()] == before
    assert torch.equal(model.user_emb.detach(), weights)
    assert model.user_mask().sum() == 3 * clustered_data.n_users


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        (np.full(5, 4), "user_sizes must have shape (120,), got (5,)."),
        (np.full(120, 0), "user_sizes must lie in [1, 8], got values in [0, 0]."),
        (np.full(120, 9), "user_sizes must lie in [1, 8], got values in [9, 9]."),
        (np.full(120, 2.5), "user_sizes must be whole numbers, got 2.5; round them first."),
        (np.full(120, np.nan), "user_sizes must be whole numbers, got nan; round them first."),
        (np.full(120, True), "user_sizes must be an array of integers, got dtype torch.bool."),
        (np.array(["a"] * 120), "user_sizes must be an array of integers, got ndarray."),
    ],
)
def test_set_sizes_rejects_bad_input_with_clear_message(clustered_data, sizes, message):
    """Wrong shape, out-of-range, non-integer or non-numeric sizes raise a clear ValueError."""
    model = make_backbone("mf", clustered_data, d_max=D_MAX)
    with pytest.raises(ValueError, match=re.escape(message)):
        model.set_sizes(sizes, np.full(clustered_data.n_items, 4))


def test_whole_float_sizes_are_accepted(clustered_data):
    """Floats with integral values (e.g. a rounded actor output) are accepted as sizes."""
    model = make_backbone("mf", clustered_data, d_max=D_MAX)
    model.set_sizes(np.full(120, 4.0), torch.full((100,), 2.0))
    assert model.user_sizes.dtype == torch.long
    assert int(model.item_sizes.sum()) == 200


@pytest.mark.parametrize(
    ("name", "n_tables", "extra"),
    [
        ("lightgcn", 1, 0),
        ("mf", 1, 0),
        ("ngcf", 1, 3 * 2 * (D_MAX * D_MAX + D_MAX)),
        ("ncf", 2, 2 * D_MAX * D_MAX + D_MAX + 2 * D_MAX + 1),
    ],
)
def test_parameter_accounting(clustered_data, name, n_tables, extra):
    """Kept parameters are n_tables·Σd; extra parameters count the non-embedding weights."""
    model = make_backbone(name, clustered_data, d_max=D_MAX)
    model.set_sizes(np.full(120, 2), np.full(100, 4))
    assert model.n_tables == n_tables
    assert model.kept_embedding_parameters() == n_tables * (240 + 400)
    assert model.sparsity() == pytest.approx(1 - (240 + 400) / (D_MAX * 220))
    assert model.extra_parameters() == extra
    n_all = sum(p.numel() for p in model.parameters())
    assert n_all == model.full_embedding_parameters() + extra
