"""benchmarks/table1.py: the six-column report from whatever cells exist, costs, sweep specs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import table1

REPO = Path(__file__).resolve().parents[2]


def _unit(dataset, backbone, method, seed, r20, *, sparsity=None, budgets=(0.8, 0.9, 0.95)):
    rows = [
        {"method": method, "seed": seed, "budget": c, "sparsity": sparsity or c,
         "recall@20": r20 - i * 0.01, "ndcg@20": 2 * r20 - i * 0.01}
        for i, c in enumerate(budgets)
    ]  # fmt: skip
    return {"dataset": dataset, "backbone": backbone, "method": method, "seed": seed, "rows": rows}


def _write(path: Path, units) -> Path:
    path.write_text("".join(json.dumps(u) + "\n" for u in units))
    return path


@pytest.fixture
def cells(tmp_path: Path):
    units = [_unit("ml-1m", "ngcf", "es", s, 0.20 + s * 1e-3) for s in (0, 1, 2)]
    units += [_unit("ml-1m", "ngcf", "magprune", s, 0.15 + s * 1e-3) for s in (0, 1)]
    units += [_unit("ml-1m", "ngcf", "optembed", s, 0.21, sparsity=0.83) for s in (0, 1, 2)]
    path = _write(tmp_path / "units.jsonl", units)
    # An earlier study's file holding the same ES seed 0 (another value) and an MR cell.
    older = [_unit("ml-1m", "ngcf", "es", 0, 0.5), _unit("ml-1m", "ngcf", "mr", 0, 0.18)]
    _write(tmp_path / "older.jsonl", [{**u, "agent": u.pop("method")} for u in older])
    sources = (("older.jsonl", "ml-1m", "ngcf", "an older study"),)
    return table1.collect_cells(path, tmp_path, sources=sources)


def test_cells_prefer_this_studys_units_and_keep_their_source(cells) -> None:
    es0 = cells[("ml-1m", "ngcf", "es", 0.8, 0)]
    assert es0["recall@20"] == pytest.approx(0.20)  # not the older file's 0.5
    assert es0["source"] == "units"
    assert cells[("ml-1m", "ngcf", "mr", 0.8, 0)]["source"] == "older"
    assert len(cells) == 3 * (3 + 2 + 3 + 1)


def test_column_rows_pair_with_es_by_seed_and_give_the_paper(cells) -> None:
    recs = {(r["method"], r["budget"]): r for r in table1.column_rows(cells, "ml-1m", "ngcf")}
    opt = recs[("optembed", 0.8)]
    assert opt["seeds"] == [0, 1, 2]
    # OptEmbed 0.21 vs ES 0.200/0.201/0.202: the paired difference is exactly +0.009.
    assert opt["recall@20 - es"].estimate == pytest.approx(0.21 - 0.201)
    assert opt["sparsity"] == [0.83] * 3
    mag = recs[("magprune", 0.9)]
    assert mag["seeds"] == [0, 1]
    assert math.isnan(mag["recall@20 - es"].low)  # two seeds: no interval
    assert recs[("es", 0.9)]["paper"] == (0.2069, 0.3679)  # NGCF, ML-1M, ES at 90 %
    assert recs[("rw-td3", 0.95)]["paper"] == (0.2055, 0.3727)
    assert recs[("rw-td3", 0.95)]["recall@20"] is None


def test_report_marks_missing_cells_and_counts_what_exists(cells) -> None:
    text = table1.render_report(cells, command="python benchmarks/table1.py report", written="now")
    assert "(partial, 27 of 594 seed-cells)" in text
    assert "## ML-1M, NGCF (partial, 27 of 99 seed-cells)" in text
    assert "## Yelp2018, NCF (partial, 0 of 99 seed-cells)" in text
    # Summary: OptEmbed at 80 % beside ES, magprune with n=2, an empty column as "·".
    line = next(x for x in text.splitlines() if x.startswith("| OptEmbed | 80% |"))
    cells_ = [c.strip() for c in line.split("|")[3:-1]]
    assert cells_[1].startswith("0.2100 (+0.0090")
    assert cells_[0] == "·"
    assert "n=2" in next(x for x in text.splitlines() if x.startswith("| MagPrune (published"))
    assert "| ES | 80% | · | 0.2010 [p 0.2232] |" in text
    assert "OptEmbed sp 80% R@20 0.2038 N@20 0.3622" in text  # the paper's NGCF row


def test_paper_lightgcn_cells_equal_reproduce_py() -> None:
    """The LightGCN column here and reproduce.py's Table 1 are the same copy of the paper."""
    reproduce = pytest.importorskip("reproduce")
    for dataset, cells in reproduce.PAPER_REFERENCE["table1"].items():
        for (method, c), (_, r20, _, n20) in cells.items():
            assert table1.PAPER[dataset][(method, c)][0] == (r20, n20)


