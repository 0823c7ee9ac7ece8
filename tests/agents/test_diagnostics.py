"""size_dispersion: sizes that are a function of popularity have no within-decile spread."""

import numpy as np
import pytest

from agents.experiments.diagnostics import size_dispersion


def test_sizes_set_by_popularity_decile_are_fully_explained():
    freq = np.arange(1, 101)
    sizes = 1 + (np.argsort(np.argsort(freq)) * 10 // 100) * 3  # one size per decile
    d = size_dispersion(sizes, sizes[:50], freq, freq[:50])
    assert d["within_std"] == pytest.approx(0.0, abs=1e-9)
    assert d["explained"] == pytest.approx(1.0)
    assert d["total_std"] > 5


def test_independent_noise_shows_up_as_within_decile_std():
    rng = np.random.default_rng(0)
    freq = rng.integers(1, 500, 5000)
    intent = np.round(4 + 20 * (freq / freq.max()))
    noisy = np.clip(np.round(intent + rng.normal(0, 6, freq.size)), 1, 128)
    d = size_dispersion(noisy, noisy[:100], freq, freq[:100])
    assert d["within_std"] == pytest.approx(6.0, rel=0.1)  # the noise's σ (clip aside)
    assert 0.0 < d["explained"] < 0.5
    with pytest.raises(ValueError, match="must be 1-D of the same length"):
        size_dispersion(noisy, noisy[:10], freq, freq[:9])
