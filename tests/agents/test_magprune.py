"""MagPrune on synthetic data: per-table budgets, protected entries, min_item choice, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents.magprune import (
    MagPruneConfig,
    _peak_search,
    magnitude_scores,
    magprune,
    prune_table,
    published_result,
)
from ciess_env.budget import kept_budget
from ciess_env.data import InteractionData
from ciess_env.recommenders import BPRTrainer, TrainConfig, make_backbone

BUDGETS = (0.8, 0.9, 0.95)


@pytest.fixture(scope="module")
def trained(tiny_data: InteractionData):
    model = make_backbone("lightgcn", tiny_data, d_max=32, seed=0)
    BPRTrainer(model, tiny_data, TrainConfig(n_batches=40, batch_size=128), seed=0).run()
    return model.eval()


def test_prune_table_keeps_the_largest_and_protects_each_rows_top() -> None:
    """Per table: the cap of largest |w| kept; min_item protects each row's own top entries."""
    scores = torch.tensor([[9.0, 8.0, 7.0, 6.0], [0.4, 0.3, 0.2, 0.1]])
    plain = prune_table(scores, 0.5, 0)  # keep 4 of 8: all of row 0
    assert plain.tolist() == [[True] * 4, [False] * 4]
    protected = prune_table(scores, 0.5, 1)  # row 1's largest protected, row 0 loses its least
    assert protected.tolist() == [[True, True, True, False], [True, False, False, False]]
    assert int(protected.sum()) == kept_budget(0.5, 2, 4)


def test_budget_is_met_per_table_and_masks_are_deterministic(trained, tiny_data) -> None:
    masks = magprune(trained, tiny_data, BUDGETS, MagPruneConfig(min_item="all"))
    again = magprune(trained, tiny_data, BUDGETS, MagPruneConfig(min_item="all"))
    for c, m, m2 in zip(BUDGETS, masks, again, strict=True):
        assert m.user_mask.sum() == kept_budget(c, tiny_data.n_users, 32)
        assert m.item_mask.sum() == kept_budget(c, tiny_data.n_items, 32)
        assert c <= m.sparsity < c + 2 / (32 * (tiny_data.n_users + tiny_data.n_items))
        # "all" tries every min_item in [0, ⌊32 (1 − c)⌋] and keeps the best on validation.
        assert sorted(m.tried) == list(range(int(32 * (1 - c) + 1e-9) + 1))
        assert m.validation_score == max(m.tried.values())
        assert m.tried[m.min_item] == m.validation_score
        # Every row keeps at least its min_item entries.
        assert m.row_counts()[0].min() >= m.min_item
        np.testing.assert_array_equal(m.user_mask, m2.user_mask)
        np.testing.assert_array_equal(m.item_mask, m2.item_mask)
        assert m.storage_bytes()["csr"] > m.storage_bytes()["prefix_equivalent"]


def test_pruning_reads_the_trained_magnitudes(trained, tiny_data) -> None:
    """With min_item 0 the kept user entries are exactly the largest |w| of the user table."""
    (m,) = magprune(trained, tiny_data, [0.9], MagPruneConfig(min_item=0))
    w = trained.user_emb.detach().abs().numpy()
    kept, dropped = w[m.user_mask], w[~m.user_mask]
    assert kept.min() >= dropped.max()
    assert m.min_item == 0
    assert list(m.tried) == [0]


def test_ncf_towers_share_one_mask_by_their_joint_magnitude(tiny_data) -> None:
    model = make_backbone("ncf", tiny_data, d_max=16, seed=0)
    users, _ = magnitude_scores(model)
    expected = (model.gmf_user.detach() ** 2 + model.mlp_user.detach() ** 2).sqrt()
    torch.testing.assert_close(users, expected)
    (m,) = magprune(model, tiny_data, [0.8], MagPruneConfig(min_item="none"))
    assert m.user_mask.sum() == kept_budget(0.8, tiny_data.n_users, 16)


def test_published_result_scores_the_pruned_model_without_training(trained, tiny_data) -> None:
    (m,) = magprune(trained, tiny_data, [0.9], MagPruneConfig(min_item=1))
    row = published_result(trained, m, tiny_data)
    assert row.batches == 0
    assert row.sparsity == pytest.approx(m.sparsity)
    assert 0.0 <= row.recall_20 <= 1.0
    # The trained model itself is untouched (the probe is a copy).
    assert trained.element_masks() is None


def test_peak_search_finds_the_peak_of_a_unimodal_curve() -> None:
    calls: list[int] = []

    def score(k: int) -> float:
        calls.append(k)
        return -((k - 7) ** 2)

    assert _peak_search(score, 20) == 7
    assert len(set(calls)) < 21  # fewer evaluations than trying all
    assert _peak_search(lambda k: -float(k), 10) == 0  # falling from 0: keep 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_item": "peak"}, r"`min_item` must be one of \['binary', 'all', 'none'\]"),
        ({"min_item": -1}, "or a whole number >= 0"),
        ({"metric": "auc"}, "`metric` must read 'ndcg@K' or 'recall@K'"),
    ],
)
def test_bad_settings_are_refused(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        MagPruneConfig(**kwargs)


def test_bad_arguments_name_what_is_wrong(trained, tiny_data) -> None:
    with pytest.raises(ValueError, match=r"`min_item` must be a whole number in \[0, 1\]"):
        magprune(trained, tiny_data, [0.95], MagPruneConfig(min_item=5))
    with pytest.raises(ValueError, match=r"`c` \(target sparsity\) must be in \[0, 1\)"):
        magprune(trained, tiny_data, [1.2])
    with pytest.raises(ValueError, match="at least one target sparsity"):
        magprune(trained, tiny_data, [])
    with pytest.raises(ValueError, match="2-D"):
        prune_table(torch.ones(3), 0.5)
    with pytest.raises(ValueError, match="must be finite"):
        prune_table(torch.tensor([[float("nan"), 1.0]]), 0.5)


TINY = {"n_users": 40, "n_items": 30, "mean_interactions": 8}


def test_compare_reports_magprune_as_published_and_retrained(tmp_path) -> None:
    """One search serves both rows; the published row is the pruned model's own test score."""
    from agents.experiments.comparison import compare

    kw = {"preset": "tiny", "dataset_kwargs": TINY, "cache_dir": str(tmp_path)}
    result = compare(
        "CIESS-LightGCN-Synthetic-v1", ["magprune", "magprune-retrain"], budgets=[0.8, 0.9],
        retrain_batches=4, env_kwargs=kw, progress_bar=False,
        agent_kwargs={"magprune": {"min_item": "all"}},
    )  # fmt: skip
    table = result.table.set_index(["agent", "budget"])
    masks = result.pruned["magprune"]
    assert [m.budget for m in masks] == [0.8, 0.9]
    for m in masks:
        c = m.budget
        assert table.loc[("magprune", c), "sparsity"] == pytest.approx(m.sparsity)
        assert table.loc[("magprune-retrain", c), "sparsity"] == pytest.approx(m.sparsity)
        assert table.loc[("magprune", c), "recall@20"] == m.published.recall_20
        assert m.published.batches == 0
        assert c <= m.sparsity
    assert (
        table.loc[("magprune", 0.8), "search_s"] == table.loc[("magprune-retrain", 0.8), "search_s"]
    )
    with pytest.raises(ValueError, match="min_item"):
        compare("CIESS-LightGCN-Synthetic-v1", ["magprune"], env_kwargs=kw, progress_bar=False,
                agent_kwargs={"magprune": {"min_itm": 1}})  # fmt: skip
