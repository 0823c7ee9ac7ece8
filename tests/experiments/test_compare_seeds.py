"""compare(seeds=...) and `ciess compare --seeds`: per-seed rows, mean and CI, reproducible."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from agents.experiments.cli import main
from agents.experiments.comparison import compare, seed_list

ENV_ID = "CIESS-MF-Synthetic-v0"
TD3 = {"td3": {"batch_size": 64, "policy_kwargs": {"net_arch": [16]}, "gradient_steps": 5}}


@pytest.fixture
def env_kwargs(tmp_path) -> dict:
    return {"preset": "tiny", "lam": 20.0, "cache_dir": str(tmp_path / "cache"),
            "dataset_kwargs": {"n_users": 40, "n_items": 30, "mean_interactions": 8}}  # fmt: skip


def _run(env_kwargs, **kw):
    return compare(ENV_ID, ["es", "td3"], budgets=[0.5], episodes=1, top_l=1,
                   env_kwargs=env_kwargs, agent_kwargs=TD3, retrain_batches=4,
                   progress_bar=False, **kw)  # fmt: skip


def test_seeds_change_results_and_the_same_seed_reproduces_them(env_kwargs, tmp_path) -> None:
    multi = _run(env_kwargs, seeds=[0, 1], output_dir=tmp_path / "cmp")
    table = multi.table
    assert multi.seeds == [0, 1]
    assert list(zip(table["agent"], table["seed"], strict=True)) == [
        ("es", 0), ("td3", 0), ("es", 1), ("td3", 1)
    ]  # fmt: skip
    metrics = ["sparsity", "recall@20", "ndcg@20"]
    td3 = table[table["agent"] == "td3"].set_index("seed")[metrics]
    assert not td3.loc[0].equals(td3.loc[1])  # the seed varies the search and the retraining
    es = table[table["agent"] == "es"].set_index("seed")["ndcg@20"]
    assert es.loc[0] != es.loc[1]  # ... and ES's final retraining, with the same sizes
    again = _run(env_kwargs, seed=1).table
    pd.testing.assert_frame_equal(
        again[metrics].reset_index(drop=True),
        table[table["seed"] == 1][metrics].reset_index(drop=True),
    )
    summary = multi.summary(n_resamples=500)
    assert list(summary["seeds"]) == [2, 2]
    row = summary[summary["agent"] == "td3"].iloc[0]
    assert row["recall@20"] == pytest.approx(table[table["agent"] == "td3"]["recall@20"].mean())
    assert math.isnan(row["recall@20_low"])  # 2 seeds: no interval (stats.MIN_SEEDS = 3)
    assert "### Budget 50 % pruned" in (tmp_path / "cmp" / "results.md").read_text()
    for name in ("summary.md", "summary.csv", "quality_vs_memory.png", "curve_td3@0.csv"):
        assert (tmp_path / "cmp" / name).is_file(), name


def test_seed_list_counts_from_seed_and_refuses_nonsense() -> None:
    assert seed_list(0, None) == [0]
    assert seed_list(5, 3) == [5, 6, 7]
    assert seed_list(0, [3, 1]) == [3, 1]
    with pytest.raises(ValueError, match="`seeds` must be >= 1"):
        seed_list(0, 0)
    with pytest.raises(ValueError, match="distinct"):
        seed_list(0, [1, 1])


def test_cli_compare_seeds_writes_the_interval_table(env_kwargs, tmp_path, capsys) -> None:
    out = tmp_path / "cli"
    env_kw = [f"{k}={v!r}" for k, v in env_kwargs.items()]
    code = main(["compare", ENV_ID, "--agents", "es", "mr", "--budgets", "0.5", "--seeds", "3",
                 "--batches", "4", "--output", str(out), "--env-kw", *env_kw])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "| mr | 3 | 0.5" in printed
    assert "mean [CI]" in printed
    assert sorted(set(pd.read_csv(out / "results.csv")["seed"])) == [0, 1, 2]


def test_pep_masks_are_kept_per_seed(env_kwargs, tmp_path) -> None:
    """With several seeds, PEP's element masks are keyed ``pep@seed``, like curves and logs."""
    result = compare(ENV_ID, ["pep", "pep-prefix"], budgets=[0.8], seeds=[0, 1],
                     env_kwargs=env_kwargs, retrain_batches=4, progress_bar=False,
                     output_dir=tmp_path / "cmp")  # fmt: skip
    assert sorted(result.pruned) == ["pep@0", "pep@1"]
    assert [m.budget for m in result.pruned["pep@1"]] == [0.8]
    assert sorted(result.logs) == ["pep-prefix@0", "pep-prefix@1"]  # PEP's masks are no log
    assert list(zip(result.table["agent"], result.table["seed"], strict=True)) == [
        ("pep", 0), ("pep-prefix", 0), ("pep", 1), ("pep-prefix", 1)
    ]  # fmt: skip
    single = compare(ENV_ID, ["pep"], budgets=[0.8], seed=1, env_kwargs=env_kwargs,
                     retrain_batches=4, progress_bar=False)  # fmt: skip
    assert list(single.pruned) == ["pep"]  # one seed: unsuffixed keys, as before
    assert single.table["sparsity"].iloc[0] == pytest.approx(result.table["sparsity"].iloc[2])
