"""Pretraining with early stopping, and its on-disk cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ciess_env.config import PretrainConfig, StepConfig
from ciess_env.recommenders import BPRTrainer, TrainConfig, pretrain, pretrain_cache_key
from ciess_env.recommenders.pretraining import resolve_cache_dir

CFG = TrainConfig(n_batches=40, batch_size=256, decay_batches=20)
SETTINGS = PretrainConfig(max_batches=40, eval_every=10)


def _step(backbone: str, **kwargs) -> StepConfig:
    return StepConfig(backbone, CFG, d_max=8, backbone_kwargs=kwargs)


def test_pretrain_keeps_best_and_second_call_loads_without_training(
    clustered_data, tmp_path, monkeypatch
):
    """The second call returns the cached best model and never trains."""
    first = pretrain(_step("lightgcn"), clustered_data, SETTINGS.replace(cache_dir=tmp_path))
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
    second = pretrain(_step("lightgcn"), clustered_data, SETTINGS.replace(cache_dir=tmp_path))
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
        StepConfig("mf", cfg, d_max=8), clustered_data,
        PretrainConfig(eval_every=5, patience=2, max_batches=100), use_cache=False,
    )  # fmt: skip
    assert len(result.history) <= 4
    assert result.path is None


def test_cache_key_changes_with_everything_that_matters(clustered_data, clustered_factory):
    """Hyperparameters, seed, config, data and nested mode all change the key."""
    step = StepConfig("lightgcn", CFG, d_max=8)
    key = pretrain_cache_key(step, clustered_data, SETTINGS)
    assert key == pretrain_cache_key(step.replace(backbone="LightGCN"), clustered_data, SETTINGS)
    # Not part of the key: where the cache lives and the step's retrain design.
    same = SETTINGS.replace(cache_dir="/elsewhere")
    assert key == pretrain_cache_key(step.replace(retrain="fast"), clustered_data, same)
    variants = [
        (step.replace(backbone_kwargs={"l2": 1e-3}), clustered_data, SETTINGS, False),
        (step, clustered_data, SETTINGS.replace(seed=1), False),
        (step, clustered_data, SETTINGS.replace(eval_every=20), False),
        (step, clustered_data, SETTINGS.replace(patience=3), False),
        (step, clustered_data, SETTINGS.replace(max_batches=80), False),
        (step.replace(train=CFG.replace(lr=0.01)), clustered_data, SETTINGS, False),
        (step, clustered_data, SETTINGS, True),
        (step.replace(d_max=16), clustered_data, SETTINGS, False),
        (step.replace(backbone="mf"), clustered_data, SETTINGS, False),
        (step, clustered_factory(seed=1), SETTINGS, False),
    ]
    keys = {pretrain_cache_key(s, d, p, nested=n) for s, d, p, n in variants}
    assert len(keys) == len(variants)
    assert key not in keys


def test_cache_key_is_the_one_before_the_settings_objects(clustered_data):
    """The key of a StepConfig + PretrainConfig hashes the payload the keyword version did.

    Pretrained models are shared through the cache: a changed key would retrain them all.
    """
    import dataclasses
    import hashlib
    import json

    from ciess_env._meta import package_version
    from ciess_env.recommenders.pretraining import _data_fingerprint

    step = StepConfig("LightGCN", CFG, d_min=2, d_max=8, backbone_kwargs={"l2": 1e-3})
    payload = {
        "format": 1, "version": package_version(), "data": clustered_data.name,
        "data_hash": _data_fingerprint(clustered_data), "backbone": "lightgcn",
        "hparams": {"l2": repr(1e-3)}, "config": dataclasses.asdict(CFG), "eval_every": 10,
        "patience": 2, "max_batches": 40, "nested": True, "seed": 3, "d_max": 8, "d_min": 2,
    }  # fmt: skip
    want = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    settings = SETTINGS.replace(seed=3)
    assert pretrain_cache_key(step, clustered_data, settings, nested=True) == want


def test_different_hyperparameters_do_not_reuse_the_cache(clustered_data, tmp_path):
    """A changed hyperparameter trains again and writes a second file."""
    settings = SETTINGS.replace(cache_dir=tmp_path)
    pretrain(_step("mf"), clustered_data, settings)
    other = pretrain(_step("mf", l2=1e-2), clustered_data, settings)
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
    settings = SETTINGS.replace(cache_dir=tmp_path)
    first = pretrain(_step("mf"), clustered_data, settings)
    first.path.write_bytes(b"not a checkpoint")
    again = pretrain(_step("mf"), clustered_data, settings)
    assert not again.from_cache
    assert pretrain(_step("mf"), clustered_data, settings).from_cache


def test_nested_pretraining_makes_small_prefixes_useful(clustered_data):
    """Nested pretraining gives a model whose size-2 prefix beats plain pretraining's."""
    from ciess_env.metrics import evaluate

    step = StepConfig("mf", CFG.replace(batch_size=512), d_max=16)
    settings = PretrainConfig(eval_every=40, max_batches=80)
    plain = pretrain(step, clustered_data, settings, use_cache=False).model
    nested = pretrain(step, clustered_data, settings, use_cache=False, nested=True).model
    small = (np.full(120, 2), np.full(100, 2))
    plain.set_sizes(*small)
    nested.set_sizes(*small)
    q_plain = evaluate(plain, clustered_data).mean_user_quality
    q_nested = evaluate(nested, clustered_data).mean_user_quality
    assert q_nested > q_plain, (q_nested, q_plain)
