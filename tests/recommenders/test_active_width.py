"""Work proportional to the sizes in use is exact: the active-width path equals full width.

Every backbone computes over the first ``max(sizes)`` columns only, caches its float masks per
size assignment, takes the L2 term as ``bincount · ‖row‖²`` and trains with fused Adam where
the build has it. ``full_width = True`` with plain Adam is the computation before all that;
these tests check losses, gradients and scores agree to float tolerance, for each backbone.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ciess_env.metrics import evaluate
from ciess_env.recommenders import BACKBONES, BPRTrainer, TrainConfig, make_backbone
from ciess_env.recommenders.sampling import BPRSampler
from ciess_env.recommenders.trainer import fused_adam_supported

D_MAX = 16
CFG = TrainConfig(n_batches=12, batch_size=128, decay_batches=4)


def _sizes(data, kind: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    if kind == "uniform":  # an ES-like mask: W = 5 of 16
        return np.full(data.n_users, 5), np.full(data.n_items, 5)
    # heterogeneous, largest size 11 < d_max, one entity at the minimum
    users = rng.integers(1, 12, size=data.n_users)
    items = rng.integers(2, 9, size=data.n_items)
    users[0] = 1
    return users, items


def _pair(name, data, kind, **kw):
    models = []
    for full in (True, False):
        model = make_backbone(name, data, d_max=D_MAX, seed=7, **kw)
        model.full_width = full
        model.set_sizes(*_sizes(data, kind))
        models.append(model)
    return models


@pytest.mark.parametrize("kind", ["uniform", "mixed"])
@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_one_batch_loss_and_gradients_match_full_width(clustered_data, name, kind):
    """Same weights, same batch: equal BPR and L2 terms and equal gradients on every parameter."""
    full, fast = _pair(name, clustered_data, kind)
    batch = BPRSampler(clustered_data, np.random.default_rng(0)).sample(200)
    users, pos, neg = (torch.from_numpy(a) for a in batch)
    results = []
    for model in (full, fast):
        model.train()
        model.set_generator(torch.Generator().manual_seed(5))  # same NGCF dropout draws
        loss = model.bpr_loss(users, pos, neg)
        loss.total.backward()
        results.append((loss, dict(model.named_parameters())))
    (lf, pf), (lo, po) = results
    assert fast.active_width() == int(max(fast.user_sizes.max(), fast.item_sizes.max())) < D_MAX
    torch.testing.assert_close(lo.bpr, lf.bpr, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(lo.reg, lf.reg, rtol=1e-5, atol=1e-9)
    assert lf.reg > 0
    for key, param in pf.items():
        torch.testing.assert_close(po[key].grad, param.grad, rtol=1e-4, atol=1e-7, msg=key)
    # Columns beyond the active width get an exactly zero gradient on the fast path too.
    width = fast.active_width()
    for key in ("user_emb", "item_emb", "gmf_user", "mlp_item"):
        if key in po:
            assert torch.count_nonzero(po[key].grad[:, width:]) == 0


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_training_and_validation_match_full_width(clustered_data, name):
    """Same seed and mask: losses of every batch, final weights and validation metrics agree."""
    full, fast = _pair(name, clustered_data, "mixed")
    runs = []
    for model in (full, fast):  # the full-width model trains with plain Adam by default
        runs.append(BPRTrainer(model, clustered_data, CFG, seed=11).run())
    np.testing.assert_allclose(runs[1].losses, runs[0].losses, rtol=2e-4, atol=1e-6)
    for (key, a), b in zip(full.state_dict().items(), fast.state_dict().values(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-5, msg=key)
    users = torch.arange(clustered_data.n_users)
    for model in (full, fast):
        model.eval()
        model.prepare_scoring()
    torch.testing.assert_close(fast.score(users), full.score(users), rtol=1e-3, atol=1e-5)
    ev_full, ev_fast = (evaluate(m, clustered_data).summary() for m in (full, fast))
    assert ev_fast == pytest.approx(ev_full, rel=1e-6, abs=1e-6)


def test_masks_follow_every_write_to_the_sizes(clustered_data):
    """The cached masks are rebuilt after set_sizes, load_state_dict and in-place writes."""
    model = make_backbone("lightgcn", clustered_data, d_max=D_MAX)
    assert model.active_width() == D_MAX
    model.set_sizes(np.full(120, 3), np.full(100, 4))
    width, user_mask, item_mask = model.size_masks()
    assert (width, user_mask.shape, item_mask.shape) == (4, (120, 4), (100, 4))
    assert model.size_masks()[1] is user_mask  # reused while the sizes do not change
    assert user_mask.sum() == 3 * 120
    assert item_mask.sum() == 4 * 100
    model.item_sizes[5] = 9
    assert model.active_width() == 9
    other = make_backbone("lightgcn", clustered_data, d_max=D_MAX)
    model.load_state_dict(other.state_dict())
    assert model.active_width() == D_MAX
    model.full_width = True
    model.set_sizes(np.full(120, 2), np.full(100, 2))
    assert model.active_width() == D_MAX
    assert model.ego().shape == (220, D_MAX)


def test_nested_training_masks_follow_the_drawn_sizes(clustered_data):
    """Nested-prefix training (sizes redrawn in place every batch) matches full width."""
    runs = []
    for full in (True, False):
        model = make_backbone("lightgcn", clustered_data, d_max=D_MAX, seed=1)
        model.full_width = full
        cfg = CFG.replace(n_batches=6)
        runs.append(BPRTrainer(model, clustered_data, cfg, seed=2, nested=True))
    a, b = (t.run().losses for t in runs)
    np.testing.assert_allclose(b, a, rtol=2e-4, atol=1e-6)


def test_fused_adam_is_used_where_supported(clustered_data):
    """The default trainer picks the fused kernel when this build has one for the CPU."""
    model = make_backbone("mf", clustered_data, d_max=D_MAX)
    trainer = BPRTrainer(model, clustered_data, CFG, seed=0)
    assert bool(trainer.optimizer.defaults["fused"]) == fused_adam_supported("cpu")
    plain = BPRTrainer(model, clustered_data, CFG, seed=0, fused_adam=False)
    assert not plain.optimizer.defaults["fused"]
    model.full_width = True
    assert not BPRTrainer(model, clustered_data, CFG, seed=0).optimizer.defaults["fused"]


def test_graph_is_built_once_per_data_set(clustered_factory):
    """Models on the same data share one adjacency; another data set gets its own; it is freed."""
    import gc

    from ciess_env.recommenders import graph

    data, other = clustered_factory(seed=1), clustered_factory(seed=2)
    a, b = (make_backbone(n, data, d_max=4) for n in ("lightgcn", "ngcf"))
    c = make_backbone("lightgcn", other, d_max=4)
    assert a.adj is b.adj
    assert c.adj is not a.adj
    dense = graph.normalized_adjacency(other.train, other.n_users, other.n_items).toarray()
    np.testing.assert_allclose(c.adj.to_dense().numpy(), dense)
    key = id(other)
    assert key in graph._GRAPHS
    del c, other
    gc.collect()
    assert key not in graph._GRAPHS


def test_release_free_memory_works_where_glibc_does():
    """Between steps the heap's free memory goes back to the OS on glibc (a no-op elsewhere)."""
    import platform

    from ciess_env.recommenders.memory import release_free_memory

    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    blocks = [torch.ones(1 << 18) for _ in range(64)]  # 64 MB of 1 MB blocks, then freed
    del blocks
    assert release_free_memory() is glibc
