import re

import numpy as np
import pytest
import torch

from ciess_env.data import InteractionData, make_synthetic


def _all_pairs(data: InteractionData) -> tuple[np.ndarray, np.ndarray]:
    parts = (data.train, data.validation, data.test)
    return np.concatenate([p.users for p in parts]), np.concatenate([p.items for p in parts])


def test_default_size_and_shape(small_data):
    """The default is 1,000 users × 500 items with 30,000 interactions split ~50/25/25."""
    assert (small_data.n_users, small_data.n_items) == (1000, 500)
    assert small_data.n_interactions == 30_000
    assert len(small_data.train) / small_data.n_interactions == pytest.approx(0.5, abs=0.01)
    assert small_data.user_ids.tolist() == list(range(1000))


def test_every_user_has_train_validation_and_test_items(small_data, tiny_data):
    """Each user has ≥ 4 interactions, hence items in all three splits."""
    for data in (small_data, tiny_data):
        users, _ = _all_pairs(data)
        assert np.bincount(users, minlength=data.n_users).min() >= 4
        for part in (data.train, data.validation, data.test):
            assert np.unique(part.users).size == data.n_users


def test_item_popularity_and_user_activity_are_long_tailed(small_data):
    """Top 10% of items hold > 30% of interactions; top 10% of users > 25%; max ≫ median."""
    users, items = _all_pairs(small_data)
    item_counts = np.sort(np.bincount(items, minlength=small_data.n_items))[::-1]
    user_counts = np.sort(np.bincount(users, minlength=small_data.n_users))[::-1]
    assert item_counts[:50].sum() / item_counts.sum() > 0.30
    assert user_counts[:100].sum() / user_counts.sum() > 0.25
    assert user_counts[0] >= 5 * np.median(user_counts)
    assert user_counts[0] <= small_data.n_items // 2


def test_same_seed_same_data_other_seed_different():
    """make_synthetic is deterministic per seed and differs across seeds."""
    a = make_synthetic(n_users=80, n_items=50, mean_interactions=10, seed=3)
    b = make_synthetic(n_users=80, n_items=50, mean_interactions=10, seed=3)
    c = make_synthetic(n_users=80, n_items=50, mean_interactions=10, seed=4)
    for x, y in zip((a.train, a.validation, a.test), (b.train, b.validation, b.test), strict=True):
        assert np.array_equal(x.users, y.users)
        assert np.array_equal(x.items, y.items)
    assert not np.array_equal(_all_pairs(a)[1], _all_pairs(c)[1])


def test_split_seed_changes_only_the_split():
    """Another split_seed keeps the same pairs but assigns them differently."""
    a = make_synthetic(n_users=80, n_items=50, mean_interactions=10, seed=3)
    b = make_synthetic(n_users=80, n_items=50, mean_interactions=10, seed=3, split_seed=99)
    key = lambda d: set(zip(*(x.tolist() for x in _all_pairs(d)), strict=True))  # noqa: E731
    assert key(a) == key(b)
    assert not np.array_equal(a.train.items, b.train.items)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_users": 0}, "`n_users` must be an integer ≥ 1, got 0."),
        ({"n_items": 1}, "`n_items` must be an integer ≥ 2, got 1."),
        (
            {"n_items": 20, "mean_interactions": 11},
            "`mean_interactions` must lie in [min_interactions, n_items // 2] = [4, 10], got 11.",
        ),
        (
            {"popularity_exponent": -1.0},
            "`popularity_exponent` must be a finite number ≥ 0, got -1.0.",
        ),
        ({"ratios": (0.5, 0.5, 0.5)}, "`ratios` must sum to 1"),
    ],
)
def test_invalid_arguments_are_refused(kwargs, message):
    """Impossible sizes and bad parameters raise ValueError with a clear message."""
    with pytest.raises(ValueError, match=re.escape(message)):
        make_synthetic(**kwargs)


def _recall_at_20(scores: np.ndarray, data: InteractionData) -> float:
    scores = scores.copy()
    scores[data.csr("train").toarray() > 0] = -np.inf
    top = np.argsort(-scores, axis=1)[:, :20]
    truth = data.csr("test").toarray() > 0
    hits = np.take_along_axis(truth, top, axis=1).sum(axis=1)
    n_truth = truth.sum(axis=1)
    has = n_truth > 0
    return float((hits[has] / np.minimum(n_truth[has], 20)).mean())


def test_trained_mf_beats_popularity(small_data):
    """A 40-epoch BPR matrix factorisation beats the popularity ranking on test Recall@20."""
    gen = torch.Generator().manual_seed(0)
    user_emb = torch.nn.Parameter(0.1 * torch.randn(small_data.n_users, 32, generator=gen))
    item_emb = torch.nn.Parameter(0.1 * torch.randn(small_data.n_items, 32, generator=gen))
    opt = torch.optim.Adam([user_emb, item_emb], lr=0.01)
    users = torch.from_numpy(small_data.train.users)
    items = torch.from_numpy(small_data.train.items)
    for _ in range(40):
        for batch in torch.randperm(len(users), generator=gen).split(2048):
            neg = torch.randint(0, small_data.n_items, (len(batch),), generator=gen)
            u, p, n = user_emb[users[batch]], item_emb[items[batch]], item_emb[neg]
            x = (u * (p - n)).sum(dim=1)
            reg = (u.pow(2).sum() + p.pow(2).sum() + n.pow(2).sum()) / len(batch)
            loss = torch.nn.functional.softplus(-x).mean() + 1e-4 * reg
            opt.zero_grad()
            loss.backward()
            opt.step()
    mf = _recall_at_20((user_emb @ item_emb.T).detach().numpy(), small_data)
    popularity = np.broadcast_to(
        small_data.item_freq.astype(np.float64), (small_data.n_users, small_data.n_items)
    )
    pop = _recall_at_20(popularity, small_data)
    assert pop > 0.15  # popularity is a real signal (long tail) ...
    assert mf > 1.1 * pop  # ... but the latent factors carry more
