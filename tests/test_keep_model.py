"""Keeping, saving and exporting the retrained winner of each budget (issue 32, part 1)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from agents.experiments.cli import main
from agents.experiments.selective import MODEL_FILE, MODEL_INFO_FILE, selective_retrain
from ciess_env.budget_log import BudgetLog
from ciess_env.config import StepConfig
from ciess_env.data import load_dataset, make_synthetic
from ciess_env.export import export, load
from ciess_env.metrics import evaluate, evaluate_scores
from ciess_env.recommenders import TrainConfig, make_backbone
from ciess_env.retrain import FinalRetrainRule, final_retrain

D_MAX = 16
CONFIG = TrainConfig(n_batches=24, batch_size=64, decay_batches=8)
RULE = FinalRetrainRule(eval_every=4, patience=2, seeds=2)
STEP = StepConfig("mf", CONFIG, d_max=D_MAX)


@pytest.fixture(scope="module")
def data():
    return make_synthetic(n_users=40, n_items=30, mean_interactions=8, seed=3)


def _mixed_sizes(data, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(1, D_MAX + 1, data.n_users), rng.integers(1, 6, data.n_items)


def _log(data) -> BudgetLog:
    log = BudgetLog(data.n_users, data.n_items, d_max=D_MAX)
    for step, seed in enumerate((0, 1), start=1):
        users, items = _mixed_sizes(data, seed)
        kept = users.sum() + items.sum()
        log.record(
            episode=0, step=step, user_sizes=users, item_sizes=items,
            sparsity=1 - kept / (D_MAX * (data.n_users + data.n_items)), mean_quality=0.1 * step,
        )  # fmt: skip
    return log


def test_final_retrain_keeps_the_first_seeds_model_without_changing_the_metrics(data):
    kw = dict(rule=RULE, seed=7)
    plain = final_retrain(data, *_mixed_sizes(data), STEP, **kw)
    kept = final_retrain(data, *_mixed_sizes(data), STEP, keep_model=True, **kw)
    assert plain.model is None
    np.testing.assert_array_equal(plain.test.user_quality, kept.test.user_quality)
    assert kept.model is kept.runs[0].model
    assert kept.runs[1].model is not None
    # The kept model is the one that scored the first seed's test metrics.
    again = evaluate(kept.model, data.merge_train_validation(), "test")
    np.testing.assert_array_equal(again.user_quality, kept.runs[0].test.user_quality)
    np.testing.assert_array_equal(kept.model.user_sizes.numpy(), _mixed_sizes(data)[0])


@pytest.mark.parametrize("early_stopping", [True, False])
def test_selective_retrain_keeps_the_winner_and_the_same_rows(data, early_stopping):
    rule = RULE.replace(top_l=2, early_stopping=early_stopping)
    kw = dict(rule=rule, budgets=[0.5], seed=3)
    (plain,) = selective_retrain(_log(data), data, STEP, **kw)
    (row,) = selective_retrain(_log(data), data, STEP, keep_model=True, **kw)
    assert plain.model is None
    assert row.as_dict() == plain.as_dict()
    winner = row.model
    assert winner.seed == 3
    assert winner.backbone == "mf"
    if not early_stopping:  # one run; with early stopping the row's count is the seeds' mean
        assert winner.batches == row.batches
    own = evaluate(winner.model, data.merge_train_validation(), "test")
    assert own.recall(20) == winner.test.recall(20)
    assert 1 - winner.model.kept_embedding_parameters() / (D_MAX * 70) == pytest.approx(
        row.sparsity
    )
    summary = winner.summary()
    assert summary["seed"] == 3
    assert summary["sizes"]["user"]["n"] == data.n_users


def test_kept_lightgcn_winner_exports_with_its_own_test_metrics(data, tmp_path):
    """Part 3's round trip on a retrained winner: served artefact = the model's test metrics."""
    rule = FinalRetrainRule(eval_every=4, patience=2, seeds=1)
    res = final_retrain(
        data, *_mixed_sizes(data), STEP.replace(backbone="lightgcn"), rule=rule, keep_model=True
    )
    merged = data.merge_train_validation()
    for fmt in ("buckets", "ragged"):
        served = load(export(res.model, tmp_path / fmt, format=fmt, metadata=res.summary()))
        got = evaluate_scores(served.score, merged, "test")
        assert got.recall(20) == pytest.approx(res.test.recall(20), abs=1e-9)
        assert got.ndcg(20) == pytest.approx(res.test.ndcg(20), abs=1e-9)


ENV_ID = "CIESS-MF-Synthetic-v0"
TINY = {"n_users": 40, "n_items": 30, "mean_interactions": 8}


def _search_run(tmp_path, users: np.ndarray, items: np.ndarray, sparsity: float):
    """A `ciess search` run folder on the tiny synthetic env whose log holds one mask."""
    run = tmp_path / "run"
    run.mkdir()
    env_kwargs = {"preset": "tiny", "dataset_kwargs": TINY, "cache_dir": str(tmp_path / "c")}
    config = {"command": "search", "env_id": ENV_ID, "seed": 0, "env_kwargs": env_kwargs}
    (run / "config.json").write_text(json.dumps(config))
    log = BudgetLog(40, 30, d_max=128)
    log.record(episode=0, step=1, user_sizes=users, item_sizes=items, sparsity=sparsity,
               mean_quality=0.3)  # fmt: skip
    log.save(run / "budget_log")
    return run


def test_cli_retrain_saves_each_winner_and_never_overwrites_one(tmp_path, capsys):
    run = _search_run(tmp_path, np.full(40, 48), np.arange(30) + 1, 0.5)
    args = ["retrain", str(run), "--budgets", "0.5", "--top-l", "1", "--batches", "2"]
    assert main(args) == 0
    saved = run / "models" / "budget-0.50"
    info = json.loads((saved / MODEL_INFO_FILE).read_text())
    assert info["budget"] == 0.5
    assert info["env_id"] == ENV_ID
    assert info["seed"] == 0  # the first of the default rule's two seeds; the row is their mean
    merged = load_dataset("synthetic", split_seed=42, **TINY).merge_train_validation()
    model = make_backbone("mf", merged, seed=0)
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(saved / MODEL_FILE)))
    torch.testing.assert_close(model.item_sizes, torch.arange(30) + 1)
    # Rebuilt from the saved file alone, the model scores its recorded test metrics.
    assert evaluate(model, merged, "test").recall(20) == pytest.approx(info["test_recall_20"])
    # Retraining the budget again moves the earlier model aside instead of replacing it.
    capsys.readouterr()
    assert main(args) == 0
    assert f"moved {saved} to" in capsys.readouterr().err
    assert len(list((run / "models").glob("budget-0.50.old-*"))) == 1
    assert main([*args, "--no-save-models", "--overwrite"]) == 0
    assert (saved / MODEL_FILE).is_file()  # the table moved aside, no new model written


def test_cli_export_round_trips_a_saved_winner(tmp_path, capsys):
    """`ciess export RUN --budget c`: the artefact scores the recorded test metrics."""
    run = _search_run(tmp_path, np.arange(40) + 1, np.full(30, 9), 0.8)
    assert main(["retrain", str(run), "--budgets", "0.8", "--top-l", "1", "--batches", "2"]) == 0
    assert main(["export", str(run), "--budget", "0.9"]) == 2
    assert "no saved model for budget 0.9" in capsys.readouterr().err
    capsys.readouterr()
    assert main(["export", str(run), "--budget", "0.8", "--format", "ragged"]) == 0
    out = capsys.readouterr().out
    found = re.search(r"recall@20 (\S+) ndcg@20 (\S+) from the artefact, (\S+) / (\S+) rec", out)
    recall, ndcg, recorded_recall, recorded_ndcg = map(float, found.groups())
    manifest = json.loads((run / "export" / "budget-0.80-ragged" / "manifest.json").read_text())
    assert manifest["metadata"]["dataset"] == "synthetic"
    assert manifest["sizes"]["user"]["40"] == 1
    assert recall == pytest.approx(recorded_recall, abs=1e-4)
    assert ndcg == pytest.approx(recorded_ndcg, abs=1e-4)
    assert main(["export", str(run), "--budget", "0.8", "--format", "ragged"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_cli_export_reads_the_deterministic_log_models_as_int8_and_onnx(tmp_path, capsys):
    """`ciess export --log deterministic_log` reads RUN/models_deterministic_log.

    That is where `ciess retrain --log deterministic_log` saves; --dtype int8 and --onnx
    write their files beside it.
    """
    run = _search_run(tmp_path, np.arange(40) + 1, np.full(30, 9), 0.8)
    for f in run.glob("budget_log*"):
        (run / f.name.replace("budget_log", "deterministic_log")).write_bytes(f.read_bytes())
    retrain = ["retrain", str(run), "--budgets", "0.8", "--top-l", "1", "--batches", "2"]
    assert main([*retrain, "--log", "deterministic_log"]) == 0
    assert (run / "models_deterministic_log" / "budget-0.80" / MODEL_FILE).is_file()
    capsys.readouterr()
    assert main(["export", str(run), "--budget", "0.8"]) == 2  # RUN/models does not exist
    assert "--log" not in capsys.readouterr().err
    args = ["export", str(run), "--budget", "0.8", "--log", "deterministic_log", "--dtype", "int8"]
    onnx = pytest.importorskip("onnx", reason="the --onnx part needs pip install -e '.[onnx]'")
    assert main([*args, "--onnx"]) == 0
    folder = run / "export" / "budget-0.80-deterministic-log-buckets-int8"
    assert json.loads((folder / "manifest.json").read_text())["dtype"] == "int8"
    assert "recorded for the model" in capsys.readouterr().out
    onnx.checker.check_model(str(folder / "scorer.onnx"))
