"""Every backbone: construction, graph maths, scoring paths, and learning beyond popularity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ciess_env.data.interactions import InteractionData, Interactions
from ciess_env.errors import UnknownNameError
from ciess_env.metrics import evaluate, evaluate_popularity, evaluate_scores
from ciess_env.recommenders import BACKBONES, TrainConfig, make_backbone, train_bpr
from ciess_env.recommenders.base import gather_rows
from ciess_env.recommenders.graph import normalized_adjacency, propagate, scipy_to_torch_csr


def test_registry_names_and_unknown_name(clustered_data):
    """The four backbones are registered; a typo lists names and suggests the closest."""
    assert sorted(BACKBONES) == ["lightgcn", "mf", "ncf", "ngcf"]
    with pytest.raises(UnknownNameError, match=r"Unknown backbone 'NGFC'.*Did you mean 'ngcf'"):
        make_backbone("NGFC", clustered_data)


def test_hyperparameters_pass_through_and_bad_ones_fail(clustered_data):
    """Backbone keywords reach the constructor; an unknown keyword is a TypeError."""
    model = make_backbone("LightGCN", clustered_data, d_max=4, n_layers=2, l2=0.5)
    assert (model.n_layers, model.l2, model.d_max) == (2, 0.5, 4)
    with pytest.raises(TypeError):
        make_backbone("mf", clustered_data, n_layers=2)
    with pytest.raises(ValueError, match="node_dropout must lie in"):
        make_backbone("ngcf", clustered_data, node_dropout=1.0)


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_seeded_initialisation(name, clustered_data):
    """Same seed ⇒ identical initial weights; another seed ⇒ different ones."""
    a = make_backbone(name, clustered_data, d_max=4, seed=5).state_dict()
    b = make_backbone(name, clustered_data, d_max=4, seed=5).state_dict()
    c = make_backbone(name, clustered_data, d_max=4, seed=6).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_normalized_adjacency_values_and_isolated_nodes():
    """Â[u, v] = 1/sqrt(deg u · deg v), symmetric; an item without users has an empty row."""
    train = Interactions.from_arrays(np.array([0, 0, 1]), np.array([0, 1, 0]))
    adj = normalized_adjacency(train, n_users=2, n_items=3).toarray()
    expected = np.zeros((5, 5))
    expected[0, 2] = expected[2, 0] = 1 / np.sqrt(2 * 2)
    expected[0, 3] = expected[3, 0] = 1 / np.sqrt(2 * 1)
    expected[1, 2] = expected[2, 1] = 1 / np.sqrt(1 * 2)
    np.testing.assert_allclose(adj, expected, rtol=1e-6)
    assert np.isfinite(adj).all()


def test_symmetric_propagation_gradient_matches_dense_autograd(clustered_data):
    """The custom backward (Â·grad) equals autograd through a dense Â @ X."""
    adj = normalized_adjacency(clustered_data.train, clustered_data.n_users, clustered_data.n_items)
    sparse, dense = scipy_to_torch_csr(adj), torch.from_numpy(adj.toarray())
    x = torch.randn(adj.shape[0], 5, generator=torch.Generator().manual_seed(0))
    w = torch.randn(adj.shape[0], 5, generator=torch.Generator().manual_seed(1))
    x1 = x.clone().requires_grad_()
    (propagate(sparse, propagate(sparse, x1)) * w).sum().backward()
    x2 = x.clone().requires_grad_()
    ((dense @ (dense @ x2)) * w).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-5, atol=1e-6)
    # int32 indices (what the CPU kernel takes), and the same product as with int64 ones.
    assert sparse.crow_indices().dtype == sparse.col_indices().dtype == torch.int32
    wide = torch.sparse_csr_tensor(sparse.crow_indices().long(), sparse.col_indices().long(),
                                   sparse.values(), size=sparse.shape,
                                   check_invariants=True)  # fmt: skip
    assert torch.equal(torch.sparse.mm(wide, x), torch.sparse.mm(sparse, x))


def test_lightgcn_score_is_layer_mean_dot_product(clustered_data):
    """score() equals the dot product of the mean of (E, ÂE, Â²E, Â³E) computed densely."""
    model = make_backbone("lightgcn", clustered_data, d_max=6).eval()
    model.set_sizes(np.full(120, 3), np.full(100, 6))
    dense = torch.from_numpy(normalized_adjacency(clustered_data.train, 120, 100).toarray())
    e = model.ego().detach()
    out = (e + dense @ e + dense @ dense @ e + dense @ dense @ dense @ e) / 4
    expected = out[:120][:7] @ out[120:].T
    torch.testing.assert_close(model.score(torch.arange(7)), expected, rtol=1e-4, atol=1e-6)


def test_ncf_chunked_score_equals_pairwise_score(clustered_data):
    """The split-layer, chunked full ranking equals NeuMF applied to each (user, item) pair."""
    model = make_backbone("ncf", clustered_data, d_max=8, score_chunk_elems=100).eval()
    model.set_sizes(np.arange(120) % 8 + 1, np.arange(100) % 5 + 1)
    users = torch.tensor([0, 3, 77])
    uu, ii = torch.meshgrid(users, torch.arange(100), indexing="ij")
    with torch.no_grad():
        gu, mu = model._users(uu.reshape(-1))
        gi, mi = model._items(ii.reshape(-1))
        expected = model._pair_scores(gu, mu, gi, mi).view(3, 100)
    torch.testing.assert_close(model.score(users), expected, rtol=1e-5, atol=1e-6)


def test_ngcf_dropout_only_in_training(clustered_data):
    """NGCF is random in training mode and deterministic in evaluation mode."""
    model = make_backbone("ngcf", clustered_data, d_max=8)
    ego = model.ego().detach()
    model.train()
    assert not torch.equal(model.readout(ego), model.readout(ego))
    model.eval()
    assert torch.equal(model.readout(ego), model.readout(ego))
    a = evaluate(model, clustered_data).user_quality
    np.testing.assert_array_equal(a, evaluate(model, clustered_data).user_quality)


def test_scoring_cache_follows_training(clustered_data):
    """evaluate() after more training sees the new weights (no stale propagated tables)."""
    model = make_backbone("lightgcn", clustered_data, d_max=8)
    cfg = TrainConfig(n_batches=5, batch_size=256)
    train_bpr(model, clustered_data, cfg, seed=0)
    first = evaluate(model, clustered_data).user_quality
    train_bpr(model, clustered_data, cfg, seed=1)
    assert not np.array_equal(first, evaluate(model, clustered_data).user_quality)


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_backbone_learns_beyond_popularity_and_random(name, clustered_data):
    """After 150 small batches each backbone beats popularity and random ranking clearly."""
    model = make_backbone(name, clustered_data, d_max=16, seed=0)
    cfg = TrainConfig(n_batches=150, batch_size=512, lr=0.01, decay_batches=50)
    train_bpr(model, clustered_data, cfg, seed=0)
    learned = evaluate(model, clustered_data).mean_user_quality
    popular = evaluate_popularity(clustered_data).mean_user_quality
    noise = torch.rand(120, 100, generator=torch.Generator().manual_seed(0))
    rand = evaluate_scores(lambda u: noise[u].clone(), clustered_data).mean_user_quality
    assert learned > 1.5 * max(popular, rand), (learned, popular, rand)


def test_isolated_user_and_item_get_scores(clustered_data):
    """A user and an item without training pairs still score (ego-only), finite everywhere."""
    tr = clustered_data.train
    keep = (tr.users != 0) & (tr.items != 0)
    data = InteractionData(
        name="holes", n_users=120, n_items=100,
        train=Interactions(tr.users[keep], tr.items[keep]),
        validation=clustered_data.validation, test=clustered_data.test,
        user_ids=np.arange(120), item_ids=np.arange(100),
    )  # fmt: skip
    for name in BACKBONES:
        model = make_backbone(name, data, d_max=4).eval()
        assert torch.isfinite(model.score(torch.arange(120))).all()


def test_gather_rows_matches_f_embedding_bit_for_bit_on_cpu():
    """Same rows forward; the same gradient sums (repeated indices included) backward."""
    gen = torch.Generator().manual_seed(0)
    table = torch.randn(50, 7, generator=gen, requires_grad=True)
    idx = torch.randint(0, 50, (3000,), generator=gen)  # every row many times, in any order
    grad = torch.randn(3000, 7, generator=gen)
    ref = F.embedding(idx, table)
    ref.backward(grad)
    want, table.grad = table.grad.clone(), None
    got = gather_rows(table, idx)
    got.backward(grad)
    assert torch.equal(got, ref)
    assert torch.equal(table.grad, want)
    assert got.grad_fn.name() == "IndexSelectBackward0"
    # A masked prefix slice (non-contiguous) and int32 indices, as the backbones pass them.
    wide = torch.randn(50, 16, generator=gen, requires_grad=True)
    F.embedding(idx, wide[:, :5]).backward(grad[:, :5])
    want, wide.grad = wide.grad.clone(), None
    gather_rows(wide[:, :5], idx.int()).backward(grad[:, :5])
    assert torch.equal(wide.grad, want)
