"""benchmarks/reproduce.py: every protocol runs end to end with --quick and writes its table."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

import pytest
import reproduce


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> str:
    """One pretraining cache for every protocol of this module."""
    return str(tmp_path_factory.mktemp("cache"))


def _run(reproduce: ModuleType, protocol: str, out: Path, cache_dir: str, *extra: str) -> None:
    argv = [protocol, "--quick", "--output-dir", str(out), "--cache-dir", cache_dir,
            "--no-progress", "--seed", "3", *extra]  # fmt: skip
    assert reproduce.main(argv) == 0


def _check_header(text: str, protocol: str) -> None:
    assert text.startswith("# CIESS reproduction — ")
    assert "**Quick smoke run**" in text
    assert f"- Command: `python benchmarks/reproduce.py {protocol} --quick " in text
    assert "- Seed: 3" in text
    assert "- Date: " in text
    assert "- Machine: " in text
    assert "device cpu" in text
    assert re.search(r"1-min load average \d+\.\d\d", text)
    assert "- Total run time: " in text
    assert "(complete)" in text


def _table_rows(text: str, header_start: str) -> list[list[str]]:
    """The cells of the markdown table whose header line starts with ``header_start``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_paper_protocol_writes_table1_next_to_the_papers_numbers(tmp_path, cache_dir):
    """``paper`` writes one file per data set: ES, MR, PEP, CIESS, ESAPN with the paper's values."""
    _run(reproduce, "paper", tmp_path, cache_dir)
    for dataset, paper_r20_80 in (("ml-1m", "0.2436"), ("yelp2018", "0.0839")):
        text = (tmp_path / f"reproduction_paper_{dataset}.quick.md").read_text()
        _check_header(text, "paper")
        assert "**Deviation**: 1 episode (the paper: 30)." in text
        header = ("| method | c | sparsity | R@5 | R@20 | N@5 | N@20 | paper R@5 | paper R@20 | "
                  "paper N@5 | paper N@20 | search s | wall s |")  # fmt: skip
        assert header in text
        rows = _table_rows(text, "| method |")
        methods = ("ES", "MR", "PEP", "CIESS (RW-TD3)", "ESAPN-style (DQN, 6 sizes)")
        assert [(r[0], r[1]) for r in rows] == [
            (m, c) for c in ("80 %", "90 %", "95 %") for m in methods
        ]
        ciess_80 = rows[3]
        assert ciess_80[8] == paper_r20_80  # the paper's CIESS R@20 at 80 %
        pep = [r for r in rows if r[0] == "PEP"]
        assert [r[2] for r in pep] == ["0.8000", "0.9000", "0.9500"]  # budgets met exactly
        for row in rows:
            if row[0] == "ES":  # ES meets every budget by construction
                assert all(cell != "—" for cell in row[2:7])
        assert "| c | ES R@20 | RW-TD3 R@20 |" in text
        verdicts = [r[5] for r in _table_rows(text, "| c | ES R@20 |")]
        assert len(verdicts) == 3
        assert set(verdicts) <= {"yes", "no", "mixed", "not reached"}


def test_reduced_protocol_writes_one_file_per_data_set_with_all_six_agents(tmp_path, cache_dir):
    """``reduced`` covers ES, MR, MDE, PEP, RW-TD3, ESAPN on ML-100K and ML-1M, with verdicts."""
    _run(reproduce, "reduced", tmp_path, cache_dir)
    for dataset in ("ml-100k", "ml-1m"):
        text = (tmp_path / f"reproduction_reduced_{dataset}.quick.md").read_text()
        _check_header(text, "reduced")
        assert "`retrain='fast'`" in text
        rows = _table_rows(text, "| method |")
        assert len(rows) == 18
        assert {r[0] for r in rows} == {
            "ES", "MR", "MDE", "PEP", "CIESS (RW-TD3)", "ESAPN-style (DQN, 6 sizes)"
        }  # fmt: skip
        assert "RW-TD3 ≥ ES" in text
        paper_r20 = {r[0]: r[8] for r in rows if r[1] == "80 %"}
        if dataset == "ml-1m":
            assert paper_r20 == {"ES": "0.2248", "MR": "0.2004", "MDE": "—", "PEP": "0.2098",
                                 "CIESS (RW-TD3)": "0.2436",
                                 "ESAPN-style (DQN, 6 sizes)": "—"}  # fmt: skip
            assert "its paper row is at sparsity 72 %" in text
        else:
            assert set(paper_r20.values()) == {"—"}


