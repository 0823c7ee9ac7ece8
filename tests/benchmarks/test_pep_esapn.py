"""benchmarks/pep_esapn.py on tiny synthetic data: units, the filled variants and the report."""

from __future__ import annotations

import json

import pep_esapn as study
import pytest


def test_quick_run_writes_filled_rows_paired_with_their_unfilled_masks(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("CIESS_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "out"
    assert study.main(["--quick", "--out", str(out), "--methods", "es", "esapn+fill"]) == 0
    units = [json.loads(line) for line in (out / "pep_esapn_quick.jsonl").read_text().splitlines()]
    assert [(u["method"], u["seed"]) for u in units] == [("es", 0), ("esapn+fill", 0)]
    rows = units[1]["rows"]
    assert [r["method"] for r in rows] == ["esapn+fill"] * 3
    assert {r["unfilled_from"] for r in rows} == {"recomputed"}  # no plain unit to pair with
    reached = [r for r in rows if r["unfilled_sparsity"] == r["unfilled_sparsity"]]  # not NaN
    assert reached, "the tiny search kept no mask at any budget"
    n_params = 128 * (40 + 30)
    for r in reached:
        assert r["unfilled_sparsity"] >= r["budget"] - 1e-12
        assert r["sparsity"] == pytest.approx(r["budget"], abs=1 / n_params)
    report = (out / "pep_esapn_quick.md").read_text()
    assert "(partial, 2 of 5 units)" in report  # four methods planned, plus the asked variant
    assert "| ESAPN-style, masks filled to c | 80% | 0 |" in report
    assert "Filling, paired within each search" in report
    # Rerunning finds both units cached and runs nothing.
    assert study.main(["--quick", "--out", str(out), "--methods", "es", "esapn+fill"]) == 0
    assert len((out / "pep_esapn_quick.jsonl").read_text().splitlines()) == 2


def test_a_filled_unit_pairs_with_the_cached_plain_unit(tmp_path, monkeypatch) -> None:
    """With the plain unit cached, its rows are the unfilled side, and the report says so."""
    monkeypatch.setenv("CIESS_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "out"
    assert study.main(["--quick", "--out", str(out), "--methods", "esapn", "esapn+fill"]) == 0
    lines = (out / "pep_esapn_quick.jsonl").read_text().splitlines()
    plain, filled = (json.loads(line)["rows"] for line in lines)
    for p, f in zip(plain, filled, strict=True):
        assert f["unfilled_from"] == "cache"
        assert f["unfilled_recall@20"] == p["recall@20"] or p["recall@20"] != p["recall@20"]
    report = (out / "pep_esapn_quick.md").read_text()
    assert "rows taken from the plain unit of the same seed" in report


def test_a_study_moved_to_its_cells_is_not_forked_into_a_jsonl() -> None:
    """The old command on a ported data set names study.py and leaves its frozen JSONL alone."""
    import re
    from pathlib import Path

    from ciess_env.errors import InvalidArgumentError

    results = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
    before = (results / "pep_esapn_ml-1m.jsonl").read_bytes()
    with pytest.raises(InvalidArgumentError, match=re.escape("study.py run pep_esapn_ml-1m")):
        study.main(["--datasets", "ml-1m", "--out", str(results)])
    assert (results / "pep_esapn_ml-1m.jsonl").read_bytes() == before
