"""Selective retraining, one-call comparison and the ``ciess`` CLI on a tiny synthetic env."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from agents.experiments import compare, selective_retrain
from agents.experiments.cli import main
from ciess_env.budget import fill_to_budget, kept_budget
from ciess_env.budget_log import BudgetLog
from ciess_env.config import StepConfig
from ciess_env.data import make_synthetic
from ciess_env.recommenders import TrainConfig
from ciess_env.retrain import FinalRetrainRule

ENV_ID = "CIESS-MF-Synthetic-v0"
TINY_DATA = {"n_users": 40, "n_items": 30, "mean_interactions": 8}


@pytest.fixture
def tiny_env_kwargs(tmp_path) -> dict:
    """Seconds-scale env settings with a private pretraining cache."""
    return {"preset": "tiny", "dataset_kwargs": TINY_DATA, "cache_dir": str(tmp_path / "cache")}


def _log_with(data, entries: list[tuple[int, float]]) -> BudgetLog:
    """A log of equal-size assignments ``(size, q̄)``."""
    log = BudgetLog(data.n_users, data.n_items, d_max=16)
    n = data.n_users + data.n_items
    for step, (size, q) in enumerate(entries, start=1):
        log.record(
            episode=0, step=step, user_sizes=np.full(data.n_users, size),
            item_sizes=np.full(data.n_items, size), sparsity=1 - size * n / (16 * n),
            mean_quality=q,
        )  # fmt: skip
    return log


def test_selective_retrain_reports_only_budgets_some_mask_meets() -> None:
    """A budget no logged mask reaches gives None; others give test metrics in [0, 1]."""
    data = make_synthetic(**TINY_DATA, seed=1)
    log = _log_with(data, [(8, 0.9), (4, 0.8), (2, 0.7)])  # sparsity 0.5, 0.75, 0.875
    config = TrainConfig(n_batches=4, batch_size=64, decay_batches=2)
    results = selective_retrain(
        log, data, StepConfig("mf", config, d_max=16), rule=FinalRetrainRule(top_l=2),
        budgets=[0.7, 0.95],
    )  # fmt: skip
    assert results[1] is None
    best = results[0]
    assert best is not None
    assert best.candidates == 2  # sizes 4 and 2 meet 70 %
    assert best.sparsity in (0.75, 0.875)
    for value in (best.recall_5, best.recall_20, best.ndcg_5, best.ndcg_20):
        assert 0.0 <= value <= 1.0
    assert best.recall_20 >= best.recall_5  # more slots, at least as many hits


def test_selective_retrain_rejects_a_non_positive_l() -> None:
    """``top_l`` < 1 is refused with the parameter's name."""
    with pytest.raises(
        ValueError, match=r"`FinalRetrainRule.top_l` must be an integer >= 1, got 0"
    ):
        FinalRetrainRule(top_l=0)


def test_compare_fills_every_heuristic_row_and_writes_its_files(tiny_env_kwargs, tmp_path) -> None:
    """ES and MDE meet every budget; the table, the plot and the logs are written."""
    out = tmp_path / "cmp"
    result = compare(
        ENV_ID, ["es", "mde", "td3"], budgets=[0.8, 0.9], episodes=1, top_l=1, seed=0,
        env_kwargs=tiny_env_kwargs, retrain_batches=4, output_dir=out, progress_bar=False,
        agent_kwargs={"td3": {"batch_size": 64, "policy_kwargs": {"net_arch": [16]}}},
    )  # fmt: skip
    table = result.table
    assert list(table["agent"]) == ["es", "es", "mde", "mde", "td3", "td3"]
    heur = table[table["agent"] != "td3"]
    assert heur["recall@20"].notna().all()
    assert (heur["sparsity"] >= heur["budget"] - 1e-9).all()
    assert (heur["sparsity"] - heur["budget"] < 0.01).all()  # within one size unit
    assert len(result.curves["td3"]) == 10  # one episode of T = 10 steps
    for name in ("results.md", "results.csv", "quality_vs_memory.png", "curve_td3.csv"):
        assert (out / name).is_file(), name
    assert "| agent | budget | sparsity |" in (out / "results.md").read_text()


