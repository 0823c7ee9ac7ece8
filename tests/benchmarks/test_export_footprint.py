"""benchmarks/export_footprint.py: memory and paired latency of artefacts, and its report."""

from __future__ import annotations

import argparse

import export_footprint as bench
import numpy as np

from ciess_env.export import export
from ciess_env.recommenders import make_backbone


def test_memory_and_paired_latency_of_two_artefacts(tiny_data, tmp_path) -> None:
    small = make_backbone("mf", tiny_data, d_max=16, seed=0)
    small.set_sizes(np.full(tiny_data.n_users, 2), np.full(tiny_data.n_items, 2))
    full = make_backbone("mf", tiny_data, d_max=16, seed=0)
    a, b = export(small, tmp_path / "a"), export(full, tmp_path / "b")
    size_a, size_b = bench.disk_bytes(a)[0], bench.disk_bytes(b)[0]
    assert 0 < size_a < size_b  # 2 floats a row against 16
    memory = bench.measure_rss(str(b))
    assert memory["rss_delta"] >= 0
    timing = bench.measure_latency(str(a), str(b), repeats=3, singles=5, seed=0)
    assert len(timing["score_all_ms_all"]) == len(timing["full_score_all_ms_all"]) == 3
    assert timing["top20_one_ms"] > 0
    assert timing["full_top20_one_ms"] > 0


def test_report_labels_a_partial_study_and_states_the_round_trip(tmp_path) -> None:
    art = {
        "unit": "artefact", "mask": "ES @80%", "variant": "buckets", "dtype": "float32",
        "mean_stored_width": {"user.emb": 26.0, "item.emb": 26.0}, "bytes": 2**20,
        "full_bytes": 2**22, "rss_delta": 2**20, "full_rss_delta": 2**22, "input_bytes": 2**20,
        "score_all_ms": 400.0, "full_score_all_ms": 600.0, "top20_one_ms": 0.4,
        "full_top20_one_ms": 0.5, "model_recall_20": 0.22, "artefact_recall_20": 0.22,
        "model_ndcg_20": 0.39, "artefact_ndcg_20": 0.39, "load": 1.0,
    }  # fmt: skip
    int8 = {**art, "variant": "buckets:int8", "dtype": "int8", "artefact_recall_20": 0.2203}
    model = {
        "unit": "model", "mask": "ES @80%", "digest": "x", "params": 10, "best_batches": 50,
        "final_batches": 100, "test_recall_20": 0.22, "test_ndcg_20": 0.39, "seconds": 1.0,
        "load": 1.0,
    }  # fmt: skip
    args = argparse.Namespace(dataset="ml-1m", seed=0, repeats=7, singles=200, argv=[])
    path = tmp_path / "export_footprint_ml-1m.jsonl"
    bench.write_report(path, [model, art, int8], args, n_todo=24)
    text = path.with_suffix(".md").read_text()
    assert "(partial, 3 of 24 units)" in text
    assert "| ES @80% | buckets | 26.0 / 26.0 | 1.00 (4.00) | 0.250 |" in text
    assert "largest difference 0.0e+00" in text
    assert "Row-wise int8 moves them by at most 3.0e-04 over 1 artefacts." in text
    assert "Resume: `OMP_NUM_THREADS=1 python benchmarks/export_footprint.py" in text
