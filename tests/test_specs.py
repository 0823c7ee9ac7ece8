"""Specs: a new backbone and a new data set are added from their specs alone (this file only)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ciess_env
from ciess_env.data import load_dataset, make_synthetic, register_dataset
from ciess_env.data import specs as data_specs
from ciess_env.data.specs import DatasetSpec, DatasetStats, Source
from ciess_env.errors import DatasetIntegrityError
from ciess_env.recommenders import make_backbone, paper_train_config, register_backbone
from ciess_env.recommenders import registry as backbone_registry
from ciess_env.recommenders.base import Backbone, BPRLoss
from ciess_env.recommenders.registry import BackboneSpec


class ToyDot(Backbone):
    """A dot-product backbone without regularisation: the smallest complete Backbone."""

    name = "toydot"

    def __init__(self, data, *, d_max=128, d_min=1, generator=None, device="cpu") -> None:
        super().__init__(data.n_users, data.n_items, d_max=d_max, d_min=d_min, device=device)
        self._new_tables(0.1, generator)
        self.to(device)

    def bpr_loss(self, users, pos, neg) -> BPRLoss:
        """Plain BPR on the masked rows."""
        u = self.masked_rows(F.embedding(users, self.user_emb), self.user_sizes[users])
        p = self.masked_rows(F.embedding(pos, self.item_emb), self.item_sizes[pos])
        n = self.masked_rows(F.embedding(neg, self.item_emb), self.item_sizes[neg])
        return BPRLoss(F.softplus((u * n).sum(1) - (u * p).sum(1)).mean(), torch.zeros(()))

    @torch.no_grad()
    def score(self, users):
        """Dot products against every item."""
        u = self.masked_rows(self.user_emb[users], self.user_sizes[users])
        return u @ self.masked_rows(self.item_emb, self.item_sizes).T


@pytest.fixture
def restore_registries():
    """Undo every registration this test makes (the tables, the ids and Gymnasium's registry)."""
    tables = [
        data_specs.DATASET_SPECS, data_specs.CANONICAL_STATS, data_specs.SOURCES,
        data_specs.REMOTE_FILES, data_specs.DATASET_FILES, data_specs.ALIASES,
        backbone_registry.BACKBONE_SPECS, ciess_env.BACKBONE_IDS, ciess_env.DATASET_IDS,
    ]  # fmt: skip
    saved = [dict(t) for t in tables]
    ids, gym_ids = ciess_env.ENV_IDS, set(gym.registry)
    yield
    for table, copy in zip(tables, saved, strict=True):
        table.clear()
        table.update(copy)
    ciess_env.ENV_IDS = ids
    for env_id in set(gym.registry) - gym_ids:
        del gym.registry[env_id]


def _write_lightgcn(path, data) -> DatasetStats:
    """The data set's pairs as a LightGCN train.txt / test.txt pair; return their counts."""
    path.mkdir(parents=True)
    for name, split in (("train", data.train), ("test", data.test)):
        lines = [
            " ".join(map(str, [u, *split.items[split.users == u]])) for u in np.unique(split.users)
        ]
        (path / f"{name}.txt").write_text("\n".join(lines) + "\n")
    users = np.r_[data.train.users, data.test.users]
    items = np.r_[data.train.items, data.test.items]
    n = len(np.unique(users * data.n_items + items))
    return DatasetStats(len(np.unique(users)), len(np.unique(items)), n)


def test_toy_backbone_and_data_set_are_added_from_specs_alone(restore_registries, tmp_path):
    """One BackboneSpec and one DatasetSpec give ids, schedules, λ, aliases and a working env."""
    stats = _write_lightgcn(
        tmp_path / "data" / "toy", make_synthetic(n_users=30, n_items=20, mean_interactions=6)
    )
    register_backbone(BackboneSpec("toydot", ToyDot, "ToyDot", 40, 80, 20, lr_floor=1e-4))
    register_dataset(
        DatasetSpec(
            "toy-set", "ToySet", lam=0.3, aliases=("toy",), stats=stats,
            sources=(Source("lightgcn", ("toy/train.txt", "toy/test.txt")),),
        )
    )  # fmt: skip
    ids = ciess_env.register_envs()
    assert {"CIESS-ToyDot-ToySet-v0", "CIESS-ToyDot-ML1M-v0", "CIESS-LightGCN-ToySet-v0"} <= set(
        ids
    )
    assert len(ids) == 5 * 5 * len(ciess_env.ENV_VERSIONS)
    assert "CIESS-ToyDot-ToySet-v1" in ids
    spec = gym.spec("CIESS-ToyDot-ToySet-v0")
    assert (spec.kwargs["backbone"], spec.kwargs["dataset"], spec.kwargs["lam"]) == (
        "toydot", "toy-set", 0.3,
    )  # fmt: skip

    config = paper_train_config("ToyDot", "toy")
    assert (config.n_batches, config.decay_batches, config.lr_floor) == (40, 20, 1e-4)
    data = load_dataset("TOY", data_dir=tmp_path / "data")
    assert (data.name, data.n_users, data.n_items) == ("toy-set", stats.n_users, stats.n_items)
    assert isinstance(make_backbone("toydot", data, d_max=8), ToyDot)

    env = gym.make(
        "CIESS-ToyDot-ToySet-v0", data_dir=tmp_path / "data", batch_size=256, d_max=16,
        cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    base = env.unwrapped
    assert (base.backbone, base.lam, base.train_config.n_batches) == ("toydot", 0.3, 40)
    env.reset(seed=0)
    _, reward, _, _, info = env.step(
        base.sizes_to_action(np.full(base.n_users, 4), np.full(base.n_items, 4))
    )
    assert info["sparsity"] == pytest.approx(0.75)
    assert np.isfinite(reward)

    # The spec's counts guard the data: a truncated copy is refused with the counts named.
    lines = (tmp_path / "data" / "toy" / "test.txt").read_text().splitlines()
    (tmp_path / "data" / "toy" / "test.txt").write_text("\n".join(lines[1:]) + "\n")
    with pytest.raises(DatasetIntegrityError, match=r"toy-set at .* is incomplete or corrupt"):
        load_dataset("toy-set", data_dir=tmp_path / "data")


def test_a_taken_name_is_refused(restore_registries) -> None:
    """Registering an existing backbone or data set name is an error unless replace=True."""
    with pytest.raises(ValueError, match="backbone 'mf' is already registered"):
        register_backbone(BackboneSpec("mf", ToyDot, "MF", 1, 1, 1))
    with pytest.raises(ValueError, match=r"data set .yelp-copy. .* already registered"):
        register_dataset(
            DatasetSpec(
                "yelp-copy", "YelpCopy", 0.2, aliases=("yelp",), sources=(Source("x", ("a",)),)
            )
        )
