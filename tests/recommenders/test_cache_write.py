"""A cache that cannot be written costs a warning, never the trained model."""

from __future__ import annotations

import pytest

from ciess_env.config import PretrainConfig, StepConfig
from ciess_env.errors import CacheWriteWarning
from ciess_env.recommenders import TrainConfig, pretrain

CFG = TrainConfig(n_batches=20, batch_size=256, decay_batches=10)
STEP = StepConfig("mf", CFG, d_max=8)


def test_unwritable_cache_dir_warns_and_keeps_the_model(clustered_data, tmp_path):
    """cache_dir pointing at a file: pretraining finishes, warns naming the path and the fix."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    settings = PretrainConfig(eval_every=10, max_batches=20, cache_dir=blocker)
    with pytest.warns(CacheWriteWarning, match="Could not write the pretrain cache") as record:
        result = pretrain(STEP, clustered_data, settings)
    message = str(record[0].message)
    assert str(blocker) in message
    assert "CIESS_CACHE_DIR" in message
    assert result.model is not None
    assert result.best_batches in (10, 20)
    assert result.path is None  # nothing was cached
    assert not result.from_cache