def test_fast_vs_scratch_protocol_reports_quality_and_time_ratios(tmp_path, cache_dir):
    """``fast-vs-scratch`` gives a fast/scratch ratio per budget and the search-time ratio."""
    _run(reproduce, "fast-vs-scratch", tmp_path, cache_dir)
    for dataset in ("ml-100k", "ml-1m"):
        text = (tmp_path / f"reproduction_fast_vs_scratch_{dataset}.quick.md").read_text()
        _check_header(text, "fast-vs-scratch")
        rows = _table_rows(text, "| c | fast sparsity |")
        assert [r[0] for r in rows] == ["80 %", "90 %", "95 %"]
        assert (
            "| scratch R@20 | R@20 fast/scratch | fast N@20 | scratch N@20 | N@20 fast/scratch |"
            in text
        )
        for row in rows:
            for cell in (row[5], row[8]):  # ratios: a number, or — where a budget was missed
                assert cell == "—" or float(cell) > 0
        modes = [r[0] for r in _table_rows(text, "| search retraining |")]
        assert modes == ["fast", "scratch"]
        assert "Search-time ratio fast/scratch: " in text


def test_ablation_protocol_puts_walk_on_and_off_next_to_table2(tmp_path, cache_dir):
    """``ablation`` runs RW-TD3 with and without the walk beside the paper's ML-1M Table 2."""
    _run(reproduce, "ablation", tmp_path, cache_dir, "--note", "shared with another job")
    text = (tmp_path / "reproduction_ablation_ml-100k.quick.md").read_text()
    _check_header(text, "ablation")
    assert "- Note: shared with another job\n" in text
    rows = _table_rows(text, "| c | noise | RW |")
    assert [(r[0], r[2]) for r in rows] == [
        (c, w) for c in ("80 %", "90 %", "95 %") for w in ("yes", "**no**")
    ]
    assert "paper R@20 (ML-1M)" in text
    assert [r[6] for r in rows[:2]] == ["0.2437", "0.2130"]  # paper Table 2, 80 %
    assert len(_table_rows(text, "| c | R@20 ours |")) == 3


def test_seeds_give_intervals_and_finished_cells_are_reused(tmp_path, cache_dir):
    """``--seeds 2``: every agent runs per seed as a sweep cell; a rerun reuses the cells."""
    runs = tmp_path / "runs"
    _run(reproduce, "ablation", tmp_path, cache_dir, "--seeds", "2", "--runs-dir", str(runs))
    text = (tmp_path / "reproduction_ablation_ml-100k.quick.md").read_text()
    assert "- Seeds: 3, 4 (tables: mean over seeds; intervals below)" in text
    assert "## Seeds and intervals" in text
    assert "| RW-TD3 walk=off | 2 |" in text or "| RW-TD3 walk=off | 0/2 |" in text
    markers = sorted(runs.glob("ablation/ml-100k/cells/*/done.json"))
    assert len(markers) == 4  # walk on/off × 2 seeds
    before = [m.read_text() for m in markers]
    _run(reproduce, "ablation", tmp_path, cache_dir, "--seeds", "2", "--runs-dir", str(runs))
    assert [m.read_text() for m in markers] == before  # read back, not rerun
    assert (tmp_path / "reproduction_ablation_ml-100k.quick.md").read_text().count("walk=off") >= 1


def test_an_unknown_data_set_is_refused_before_any_work(tmp_path):
    """A data set without an env id fails with the accepted names."""
    with pytest.raises(ValueError, match=r"`--datasets` entries must be one of .*got 'ml-10m'"):
        reproduce.main(["reduced", "--datasets", "ml-10m", "--output-dir", str(tmp_path)])


def test_paper_reference_tables_agree_where_the_paper_repeats_itself():
    """Table 2's Gaussian + walk rows are Table 1's CIESS rows (two known slips, ≤ 0.004 apart)."""
    ref = reproduce.PAPER_REFERENCE
    for dataset in ("ml-1m", "yelp2018"):
        for c in (0.80, 0.90, 0.95):
            _, r20, _, n20 = ref["table1"][dataset][("CIESS", c)]
            t2_r20, t2_n20 = ref["table2"][dataset][(c, "G", True)]
            assert abs(r20 - t2_r20) <= 1e-4
            assert abs(n20 - t2_n20) <= 0.004  # ML-1M 80 %: .4257/.4250; Yelp 95 %: .0640/.0604


def test_a_protocol_is_read_from_its_sweep_spec(tmp_path, monkeypatch):
    """A protocol's data sets, episodes, retraining, cap and agents all come from its TOML."""
    (tmp_path / "p.toml").write_text(
        'agents = ["es", "rw-td3"]\nepisodes = 7\nretrain_batches = 300\n'
        '[grid]\nenv_id = ["CIESS-LightGCN-Yelp2018-v0", "CIESS-LightGCN-ML100K-v0"]\n'
        '"env_kwargs.retrain" = ["scratch", "fast"]\n'
    )
    monkeypatch.setattr(reproduce, "SWEEPS", tmp_path)
    spec = reproduce.ProtocolSpec.from_sweep("p", "p", "a protocol")
    assert spec.datasets == ("yelp2018", "ml-100k")
    assert (spec.episodes, spec.retrain, spec.max_retrain_batches) == (7, "scratch", 300)
    assert spec.agents == ("es", "rw-td3")
    assert reproduce.PROTOCOLS["reduced"].agents == ("es", "mr", "mde", "pep", "rw-td3", "esapn")
