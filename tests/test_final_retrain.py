"""The final-retraining rule: early stopping, the merged-split count, the test trace."""

from __future__ import annotations

import re

import numpy as np
import pytest

from ciess_env.config import StepConfig
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
    msg = "`FinalRetrainRule.eval_every` must be an integer >= 1, got 0."
    with pytest.raises(ValueError, match=re.escape(msg)):
        FinalRetrainRule(eval_every=0)


def test_final_retrain_stops_after_patience_and_keeps_the_best_state(data):
    """The best count is the argmax of the validation history; at most P evaluations follow."""
    config = TrainConfig(n_batches=60, batch_size=64, decay_batches=10)
    rule = FinalRetrainRule(eval_every=4, patience=3, seeds=1)
    res = final_retrain(data, *_sizes(data, 4), StepConfig("mf", config, d_max=16), rule=rule)
    batches = [b for b, _ in res.history]
    quality = [q for _, q in res.history]
    assert batches == list(range(4, 4 * len(batches) + 1, 4))
    assert res.best_batches == batches[int(np.argmax(quality))]
    assert len(batches) <= batches.index(res.best_batches) + 1 + rule.patience
    assert res.validation.mean_user_quality == pytest.approx(max(quality))
    assert res.final_batches == merged_batches(res.best_batches, data, rule)
    assert res.test is not None
    assert 0.0 <= res.test.recall(20) <= 1.0


def test_two_seed_rule_averages_two_one_seed_runs_and_selection_scores_the_same(data):
    """seeds=2 is the mean of seeds s and s + 1000; selective retraining reports that mean."""
    from agents.experiments.selective import selective_retrain
    from ciess_env.budget_log import BudgetLog

    config = TrainConfig(n_batches=40, batch_size=64, decay_batches=10)
    one, two = (
        FinalRetrainRule(eval_every=4, patience=3, seeds=1),
        FinalRetrainRule(eval_every=4, patience=3, seeds=2),
    )
    assert two.seed_list(7) == [7, 1007]
    step = StepConfig("mf", config, d_max=16)
    a, b = (final_retrain(data, *_sizes(data, 4), step, rule=one, seed=s) for s in (7, 1007))
    both = final_retrain(data, *_sizes(data, 4), step, rule=two, seed=7)
    assert [r.seed for r in both.runs] == [7, 1007]
    for metric in (lambda e: e.recall(20), lambda e: e.ndcg(20), lambda e: e.mean_user_quality):
        assert metric(both.test) == pytest.approx((metric(a.test) + metric(b.test)) / 2)
        assert metric(both.validation) == pytest.approx(
            (metric(a.validation) + metric(b.validation)) / 2
        )
    assert both.final_batches == round((a.final_batches + b.final_batches) / 2)
    log = BudgetLog(data.n_users, data.n_items, d_max=16)
    users, items = _sizes(data, 4)
    log.record(episode=0, step=1, user_sizes=users, item_sizes=items, sparsity=0.75,
               mean_quality=0.5)  # fmt: skip
    (row,) = selective_retrain(log, data, step, rule=two.replace(top_l=1), budgets=[0.7], seed=7)
    assert row.recall_20 == pytest.approx(both.test.recall(20))
    assert row.validation_quality == pytest.approx(both.validation.mean_user_quality)


def test_tracing_the_test_curve_does_not_change_the_score(data):
    """Evaluating along the merged run leaves training untouched (the fidelity study needs it)."""
    config = TrainConfig(n_batches=12, batch_size=64, decay_batches=4)
    kw = dict(seed=5)
    step = StepConfig("mf", config, d_max=16)
    plain, _ = score_on_test(data, *_sizes(data, 6), 10, step, **kw)
    traced, trace = score_on_test(data, *_sizes(data, 6), 10, step, trace_test_every=4,
                                  trace_until=16, **kw)  # fmt: skip
    assert [b for b, _ in trace] == [4, 8, 12, 16]
    np.testing.assert_array_equal(plain.user_quality, traced.user_quality)
    # and the traced point at 8 batches is what an 8-batch run scores
    at8, _ = score_on_test(data, *_sizes(data, 6), 8, step, **kw)
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


def test_converge_design_is_the_early_stopped_first_half_of_the_final_retraining(data):
    """retrain='converge:E/P' stops on validation and scores the best state, as final_retrain."""
    from ciess_env.retrain import RetrainDesign, retrain_and_evaluate

    design = RetrainDesign.parse("converge:4/2")
    assert (str(design), design.eval_every, design.patience) == ("converge:4/2", 4, 2)
    for bad in ("converge:4", "converge:0/2", "converge:4/x"):
        with pytest.raises(ValueError, match="'converge:E/P' \\(E, P >= 1\\)"):
            RetrainDesign.parse(bad)
    config = TrainConfig(n_batches=40, batch_size=64, decay_batches=10)
    step = StepConfig("mf", config, retrain="converge:4/2", d_max=16)
    users, items = _sizes(data, 4)
    out = retrain_and_evaluate(step, data=data, user_sizes=users, item_sizes=items,
                               init_seed=2, train_seed=2)  # fmt: skip
    ref = final_retrain(
        data, users, items, step, seed=2, rule=FinalRetrainRule(4, 2, seeds=1), test=False
    )  # fmt: skip (the step's converge design is ignored)
    assert out.n_batches == ref.best_batches < 40
    assert out.eval.mean_user_quality == pytest.approx(ref.validation.mean_user_quality)
    assert [b for b, _ in out.history] == [b for b, _ in ref.history]


def test_sprint_design_runs_b_large_batches_at_a_high_steeply_decayed_rate():
    """sprint:150 on the paper's schedule: 150 batches of 50,000 at lr 0.3 × 0.8 every 20."""
    from ciess_env.retrain import RetrainDesign

    base = TrainConfig(n_batches=2000, batch_size=10_000, lr=0.03, decay_batches=200)
    design = RetrainDesign.parse("sprint:150")
    assert str(design) == "sprint:150"
    assert not design.needs_nested_model
    cfg = design.config(base)
    assert (cfg.n_batches, cfg.batch_size, cfg.decay_batches) == (150, 50_000, 20)
    assert (cfg.lr, cfg.lr_decay, cfg.lr_floor) == pytest.approx((0.3, 0.8, base.lr_floor))
    assert design.config(base.replace(batch_size=64)).batch_size == 320
    for bad in ("sprint:0", "sprint:", "sprint:1.5"):
        with pytest.raises(ValueError, match="'sprint:B' \\(B >= 1\\)"):
            RetrainDesign.parse(bad)