def test_cli_search_then_retrain_round_trip(tiny_env_kwargs, tmp_path, capsys) -> None:
    """``ciess search`` saves a rerunnable run folder that ``ciess retrain`` turns into a table."""
    run = tmp_path / "run"
    env_kw = [f"{k}={v!r}" for k, v in tiny_env_kwargs.items()]
    code = main([
        "search", ENV_ID, "--agent", "rw-td3", "--episodes", "1", "--output", str(run),
        "--env-kw", *env_kw, "--agent-kw", "batch_size=64", "policy_kwargs={'net_arch': [16]}",
        "--budgets", "0.0", "--top-l", "1",
    ])  # fmt: skip
    assert code == 0
    config = json.loads((run / "config.json").read_text())
    assert config["env_id"] == ENV_ID
    assert config["seed"] == 0
    assert config["env_kwargs"]["preset"] == "tiny"
    for name in ("budget_log.npz", "curve.csv", "agent.zip", "search_curves.png",
                 "size_vs_popularity.png", "best_step.json"):  # fmt: skip
        assert (run / name).is_file(), name
    assert len(pd.read_csv(run / "curve.csv")) == 10

    code = main(["retrain", str(run), "--budgets", "0.0", "--top-l", "1", "--batches", "2"])
    assert code == 0
    table = pd.read_csv(run / "retrain.csv")
    assert table.loc[0, "budget"] == 0.0
    assert 0.0 <= table.loc[0, "recall@20"] <= 1.0
    assert "| budget |" in capsys.readouterr().out
    # Filled to budget 0.0, the searched mask becomes the full table; other settings than the
    # table's need --overwrite, which keeps the earlier table aside.
    assert main(["retrain", str(run), "--budgets", "0.0", "--top-l", "1", "--batches", "2",
                 "--fill-budget", "--overwrite"]) == 0  # fmt: skip
    assert pd.read_csv(run / "retrain.csv").loc[0, "sparsity"] == 0.0
    assert len(list(run.glob("retrain.old-*.csv"))) == 1

    # The log kept only what `--budgets 0.0 --top-l 1` asked for: other budgets are refused.
    assert main(["retrain", str(run), "--budgets", "0.9"]) == 2
    assert "keeps the top 1 masks for budgets 0.0" in capsys.readouterr().err


