"""BudgetLog: recording, top-l selection per budget, save/load round trip."""

from __future__ import annotations

import re

import numpy as np
import pytest

from ciess_env.budget_log import BudgetLog


def filled_log() -> BudgetLog:
    log = BudgetLog(n_users=3, n_items=2, d_max=128)
    rows = [  # (size, q̄): sparsity = 1 − size/128
        (64, 0.99), (16, 0.90), (8, 0.85), (12, 0.95), (4, 0.70), (10, 0.88),
    ]  # fmt: skip
    for step, (size, q) in enumerate(rows, start=1):
        log.record(
            episode=0, step=step, user_sizes=np.full(3, size), item_sizes=np.full(2, size),
            sparsity=1 - size / 128, mean_quality=q, recall_20=q / 4, ndcg_20=q / 2,
        )  # fmt: skip
    return log


def test_top_masks_are_best_quality_first_among_those_meeting_the_budget() -> None:
    """C = 0.9 admits sizes ≤ 12.8 → sizes 8, 12, 4, 10; the best three by q̄ are 12, 10, 8."""
    top = filled_log().top_masks(0.9, l=3)
    assert [int(e.user_sizes[0]) for e in top] == [12, 10, 8]
    assert [e.mean_quality for e in top] == [0.95, 0.88, 0.85]


def test_top_masks_returns_fewer_when_few_meet_the_budget() -> None:
    """Only size 4 reaches c = 0.96; a budget nobody reaches gives an empty list."""
    log = filled_log()
    assert [int(e.user_sizes[0]) for e in log.top_masks(0.96)] == [4]
    assert log.top_masks(0.99) == []


def test_sizes_are_stored_compactly() -> None:
    """d_max ≤ 255 stores uint8, larger d_max int16."""
    assert filled_log()[0].user_sizes.dtype == np.uint8
    big = BudgetLog(1, 1, d_max=512)
    e = big.record(episode=0, step=1, user_sizes=[300], item_sizes=[1], sparsity=0.5,
                   mean_quality=0.5)  # fmt: skip
    assert e.user_sizes.dtype == np.int16


def test_save_load_round_trips_exactly(tmp_path) -> None:
    """save() then load() gives identical entries (sizes, dtypes and float64 scalars)."""
    log = filled_log()
    path = log.save(tmp_path / "search")
    assert path.name == "search.npz"
    assert (tmp_path / "search.json").is_file()
    back = BudgetLog.load(tmp_path / "search")
    assert len(back) == len(log)
    for a, b in zip(log, back, strict=True):
        for name in ("episode", "step", "sparsity", "mean_quality", "recall_20", "ndcg_20"):
            assert getattr(a, name) == getattr(b, name)
        np.testing.assert_array_equal(a.user_sizes, b.user_sizes)
        assert a.item_sizes.dtype == b.item_sizes.dtype


def test_record_rejects_wrong_shapes_and_sizes() -> None:
    """Wrong lengths and out-of-range sizes raise ValueError naming the argument."""
    log = BudgetLog(2, 1)
    with pytest.raises(ValueError, match=re.escape("`user_sizes` must have shape (2,)")):
        log.record(episode=0, step=1, user_sizes=[1], item_sizes=[1], sparsity=0, mean_quality=0)
    with pytest.raises(ValueError, match=re.escape("`item_sizes` must lie in [1, 128]")):
        log.record(episode=0, step=1, user_sizes=[1, 1], item_sizes=[129], sparsity=0,
                   mean_quality=0)  # fmt: skip
    with pytest.raises(ValueError, match=re.escape("`c` must be in [0, 1]")):
        log.top_masks(1.5)


def test_bounded_log_keeps_top_masks_per_budget_and_summarises_every_step() -> None:
    """A bounded log selects exactly what the full log selects, keeping only those masks."""
    full, bounded = filled_log(), BudgetLog(3, 2, d_max=128, budgets=[0.9, 0.95], top_l=2)
    for e in full:
        bounded.record(
            episode=e.episode, step=e.step, user_sizes=e.user_sizes, item_sizes=e.item_sizes,
            sparsity=e.sparsity, mean_quality=e.mean_quality, reward=-e.step,
        )  # fmt: skip
    for c in (0.9, 0.95):
        assert [e.step for e in bounded.top_masks(c, 2)] == [e.step for e in full.top_masks(c, 2)]
    # c = 0.9: sizes 12 and 10 (steps 4, 6); c = 0.95: size 4 (step 5); best reward: step 1.
    assert sorted(e.step for e in bounded) == [1, 4, 5, 6]
    assert [s.step for s in bounded.steps] == [1, 2, 3, 4, 5, 6]
    assert bounded.steps[1].mean_user_size == 16.0
    with pytest.raises(ValueError, match=re.escape("keeps only the top 2 masks for budgets")):
        bounded.top_masks(0.8, 2)
    with pytest.raises(ValueError, match=re.escape("got c=0.9, l=3")):
        bounded.top_masks(0.9, 3)


def test_bounded_log_round_trips_with_its_bound_and_summary(tmp_path) -> None:
    """save() then load() keeps the budgets, top_l, kept masks and every step's summary."""
    log = BudgetLog(3, 2, d_max=128, budgets=[0.9], top_l=1)
    for step, size in enumerate([64, 8, 12], start=1):
        log.record(
            episode=0, step=step, user_sizes=np.full(3, size), item_sizes=np.full(2, size),
            sparsity=1 - size / 128, mean_quality=1 - 1 / size, recall_20=0.2, ndcg_20=0.3,
            reward=0.1 * step,
        )  # fmt: skip
    back = BudgetLog.load(log.save(tmp_path / "bounded"))
    assert (back.budgets, back.top_l) == ((0.9,), 1)
    assert back.steps == log.steps
    assert [e.step for e in back] == [e.step for e in log] == [3]