def test_sweep_cells_are_read_from_finished_cells_only(tmp_path: Path) -> None:
    header = "env_id,agent,seed,budget,search_s,sparsity,recall@5,recall@20,ndcg@5,ndcg@20\n"
    done = tmp_path / "sweep" / "cell-a"
    done.mkdir(parents=True)
    (done / "results.csv").write_text(header + "CIESS-NCF-Yelp2018-v0,optembed,1,0.9,3,0.91,"
                                      "0.01,0.04,0.02,0.03\n")  # fmt: skip
    (done / "done.json").write_text("{}")
    running = tmp_path / "sweep" / "cell-b"
    running.mkdir()
    (running / "results.csv").write_text(header + "CIESS-NCF-Yelp2018-v0,es,1,0.9,3,0.9,"
                                         "0.01,0.05,0.02,0.03\n")  # fmt: skip
    cells = table1.collect_cells(tmp_path / "none.jsonl", tmp_path, sources=(),
                                 sweeps=[tmp_path / "sweep"])  # fmt: skip
    assert list(cells) == [("yelp2018", "ncf", "optembed", 0.9, 1)]
    assert cells[("yelp2018", "ncf", "optembed", 0.9, 1)]["sparsity"] == 0.91
    assert table1.column_of("CIESS-LightGCN-ML1M-v1") == ("ml-1m", "lightgcn")
    assert table1.column_of("CIESS-MF-ML1M-v1") is None


def test_cell_costs_follow_the_stated_counts() -> None:
    m = {"n_batches": 1000, "eval_s@128": 2.0, "eval_s@13": 1.0,
         **{f"batch_s@{w}": w / 1000 for w in table1.COST_WIDTHS}}  # fmt: skip
    costs = table1.cell_costs(m)
    # 2 seeds × (1000 batches + 20 passes + 1100 merged batches + 1 test pass) at width 26.
    assert costs["retrain_prefix"] == pytest.approx(2 * (1000 * 0.026 + 20 + 1100 * 0.026 + 1))
    assert costs["step_scratch"] == pytest.approx(1000 * 0.013 + 1.0)
    assert costs["optembed_evolution"] == pytest.approx(620 * 2.0)
    text = table1.render_costs(
        [{"dataset": "ml-1m", "backbone": "ncf", "n_entities": 10, "load_average": 1.0, **m}],
        command="c", written="now",
    )  # fmt: skip
    row = "| ML-1M | NCF | 10 | 1,000 | 0.128 | 0.026 | 0.013 | 0.007 | 2.00 | 1.00 | 1.0 |"
    assert row in text
    assert "Whole units of this study" not in text  # no finished units passed in
    finished = [{"dataset": "ml-1m", "backbone": "ncf", "method": "es", "seed": 0, "rows": [],
                 "seconds": 600.0, "load_average": 1.0}]  # fmt: skip
    text = table1.render_costs(
        [{"dataset": "ml-1m", "backbone": "ncf", "n_entities": 10, "load_average": 1.0, **m}],
        command="c", written="now", finished=finished,
    )  # fmt: skip
    assert "| ML-1M NCF | ES | 3 | 1 | 10 min – 10 min | 1.0–1.0 |" in text


def test_measured_units_give_each_cell_kinds_wall_time(tmp_path: Path) -> None:
    """The costs file lists what finished units took, per column, method and budgets per unit."""
    units = tmp_path / "units.jsonl"
    rows = [("optembed", [0.8], 1830.0, 1.4), ("optembed", [0.9], 900.0, 2.0),
            ("magprune", None, 60.0, 8.0)]  # fmt: skip
    units.write_text(
        "".join(
            json.dumps(
                {
                    "dataset": "ml-1m",
                    "backbone": "lightgcn",
                    "method": m,
                    "seed": 0,
                    "budgets": b,
                    "rows": [],
                    "seconds": s,
                    "load_average": load,
                }
            )
            + "\n"
            for m, b, s, load in rows
        )
    )
    text = "\n".join(table1._measured_units(table1.read_units(units)))
    assert "| ML-1M LightGCN | OptEmbed | 1 | 2 | 15 min – 30 min | 1.4–2.0 |" in text
    assert (
        "| ML-1M LightGCN | MagPrune (published: no retraining) | 3 | 1 | 1 min – 1 min |" in text
    )
    assert table1._measured_units([]) == []


@pytest.mark.parametrize("name", ["table1_ml1m", "table1_yelp2018"])
def test_sweep_specs_load_with_every_table1_method(name: str) -> None:
    from agents.experiments.sweep import load_spec

    spec = load_spec(REPO / "benchmarks" / "sweeps" / f"{name}.toml")
    cells = list(spec.cells())
    agents = {c.config["agent"] for c in cells}
    assert agents == set(table1.METHODS)
    assert len(cells) == 3 * len(table1.METHODS) * 3  # backbones × agents × seeds
    columns = {table1.column_of(c.config["env_id"]) for c in cells}
    assert {b for _, b in columns} == set(table1.BACKBONES)


def test_quick_run_appends_resumable_units_through_compare(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CIESS_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "units.jsonl"
    argv = ["run", "--quick", "--out", str(out), "--methods", "magprune", "--seeds", "0",
            "--per-budget", "--budgets", "0.8"]  # fmt: skip
    assert table1.main(argv) == 0
    units = table1.read_units(out)
    assert [(u["method"], u["budgets"]) for u in units] == [("magprune", [0.8])]
    row = units[0]["rows"][0]
    assert row["method"] == "magprune"
    assert row["min_item"] >= 0
    assert row["csr_bytes"] > row["prefix_bytes"]
    assert table1.main(argv) == 0  # everything cached: nothing runs again
    assert len(table1.read_units(out)) == 1