def test_cli_reports_an_unknown_data_set_without_a_traceback(capsys) -> None:
    """A library error becomes one line on stderr and exit code 2."""
    assert main(["data", "info", "ml-2m"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ciess data: error: Unknown data set 'ml-2m'")
    assert "ml-1m" in err


def test_cli_lists_all_thirty_two_env_ids(capsys) -> None:
    """``ciess envs`` prints every registered id once, with its step design."""
    assert main(["envs"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("CIESS-")]
    assert len(lines) == 32
    assert any(ln.startswith("CIESS-LightGCN-Yelp2018-v0") and "lam=0.2" in ln for ln in lines)
    v1 = [ln for ln in lines if ln.startswith("CIESS-LightGCN-ML1M-v1")]
    assert len(v1) == 1
    assert "step=converge:50/4" in v1[0]


def test_final_retraining_stops_at_each_masks_own_best_batch_count() -> None:
    """Early stopping picks a 50-batch checkpoint; the merged run trains that many passes."""
    data = make_synthetic(**TINY_DATA, seed=1)
    log = _log_with(data, [(4, 0.8)])
    config = TrainConfig(n_batches=500, batch_size=64, decay_batches=100)
    step = StepConfig("mf", config, d_max=16)
    (stopped,) = selective_retrain(log, data, step, budgets=[0.7])
    assert stopped is not None
    ratio = (len(data.train) + len(data.validation)) / len(data.train)
    assert stopped.batches % 50 == 0  # the evaluation grid of the default rule
    assert 50 <= stopped.batches <= 50 * round(500 * ratio / 50)
    (legacy,) = selective_retrain(log, data, step, rule=FinalRetrainRule.legacy(), budgets=[0.7])
    assert legacy is not None
    assert legacy.batches in (200, 400, 500)  # evaluated every 200 batches, and at the cap
    no_stop = FinalRetrainRule(early_stopping=False)
    (fixed,) = selective_retrain(log, data, step, rule=no_stop, budgets=[0.7])
    assert fixed is not None
    assert fixed.batches == 500


def test_compare_runs_pep_its_projection_and_esapn(tiny_env_kwargs, tmp_path) -> None:
    """PEP meets each budget to one entry; its projection meets it too; ESAPN searches."""
    result = compare(
        ENV_ID, ["pep", "pep-prefix", "esapn"], budgets=[0.8, 0.9], episodes=1, top_l=1,
        seed=0, env_kwargs=tiny_env_kwargs, retrain_batches=4, progress_bar=False,
        output_dir=tmp_path / "cmp",
        agent_kwargs={"esapn": {"batch_size": 64, "policy_kwargs": {"net_arch": [16]}}},
    )  # fmt: skip
    table = result.table.set_index(["agent", "budget"])
    n_params = 128 * (TINY_DATA["n_users"] + TINY_DATA["n_items"])
    for c in (0.8, 0.9):
        assert table.loc[("pep", c), "sparsity"] == pytest.approx(c, abs=1 / n_params)
        assert table.loc[("pep-prefix", c), "sparsity"] >= c - 1e-9
        assert 0.0 <= table.loc[("pep", c), "recall@20"] <= 1.0
    assert [m.budget for m in result.pruned["pep"]] == [0.8, 0.9]
    assert "pep" not in result.logs  # unstructured masks are not size assignments
    assert len(result.logs["pep-prefix"]) == 2
    assert len(result.curves["esapn"]) == 10
    # Both PEP rows come from one search, so they report the same search time.
    assert table.loc[("pep", 0.8), "search_s"] == table.loc[("pep-prefix", 0.8), "search_s"]


def test_compare_refuses_an_unknown_agent_before_running_any(tiny_env_kwargs) -> None:
    with pytest.raises(ValueError, match="esapn"):
        compare(ENV_ID, ["es", "esapm"], env_kwargs=tiny_env_kwargs, progress_bar=False)


def test_fill_to_budget_spends_exactly_the_budget_and_keeps_the_allocation() -> None:
    """An over-sparse mask grows to the budget's exact count; larger stays larger; d_max caps."""
    rng = np.random.default_rng(0)
    users = rng.integers(1, 40, size=50).astype(np.uint8)
    items = rng.integers(1, 40, size=30).astype(np.uint8)
    users[0] = 128  # already at d_max: must stay there
    log = BudgetLog(50, 30, d_max=128)
    sp = 1 - (int(users.sum()) + int(items.sum())) / (128 * 80)
    log.record(episode=0, step=1, user_sizes=users, item_sizes=items, sparsity=sp, mean_quality=0.7)
    entry = log[0]
    assert sp > 0.8
    filled = fill_to_budget(entry, 0.8, d_min=1, d_max=128)
    total = int(filled.user_sizes.sum()) + int(filled.item_sizes.sum())
    assert total == kept_budget(0.8, 80, 128)
    assert filled.sparsity == pytest.approx(0.8, abs=1 / (128 * 80))
    assert filled.user_sizes.dtype == users.dtype
    assert filled.user_sizes.shape == (50,)
    assert filled.user_sizes[0] == 128
    assert filled.user_sizes.max() <= 128
    before = np.concatenate([users, items]).astype(int)
    after = np.concatenate([filled.user_sizes, filled.item_sizes]).astype(int)
    assert (after >= before).all()
    # The allocation's order survives, up to the ±1 of the rounding.
    i, j = np.nonzero(before[:, None] > before[None, :])
    assert (after[i] >= after[j] - 1).all()
    assert filled.mean_quality == entry.mean_quality  # the logged score, not a new one
    # A mask exactly at the budget is a fixed point.
    again = fill_to_budget(filled, 0.8, d_min=1, d_max=128)
    np.testing.assert_array_equal(again.user_sizes, filled.user_sizes)
    np.testing.assert_array_equal(again.item_sizes, filled.item_sizes)


def test_fill_to_budget_refuses_a_mask_denser_than_the_budget() -> None:
    data = make_synthetic(**TINY_DATA, seed=1)
    entry = _log_with(data, [(8, 0.9)])[0]  # sparsity 0.5
    with pytest.raises(ValueError, match=r"sparsity 0.5000\), more than budget 0.8 allows"):
        fill_to_budget(entry, 0.8, d_max=16)


def test_selective_retrain_with_fill_budget_retrains_the_filled_mask() -> None:
    """With ``fill_budget`` a size-2 mask (sparsity 0.875) is reported at exactly 0.75."""
    data = make_synthetic(**TINY_DATA, seed=1)
    log = _log_with(data, [(2, 0.7)])
    config = TrainConfig(n_batches=4, batch_size=64, decay_batches=2)
    step, rule = StepConfig("mf", config, d_max=16), FinalRetrainRule(early_stopping=False)
    (plain,) = selective_retrain(log, data, step, rule=rule, budgets=[0.75])
    (filled,) = selective_retrain(
        log, data, step, rule=rule.replace(fill_budget=True), budgets=[0.75]
    )
    assert plain is not None
    assert filled is not None
    assert plain.sparsity == 0.875
    assert filled.sparsity == pytest.approx(0.75, abs=1e-12)  # size 4 everywhere: exact


def test_compare_and_cli_fill_searched_masks_to_the_budget(tiny_env_kwargs, tmp_path) -> None:
    """A searched mask is retrained at exactly its budget with ``fill_budget``."""
    kwargs = dict(
        budgets=[0.3], episodes=1, top_l=1, seed=0, env_kwargs=tiny_env_kwargs,
        retrain_batches=4, progress_bar=False,
        agent_kwargs={"td3": {"batch_size": 64, "policy_kwargs": {"net_arch": [16]}}},
    )  # fmt: skip
    result = compare(ENV_ID, ["td3"], fill_budget=True, **kwargs)
    row = result.table.iloc[0]
    n_params = 128 * (TINY_DATA["n_users"] + TINY_DATA["n_items"])
    assert row["sparsity"] == pytest.approx(0.3, abs=1 / n_params)
    plain = compare(ENV_ID, ["td3"], **kwargs).table.iloc[0]
    assert plain["sparsity"] > 0.3 + 1 / n_params  # the same search's mask, as logged
