"""Pretraining with early stopping, and its on-disk cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ciess_env.recommenders import BPRTrainer, TrainConfig, pretrain, pretrain_cache_key
from ciess_env.recommenders.pretraining import resolve_cache_dir

CFG = TrainConfig(n_batches=40, batch_size=256, decay_batches=20)
KW = {"d_max": 8, "config": CFG, "eval_every": 10, "max_batches": 40}


def test_pretrain_keeps_best_and_second_call_loads_without_training(
    clustered_data, tmp_path, monkeypatch
):
    """The second call returns the cached best model and never trains."""
    first = pretrain("lightgcn", clustered_data, cache_dir=tmp_path, **KW)
    assert not first.from_cache
    assert first.path is not None
    assert first.path.is_file()
    assert [b for b, _ in first.history][:2] == [10, 20]
    best_q = max(q for _, q in first.history)
    assert first.eval.mean_user_quality == pytest.approx(best_q)
    assert dict(first.history)[first.best_batches] == pytest.approx(best_q)
    assert not list(tmp_path.rglob("*.tmp"))  # atomic write left no temporary file

    def boom(*args, **kwargs):
        raise AssertionError("trained although cached")

    monkeypatch.setattr(BPRTrainer, "run", boom)
    second = pretrain("lightgcn", clustered_data, cache_dir=tmp_path, **KW)
    assert second.from_cache
    assert second.best_batches == first.best_batches
    assert second.history == first.history
    np.testing.assert_array_equal(second.eval.user_quality, first.eval.user_quality)
    assert all(torch.equal(second.state_dict[k], first.state_dict[k]) for k in first.state_dict)
    sd = second.model.state_dict()
    assert all(torch.equal(sd[k], first.state_dict[k]) for k in first.state_dict)


def test_early_stopping_stops_after_patience(clustered_data):
    """With lr so small nothing improves, training stops after patience + 1 evaluations."""
    cfg = TrainConfig(n_batches=100, batch_size=64, lr=1e-12, lr_floor=0.0)
    result = pretrain(
        "mf", clustered_data, d_max=8, config=cfg, eval_every=5, patience=2,
        max_batches=100, use_cache=False,
    )  # fmt: skip
    assert len(result.history) <= 4
    assert result.path is None


def test_cache_key_changes_with_everything_that_matters(clustered_data, clustered_factory):
    """Hyperparameters, seed, config, data and nested mode all change the key."""
    base = {
        "d_max": 8, "d_min": 1, "config": CFG, "eval_every": 10, "patience": 2,
        "max_batches": 40, "nested": False, "seed": 0, "hparams": {},
    }  # fmt: skip
    key = pretrain_cache_key("lightgcn", clustered_data, **base)
    assert key == pretrain_cache_key("LightGCN", clustered_data, **base)
    variants = [
        ("lightgcn", clustered_data, {"hparams": {"l2": 1e-3}}),
        ("lightgcn", clustered_data, {"seed": 1}),
        ("lightgcn", clustered_data, {"config": CFG.replace(lr=0.01)}),
        ("lightgcn", clustered_data, {"nested": True}),
        ("lightgcn", clustered_data, {"d_max": 16}),
        ("mf", clustered_data, {}),
        ("lightgcn", clustered_factory(seed=1), {}),
    ]
    keys = {pretrain_cache_key(name, data, **(base | change)) for name, data, change in variants}
    assert len(keys) == len(variants)
    assert key not in keys


def test_different_hyperparameters_do_not_reuse_the_cache(clustered_data, tmp_path):
    """A changed hyperparameter trains again and writes a second file."""
    pretrain("mf", clustered_data, cache_dir=tmp_path, **KW)
    other = pretrain("mf", clustered_data, cache_dir=tmp_path, l2=1e-2, **KW)
    assert not other.from_cache
    assert len(list((tmp_path / "pretrained").glob("*.pt"))) == 2


def test_cache_dir_resolution(tmp_path, monkeypatch):
    """cache_dir= beats $CIESS_CACHE_DIR, which beats the platform cache folder."""
    monkeypatch.setenv("CIESS_CACHE_DIR", str(tmp_path / "env"))
    assert resolve_cache_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_cache_dir() == tmp_path / "env"
    monkeypatch.delenv("CIESS_CACHE_DIR")
    assert "ciess-env" in str(resolve_cache_dir())


def test_corrupt_cache_file_is_retrained(clustered_data, tmp_path):
    """An unreadable cache file is ignored (with a warning log) and overwritten."""
    first = pretrain("mf", clustered_data, cache_dir=tmp_path, **KW)
    first.path.write_bytes(b"not a checkpoint")
    again = pretrain("mf", clustered_data, cache_dir=tmp_path, **KW)
    assert not again.from_cache
    assert pretrain("mf", clustered_data, cache_dir=tmp_path, **KW).from_cache


def test_nested_pretraining_makes_small_prefixes_useful(clustered_data):
    """Nested pretraining gives a model whose size-2 prefix beats plain pretraining's."""
    from ciess_env.metrics import evaluate

    kw = {"d_max": 16, "config": CFG.replace(batch_size=512), "eval_every": 40, "max_batches": 80}
    plain = pretrain("mf", clustered_data, use_cache=False, **kw).model
    nested = pretrain("mf", clustered_data, use_cache=False, nested=True, **kw).model
    small = (np.full(120, 2), np.full(100, 2))
    plain.set_sizes(*small)
    nested.set_sizes(*small)
    q_plain = evaluate(plain, clustered_data).mean_user_quality
    q_nested = evaluate(nested, clustered_data).mean_user_quality
    assert q_nested > q_plain, (q_nested, q_plain)
