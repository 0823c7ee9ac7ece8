"""PEP on synthetic data: exact budgets, shapes, the prefix projection, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents.experiments.selective import retrain_pruned
from agents.pep import PEPConfig, SoftThreshold, pep_prefix_log, pep_search
from ciess_env.budget import kept_budget
from ciess_env.config import StepConfig
from ciess_env.data import InteractionData
from ciess_env.recommenders import TrainConfig

CFG = TrainConfig(n_batches=60, batch_size=128)
BUDGETS = (0.8, 0.9, 0.95)


@pytest.fixture(scope="module")
def masks(tiny_data: InteractionData):
    return pep_search(
        tiny_data, StepConfig("lightgcn", CFG, d_max=32), budgets=BUDGETS,
        config=PEPConfig(check_every=10),
    )  # fmt: skip


def test_soft_threshold_is_the_pep_reparameterisation() -> None:
    """sign(v)·ReLU(|v| − sigmoid(s)) with thresholds shared per the granularity."""
    v = torch.tensor([[0.5, -0.2, 0.05], [-0.6, 0.01, 0.3]])
    t = SoftThreshold((2, 3), "entity", init=0.0)  # sigmoid(0) = 0.5 for both rows
    assert t.s.shape == (2, 1)
    torch.testing.assert_close(t(v), torch.tensor([[0.0, 0.0, 0.0], [-0.1, 0.0, 0.0]]))
    assert SoftThreshold((2, 3), "dimension").s.shape == (1, 3)
    assert SoftThreshold((2, 3)).s.shape == (2, 3)
    with pytest.raises(ValueError, match="`granularity` must be one of"):
        SoftThreshold((2, 3), "row")  # type: ignore[arg-type]


def test_budgets_are_met_exactly(masks, tiny_data: InteractionData) -> None:
    """Kept entries = ⌊(1 − c)·d_max·N⌋ exactly: sparsity within one entry of c (≪ 0.5 %)."""
    n = tiny_data.n_users + tiny_data.n_items
    for c, m in zip(BUDGETS, masks, strict=True):
        assert m.user_mask.shape == (tiny_data.n_users, 32)
        assert m.item_mask.shape == (tiny_data.n_items, 32)
        assert m.user_mask.dtype == bool
        assert m.kept == kept_budget(c, n, 32)
        assert c <= m.sparsity < c + 1 / (32 * n)
        assert m.reached_at_batch is not None
        assert m.reached_at_batch <= CFG.n_batches
    # Nested: a higher budget's kept set was cut later, so it is no larger.
    assert masks[0].kept > masks[1].kept > masks[2].kept
    assert [m.reached_at_batch for m in masks] == sorted(m.reached_at_batch for m in masks)


def test_prefix_projection_meets_the_budget(masks, tiny_data: InteractionData) -> None:
    """Sizes follow the surviving counts, lie in [d_min, d_max] and sum to the cap."""
    n = tiny_data.n_users + tiny_data.n_items
    for m in masks:
        users, items = m.prefix_sizes()
        assert users.shape == (tiny_data.n_users,)
        assert items.shape == (tiny_data.n_items,)
        sizes = np.concatenate([users, items])
        assert sizes.min() >= 1
        assert sizes.max() <= 32
        assert sizes.sum() == kept_budget(m.budget, n, 32)
        counts = np.concatenate(m.row_counts())
        assert np.corrcoef(counts, sizes)[0, 1] > 0.9
        bytes_ = m.storage_bytes()
        assert bytes_["csr"] == m.kept * 5 + 4 * (n + 1)
        assert bytes_["prefix_equivalent"] == m.kept * 4 + 4 * (n + 1)


def test_search_is_deterministic(masks, tiny_data: InteractionData) -> None:
    again = pep_search(
        tiny_data, StepConfig("lightgcn", CFG, d_max=32), budgets=BUDGETS,
        config=PEPConfig(check_every=10),
    )  # fmt: skip
    for a, b in zip(masks, again, strict=True):
        np.testing.assert_array_equal(a.user_mask, b.user_mask)
        np.testing.assert_array_equal(a.item_mask, b.item_mask)


def test_without_annealing_the_final_cut_still_meets_the_budget(tiny_data) -> None:
    """Plain PEP thresholds stay far below 80 % here; the cut at max_batches does the rest."""
    (m,) = pep_search(
        tiny_data, StepConfig("mf", CFG.replace(n_batches=20), d_max=32), budgets=(0.9,),
        config=PEPConfig(anneal=False),
    )  # fmt: skip
    assert m.reached_at_batch is None
    assert m.threshold_sparsity < 0.9
    assert m.sparsity == pytest.approx(0.9, abs=1 / (32 * 100))


def test_retrain_scores_the_pruned_structure(masks, tiny_data: InteractionData) -> None:
    """The lottery-ticket retraining keeps the mask: its sparsity is the mask's, metrics valid."""
    m = masks[1]
    kw = dict(budget=m.budget)
    step = StepConfig("lightgcn", CFG, d_max=32)
    res = retrain_pruned(m.user_mask, m.item_mask, tiny_data, step, **kw)
    assert res.sparsity == pytest.approx(masks[1].sparsity)
    assert 0.0 <= res.recall_20 <= 1.0
    assert 0.0 <= res.ndcg_20 <= 1.0
    # Train + validation runs the best count scaled by |train ∪ val| / |train| (≈ 1.5 here).
    assert 1 <= res.batches <= 2 * CFG.n_batches
    again = retrain_pruned(m.user_mask, m.item_mask, tiny_data, step, **kw)
    assert again == res


def test_two_table_backbones_are_refused(tiny_data: InteractionData) -> None:
    with pytest.raises(ValueError, match=r"PEP here prunes one table per side.*NCF"):
        pep_search(tiny_data, StepConfig("ncf", CFG, d_max=16), budgets=(0.9,))


def test_prefix_log_holds_one_projection_per_budget(masks) -> None:
    log = pep_prefix_log(masks)
    assert len(log) == 3
    for entry, m in zip(log, masks, strict=True):
        users, items = m.prefix_sizes()
        np.testing.assert_array_equal(entry.user_sizes, users)
        np.testing.assert_array_equal(entry.item_sizes, items)
        assert entry.sparsity == pytest.approx(m.budget, abs=1e-3)
        assert entry.sparsity >= m.budget - 1e-12


def test_the_old_loose_keywords_are_a_clear_error(tiny_data: InteractionData) -> None:
    """pep_search takes the step's settings as one StepConfig (issue 30), and says so."""
    with pytest.raises(TypeError, match=r"pep_search takes a StepConfig .* got str"):
        pep_search(tiny_data, "lightgcn", budgets=(0.9,))
