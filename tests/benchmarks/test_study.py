"""benchmarks/study.py: a study is a sweep spec plus a report, its cells the sweep's store."""

from __future__ import annotations

import json
import re

import pytest
import study


@pytest.mark.parametrize("name", sorted(study.STUDIES))
def test_a_ported_study_regenerates_its_committed_results_file(name):
    """The committed markdown is what the report writes from the committed cells, byte for byte."""
    got = study.render(study.STUDIES[name])
    assert got == study.STUDIES[name].markdown.read_text()
    assert "| 95% |" in got or "### Budget 95 % pruned" in got  # every budget is there


SPEC = """
description = "tiny"
env_id = "CIESS-LightGCN-Synthetic-v0"
agents = ["es"]
seeds = 3
budgets = [0.8]
retrain_batches = 4

[env_kwargs]
preset = "tiny"
dataset_kwargs = { n_users = 40, n_items = 30, mean_interactions = 8 }
"""


def test_a_study_runs_its_missing_cells_once_and_reports_them(tmp_path, monkeypatch):
    """`run` fills the cells and writes the report; a second run finds every cell done."""
    monkeypatch.setenv("CIESS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(study, "SWEEPS", tmp_path)
    monkeypatch.setattr(study, "RESULTS", tmp_path / "results")
    (tmp_path / "tiny.toml").write_text(SPEC)
    tiny = study.Study("tiny", study.STUDIES["budget_agents_ml100k"].render)
    path = study.run(tiny, sequential=True, address=None, num_cpus=None)
    text = path.read_text()
    cells = sorted((tmp_path / "results" / "tiny" / "cells").iterdir())
    assert len(cells) == 3
    done = [json.loads((c / "done.json").read_text()) for c in cells]
    assert all(isinstance(d["load_average"], float) for d in done)  # the sweep records the load
    assert "### Budget 80 % pruned" in text
    assert "| es | 3 |" in text  # one summary row over the three seeds
    study.run(tiny, sequential=True, address=None, num_cpus=None)
    assert [json.loads((c / "done.json").read_text()) for c in cells] == done  # nothing reran
    assert path.read_text() == text


def test_a_spec_can_fill_masks_to_the_budget_without_renaming_other_cells():
    """fill_budget = true reaches the cell; left out, a cell's key is what it was before."""
    from agents.experiments.sweep import SpecError, parse_spec

    base = {"env_id": "CIESS-LightGCN-Synthetic-v0", "agents": ["rw-td3"], "seeds": 1}
    plain = parse_spec(dict(base)).cells()[0]
    filled = parse_spec({**base, "fill_budget": True}).cells()[0]
    assert "fill_budget" not in plain.config
    assert filled.config["fill_budget"] is True
    assert plain.key == "rw-td3-s0-" + plain.key.rsplit("-", 1)[1] != filled.key
    with pytest.raises(SpecError, match=r"`fill_budget` must be true or false; got 'yes'"):
        parse_spec({**base, "fill_budget": "yes"})


def test_reporting_a_study_that_never_ran_says_how_to_run_it(tmp_path, monkeypatch):
    """No finished cell: one line naming the run command, not a pandas KeyError."""
    from ciess_env.errors import InvalidArgumentError

    monkeypatch.setattr(study, "SWEEPS", tmp_path)
    monkeypatch.setattr(study, "RESULTS", tmp_path / "results")
    (tmp_path / "tiny.toml").write_text(SPEC)
    tiny = study.Study("tiny", study.STUDIES["budget_agents_ml100k"].render)
    with pytest.raises(InvalidArgumentError, match=re.escape("benchmarks/study.py run tiny`")):
        study.render(tiny)
