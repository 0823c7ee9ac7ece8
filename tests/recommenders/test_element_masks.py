"""The elementwise-mask hook of every backbone (used by PEP): exact zeros, accounting, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ciess_env.data import InteractionData
from ciess_env.recommenders import BACKBONES, TrainConfig, make_backbone, train_bpr


def _masks(data: InteractionData, d_max: int, keep: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.random((data.n_users, d_max)) < keep, rng.random((data.n_items, d_max)) < keep


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_masked_entries_read_as_zero_and_stay_untrained(tiny_data: InteractionData, name: str):
    """Reads of a masked table are weight ⊙ mask; training never moves a masked entry."""
    model = make_backbone(name, tiny_data, d_max=16, seed=0)
    users, items = _masks(tiny_data, 16, keep=0.3)
    model.set_element_masks(users, items)
    table_u, table_i = (model.masked_tables[s][0] for s in ("user", "item"))
    before = getattr(model.parametrizations, table_u).original.detach().clone()
    train_bpr(model, tiny_data, TrainConfig(n_batches=5, batch_size=64), seed=0)
    after = getattr(model.parametrizations, table_u).original.detach()
    mask_u = torch.as_tensor(users)
    assert torch.equal(after[~mask_u], before[~mask_u])  # exact zero gradient
    assert not torch.equal(after[mask_u], before[mask_u])
    assert torch.all(getattr(model, table_u)[~mask_u] == 0)
    assert torch.all(getattr(model, table_i)[~torch.as_tensor(items)] == 0)
    kept = int(users.sum() + items.sum()) * model.n_tables
    assert model.kept_embedding_parameters() == kept
    assert model.sparsity() == pytest.approx(1 - kept / model.full_embedding_parameters())


def test_prefix_sizes_still_apply_and_count_once(tiny_data: InteractionData) -> None:
    """Kept = entries both masks keep; all-True element masks give the prefix accounting."""
    model = make_backbone("lightgcn", tiny_data, d_max=8, seed=0)
    sizes_u = np.full(tiny_data.n_users, 4)
    sizes_i = np.full(tiny_data.n_items, 2)
    model.set_sizes(sizes_u, sizes_i)
    prefix = model.kept_embedding_parameters()
    model.set_element_masks(
        np.ones((tiny_data.n_users, 8), bool), np.ones((tiny_data.n_items, 8), bool)
    )
    assert model.kept_embedding_parameters() == prefix
    users = np.zeros((tiny_data.n_users, 8), bool)
    users[:, 3:] = True  # only column 3 overlaps the prefix of 4
    model.set_element_masks(users, np.ones((tiny_data.n_items, 8), bool))
    assert model.kept_embedding_parameters() == tiny_data.n_users + 2 * tiny_data.n_items
    model.clear_parametrizations()
    assert model.element_masks() is None
    assert model.kept_embedding_parameters() == prefix


def test_all_true_masks_leave_training_bit_identical(tiny_data: InteractionData) -> None:
    """The hook itself changes nothing: an all-True mask trains to the same scores."""
    cfg = TrainConfig(n_batches=4, batch_size=64)
    plain = make_backbone("mf", tiny_data, d_max=8, seed=3)
    train_bpr(plain, tiny_data, cfg, seed=1)
    masked = make_backbone("mf", tiny_data, d_max=8, seed=3)
    masked.set_element_masks(
        np.ones((tiny_data.n_users, 8), bool), np.ones((tiny_data.n_items, 8), bool)
    )
    train_bpr(masked, tiny_data, cfg, seed=1)
    users = torch.arange(tiny_data.n_users)
    torch.testing.assert_close(plain.score(users), masked.score(users), rtol=0, atol=0)


def test_bad_masks_raise_clear_errors(tiny_data: InteractionData) -> None:
    model = make_backbone("mf", tiny_data, d_max=8, seed=0)
    good_i = np.ones((tiny_data.n_items, 8), bool)
    with pytest.raises(ValueError, match=r"user_mask must have shape \(60, 8\), got \(60, 7\)"):
        model.set_element_masks(np.ones((tiny_data.n_users, 7), bool), good_i)
    with pytest.raises(ValueError, match=r"user_mask must be a boolean array.*mask != 0"):
        model.set_element_masks(np.ones((tiny_data.n_users, 8)), good_i)
