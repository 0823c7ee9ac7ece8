"""OptEmbed on synthetic data: the size law, budgets, determinism, the log, errors."""

from __future__ import annotations

import numpy as np
import pytest

from agents.optembed import (
    OptEmbedConfig,
    _log_probs,
    evolve,
    fit_alpha,
    optembed_log,
    sample_sizes,
)
from ciess_env.budget import kept_budget
from ciess_env.data import InteractionData
from ciess_env.recommenders import BPRTrainer, TrainConfig, make_backbone

SMALL = OptEmbedConfig(generations=3, population=6, keep_top=4, n_crossover=3, n_mutation=3)


@pytest.fixture(scope="module")
def supernet(tiny_data: InteractionData):
    model = make_backbone("lightgcn", tiny_data, d_max=32, seed=0)
    trainer = BPRTrainer(model, tiny_data, TrainConfig(n_batches=30, batch_size=128), seed=0,
                         nested=True)  # fmt: skip
    trainer.run()
    return model.eval()


@pytest.mark.parametrize("c", [0.3, 0.8, 0.95])
def test_the_size_law_has_the_budgets_mean(c: float) -> None:
    """α is fitted so that E[d] = d_max (1 − c); small sizes are likelier when c is high."""
    alpha = fit_alpha(c, 1, 128)
    p = _log_probs(alpha, 1, 128)
    assert float(p @ np.arange(1, 129)) == pytest.approx(128 * (1 - c), rel=1e-6)
    assert (p[0] > p[-1]) == (c > 0.5)
    draws = sample_sizes(np.random.default_rng(0), 20_000, alpha, 1, 128)
    assert draws.shape == (1, 20_000)
    assert draws.mean() == pytest.approx(128 * (1 - c), rel=0.05)


def test_evolution_meets_the_budget_and_is_deterministic(supernet, tiny_data) -> None:
    n = tiny_data.n_users + tiny_data.n_items
    before = supernet.user_sizes.clone()
    for c in (0.8, 0.95):
        r = evolve(supernet, tiny_data, c, SMALL, seed=3)
        again = evolve(supernet, tiny_data, c, SMALL, seed=3)
        sizes = np.concatenate([r.user_sizes, r.item_sizes])
        assert r.user_sizes.shape == (tiny_data.n_users,)
        assert sizes.min() >= 1
        assert sizes.max() <= 32
        assert sizes.sum() <= kept_budget(c, n, 32)
        assert r.sparsity >= c
        # The best fitness never falls: the fittest survive each generation.
        assert len(r.history) == SMALL.generations + 1
        assert r.history == sorted(r.history)
        assert r.validation_score == r.history[-1]
        assert SMALL.population <= r.evaluations <= SMALL.population + 3 * 6
        np.testing.assert_array_equal(r.user_sizes, again.user_sizes)
        np.testing.assert_array_equal(r.item_sizes, again.item_sizes)
    other = evolve(supernet, tiny_data, 0.8, SMALL, seed=4)
    assert not np.array_equal(other.user_sizes, r.user_sizes)
    # The supernet's own sizes are restored.
    assert bool((supernet.user_sizes == before).all())


def test_log_holds_one_scored_entry_per_budget(supernet, tiny_data) -> None:
    results = [evolve(supernet, tiny_data, c, SMALL, seed=0) for c in (0.8, 0.9)]
    log = optembed_log(results)
    assert len(log) == 2
    for entry, r in zip(log, results, strict=True):
        np.testing.assert_array_equal(entry.user_sizes, r.user_sizes)
        assert entry.mean_quality == r.validation_score
        assert entry.sparsity == pytest.approx(r.sparsity)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"generations": -1}, "`generations` must be a whole number >= 0"),
        ({"population": 0}, "`population` must be a whole number >= 1"),
        ({"keep_top": 1}, "crossover needs two parents"),
        ({"mutation_prob": 1.5}, r"`mutation_prob` must be in \[0, 1\]"),
        ({"metric": "hit@10"}, "`metric` must read 'ndcg@K' or 'recall@K'"),
    ],
)
def test_bad_settings_are_refused(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        OptEmbedConfig(**kwargs)


def test_bad_arguments_name_what_is_wrong(supernet, tiny_data) -> None:
    from agents.magprune import config_from_kwargs

    with pytest.raises(ValueError, match=r"`c` \(target sparsity\) must be in \[0, 1\)"):
        evolve(supernet, tiny_data, 1.0, SMALL)
    with pytest.raises(ValueError, match="fewer than d_min=1"):
        evolve(supernet, tiny_data, 0.99, SMALL)
    with pytest.raises(ValueError, match="generation"):
        config_from_kwargs(OptEmbedConfig, {"generation": 3}, "OptEmbed")
    with pytest.raises(ValueError, match="need whole numbers 1 <= d_min <= d_max"):
        fit_alpha(0.8, 0, 128)


def test_compare_retrains_optembeds_sizes(tmp_path) -> None:
    from agents.experiments.comparison import compare

    kw = {"preset": "tiny", "dataset_kwargs": {"n_users": 40, "n_items": 30,
          "mean_interactions": 8}, "cache_dir": str(tmp_path)}  # fmt: skip
    small = {"generations": 1, "population": 4, "keep_top": 2, "n_crossover": 2, "n_mutation": 2}
    result = compare(
        "CIESS-LightGCN-Synthetic-v1", ["optembed"], budgets=[0.8, 0.9], retrain_batches=4,
        env_kwargs=kw, progress_bar=False, agent_kwargs={"optembed": small},
    )  # fmt: skip
    table = result.table.set_index("budget")
    for r in result.pruned["optembed"]:
        assert table.loc[r.budget, "sparsity"] == pytest.approx(r.sparsity)
        assert r.sparsity >= r.budget
        assert 0.0 <= table.loc[r.budget, "recall@20"] <= 1.0
    assert len(result.logs["optembed"]) == 2
