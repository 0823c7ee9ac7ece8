"""The final-retraining rule: early stopping, the merged-split count, the test trace."""

from __future__ import annotations

import numpy as np
import pytest

from ciess_env.data import make_synthetic
from ciess_env.recommenders import TrainConfig
from ciess_env.retrain import (
    FinalRetrainRule,
    final_retrain,
    merged_batches,
    score_on_test,
)

TINY = {"n_users": 40, "n_items": 30, "mean_interactions": 8}


@pytest.fixture(scope="module")
def data():
    return make_synthetic(**TINY, seed=3)


def _sizes(data, size: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full(data.n_users, size), np.full(data.n_items, size)


def test_merged_count_keeps_the_number_of_passes_and_the_legacy_rule_keeps_the_count(data):
    """|train ∪ val| / |train| × best, on the evaluation grid; legacy: the best count itself."""
    ratio = (len(data.train) + len(data.validation)) / len(data.train)
    rule = FinalRetrainRule(eval_every=50, patience=8)
    assert merged_batches(300, data, rule) == 50 * round(300 * ratio / 50)
    assert merged_batches(300, data, rule) % 50 == 0
    assert merged_batches(300, data, FinalRetrainRule.legacy()) == 300
    assert merged_batches(4, data, rule) == round(4 * ratio)  # a cap below one interval


def test_rule_rejects_a_non_positive_interval():
    with pytest.raises(ValueError, match="eval_every and patience must be >= 1, got 0 and 8"):
        FinalRetrainRule(eval_every=0)


def test_final_retrain_stops_after_patience_and_keeps_the_best_state(data):
    """The best count is the argmax of the validation history; at most P evaluations follow."""
    config = TrainConfig(n_batches=60, batch_size=64, decay_batches=10)
    rule = FinalRetrainRule(eval_every=4, patience=3)
    res = final_retrain(data, *_sizes(data, 4), backbone="mf", config=config, rule=rule, d_max=16)
    batches = [b for b, _ in res.history]
    quality = [q for _, q in res.history]
    assert batches == list(range(4, 4 * len(batches) + 1, 4))
    assert res.best_batches == batches[int(np.argmax(quality))]
    assert len(batches) <= batches.index(res.best_batches) + 1 + rule.patience
    assert res.validation.mean_user_quality == pytest.approx(max(quality))
    assert res.final_batches == merged_batches(res.best_batches, data, rule)
    assert res.test is not None
    assert 0.0 <= res.test.recall(20) <= 1.0


def test_tracing_the_test_curve_does_not_change_the_score(data):
    """Evaluating along the merged run leaves training untouched (the fidelity study needs it)."""
    config = TrainConfig(n_batches=12, batch_size=64, decay_batches=4)
    kw = dict(backbone="mf", config=config, d_max=16, seed=5)
    plain, _ = score_on_test(data, *_sizes(data, 6), 10, **kw)
    traced, trace = score_on_test(data, *_sizes(data, 6), 10, trace_test_every=4, trace_until=16,
                                  **kw)  # fmt: skip
    assert [b for b, _ in trace] == [4, 8, 12, 16]
    np.testing.assert_array_equal(plain.user_quality, traced.user_quality)
    # and the traced point at 8 batches is what an 8-batch run scores
    at8, _ = score_on_test(data, *_sizes(data, 6), 8, **kw)
    np.testing.assert_array_equal(dict(trace)[8].user_quality, at8.user_quality)


def test_epochs_design_compresses_the_scratch_schedule_onto_e_passes():
    """epochs:5 on 50,001 pairs: 25 batches of 10,000, decay every round(200 · 25 / 2000) = 2."""
    from ciess_env.retrain import RetrainDesign

    base = TrainConfig(n_batches=2000, batch_size=10_000, decay_batches=200)
    design = RetrainDesign.parse("epochs:5")
    assert str(design) == "epochs:5"
    cfg = design.config(base, n_train=50_001)
    assert (cfg.n_batches, cfg.decay_batches, cfg.lr) == (25, 2, base.lr)
    ml1m = design.config(base, n_train=500_144)
    assert (ml1m.n_batches, ml1m.decay_batches) == (250, 25)
    with pytest.raises(ValueError, match="needs the training split's size"):
        design.config(base)
    with pytest.raises(ValueError, match="'epochs:E' \\(E > 0\\)"):
        RetrainDesign.parse("epochs:0")
