"""benchmarks/search_diagnosis.py's report: the factor table and the per-episode curves."""

from __future__ import annotations

import argparse
import json

import search_diagnosis as study

_COMMON = {"episodes": 2, "seconds": 60.0, "load_start": 1.0, "load_end": 2.0,
           "command": "python benchmarks/search_diagnosis.py run"}  # fmt: skip


def _search(noise: str, seed: int, size: float) -> dict:
    eps = [{"episode": e, "mean_quality": 0.1 * e + seed, "mean_size": size + e,
            "sparsity": 0.9, "det_quality": 0.2, "det_mean_size": size,
            "det_sparsity": 0.95} for e in (1, 2)]  # fmt: skip
    disp = {"within_std": 1.0, "explained": 0.5}
    return {"key": f"search/{noise}/seed{seed}", "kind": "search", "noise": noise, "seed": seed,
            "log": "every explored mask", "per_episode": eps, "best_explored_quality": 0.3,
            "best_deterministic_quality": 0.2, "dispersion_explored_last_episode": disp,
            "dispersion_deterministic_last_episode": disp, **_COMMON}  # fmt: skip


def _result(r20: float | None) -> dict | None:
    return None if r20 is None else {"recall_20": r20, "ndcg_20": r20, "sparsity": 0.9}


def _es(seed: int, r20: float) -> dict:
    return {"key": f"es/seed{seed}/c0.9", "kind": "es", "seed": seed, "budget": 0.9,
            "result": _result(r20), **_COMMON}  # fmt: skip


def _retrain(noise: str, pool: str, seed: int, r20: float | None) -> dict:
    key = f"retrain/{pool}/{noise}/seed{seed}/c0.9"
    return {"key": key, "kind": "retrain", "noise": noise, "pool": pool, "seed": seed,
            "budget": 0.9, "result": _result(r20), **_COMMON}  # fmt: skip


def _report(study, tmp_path, rows) -> str:
    path = tmp_path / "search_diagnosis_ml-100k_v1.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = argparse.Namespace(dataset="ml-100k", version="v1", results_dir=tmp_path)
    study.cmd_report(args)
    return path.with_suffix(".md").read_text()


def test_factor_table_pairs_by_seed_in_percent_of_es(tmp_path, capsys) -> None:
    es = {0: 0.20, 1: 0.20, 2: 0.20}  # 3 seeds: intervals need >= 3 (stats.MIN_SEEDS)
    rows = [_search(n, s, 10.0 * (n == "shared") + 5) for s in es for n in ("per_entity", "shared")]
    rows += [_es(s, v) for s, v in es.items()]
    rows += [_retrain("per_entity", "explored", s, 0.18) for s in es]  # 10 % below ES
    rows += [_retrain("per_entity", "deterministic", s, None) for s in es]  # never reached c
    rows += [_retrain("shared", "explored", s, v) for s, v in ((0, 0.21), (1, 0.19), (2, 0.20))]
    text = _report(study, tmp_path, rows)
    capsys.readouterr()
    # 3 seeds × (2 noises × (1 search + 2 pools × 3 budgets) + 3 ES budgets) = 51 units
    assert "(partial, 18 of 51 units)" in text
    factor = text.split("## Which factor moves the result")[1].split("## Per episode")[0]
    # columns 80 / 90 / 95 %: only 90 % was run
    assert "| per_entity, explored − ES | — | -10.0 [-10.0, -10.0] * % (3) | — |" in factor
    assert "| per_entity, deterministic − ES | — | — | — |" in factor
    # shared − per_entity: +15, +5 and +10 % of ES's 0.20, mean +10 %, interval within [5, 15]
    line = next(x for x in factor.splitlines() if x.startswith("| noise shared − per_entity"))
    cell = line.split("|")[3].strip()
    assert cell.startswith("+10.0 [+")
    assert cell.endswith("] * % (3)")
    low, high = (float(v) for v in cell.split("[")[1].split("]")[0].split(","))
    assert 5.0 <= low < 10.0 < high <= 15.0
    assert "| shared: noise-free policy − explored | — | — | — |" in factor


def test_per_episode_curves_average_over_seeds(tmp_path, capsys) -> None:
    rows = [_search("none", s, 4.0) for s in (0, 1, 2)]
    text = _report(study, tmp_path, rows)
    capsys.readouterr()
    episodes = text.split("## Per episode, mean over seeds")[1]
    # explored q̄ of episode 2: 0.2 + seed, mean over seeds 0–2 = 1.2
    assert "| none | 3 | 2 | 1.2000 | 6.0 | 0.900 | 0.2000 | 4.0 | 0.950 |" in episodes


def test_a_seed_asked_for_but_not_yet_run_counts_as_missing(tmp_path, capsys) -> None:
    """The plan comes from the run commands: seed 2's search has no row yet but is planned."""
    asked = {**_COMMON, "command": "python benchmarks/search_diagnosis.py run --seeds 0 1 2 "
             "--episodes 30 --noise per_entity --shard 1/2"}  # fmt: skip
    rows = [{**_search("per_entity", s, 5.0), **asked} for s in (0, 1)]
    text = _report(study, tmp_path, rows)
    capsys.readouterr()
    # 3 seeds × (1 noise × (1 search + 2 pools × 3 budgets) + 3 ES budgets) = 30 units
    assert "(partial, 2 of 30 units)" in text
    assert "--seeds 0 1 2 --episodes 2 --noise per_entity`" in text
