"""benchmarks/beats_es.py: the studies' units joined into one table and a verdict vs ES."""

from __future__ import annotations

import json

import beats_es as study
import pytest


def _budget_agents_unit(agent: str, seed: int, budget: float, r20: float) -> dict:
    row = {"agent": agent, "seed": seed, "budget": budget, "sparsity": budget,
           "recall@20": r20, "ndcg@20": r20 + 0.1, "search_s": 1.0}  # fmt: skip
    return {"seed": seed, "agent": agent, "budget": budget, "rows": [row]}


def _diagnosis_unit(kind: str, seed: int, budget: float, r20: float | None, **kw) -> dict:
    result = None if r20 is None else {"sparsity": budget, "recall_20": r20, "ndcg_20": r20}
    return {"key": f"{kind}/{seed}/{budget}", "kind": kind, "seed": seed, "budget": budget,
            "result": result, **kw}  # fmt: skip


def _write(path, units) -> None:
    path.write_text("".join(json.dumps(u) + "\n" for u in units))


def test_the_verdict_pairs_each_agent_with_es_seed_by_seed(tmp_path) -> None:
    es = {0: 0.20, 1: 0.22, 2: 0.18}
    _write(tmp_path / "budget_agents_ml100k_v1.jsonl",
           [_budget_agents_unit("es", s, 0.9, v) for s, v in es.items()]
           + [_budget_agents_unit("structured-tpe", s, 0.9, v + 0.01) for s, v in es.items()]
           + [_budget_agents_unit("mr", s, 0.9, v - 0.02 + 0.001 * s)
              for s, v in es.items()])  # fmt: skip
    _write(tmp_path / "search_diagnosis_ml-100k_v1.jsonl",
           [_diagnosis_unit("search", 0, 0.9, None, noise="shared")]  # not a retraining: skipped
           + [_diagnosis_unit("es", s, 0.9, v) for s, v in es.items()]
           + [_diagnosis_unit("retrain", s, 0.9, v + (0.01 if s else -0.01), noise="shared",
                              pool="explored") for s, v in es.items()]
           + [_diagnosis_unit("retrain", s, 0.9, None, noise="shared", pool="deterministic")
              for s in es]
           # the search without noise reached 90 % on seed 0 only
           + [_diagnosis_unit("retrain", s, 0.9, None if s else 0.22, noise="none",
                              pool="explored") for s in es])  # fmt: skip
    text = study.write("ml-100k", tmp_path).read_text()
    assert "(partial" not in text
    assert "ES check: the two studies' ES agree on 3 of 3 common (seed, budget) cells" in text
    verdict = text.split("## Verdict")[1].split("## Per budget")[0]
    assert "| structured-tpe | +5.0% (**beats ES**; 3 seeds) |" in verdict  # +0.01 on 0.20
    assert "| mr | -9.5% (below ES; 3 seeds) |" in verdict
    assert "| rw-td3:noise=shared | +1.7% (within noise; 3 seeds) |" in verdict
    assert "| rw-td3:noise=shared (noise-free policy) | — (never reached c on 3 seeds) |" in verdict
    assert ("| rw-td3:noise=none | +10.0% (no interval; 1 seed; 2 of 3 missed c) |"
            in verdict)  # fmt: skip
    assert "| rw-td3:noise=shared (noise-free policy) | 0/3 |" in text


def test_no_es_units_is_a_clear_error(tmp_path) -> None:
    from ciess_env.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match=r"no ES units in .*run the studies first"):
        study.write("ml-100k", tmp_path)


def test_es_that_disagrees_between_studies_is_reported_and_a_partial_table_labelled(
    tmp_path,
) -> None:
    _write(tmp_path / "budget_agents_ml1m_v1.jsonl",
           [_budget_agents_unit("es", s, 0.8, 0.2) for s in (0, 1)]
           + [_budget_agents_unit("structured-tpe", 0, 0.8, 0.21)])  # fmt: skip
    _write(tmp_path / "search_diagnosis_ml-1m_v1.jsonl",
           [_diagnosis_unit("es", 1, 0.8, 0.25)])  # fmt: skip
    text = study.write("ml-1m", tmp_path).read_text()
    assert "agree on 0 of 1 common (seed, budget) cells (largest |Δ test R@20| 5.0e-02)" in text
    assert "(partial: 0 of 2 agent × budget cells have 3 or more seeds)" in text
    assert "| structured-tpe | +5.0% (no interval; 1 seed) |" in text


def test_a_study_that_has_not_run_is_named_as_such(tmp_path) -> None:
    _write(tmp_path / "budget_agents_ml1m_v1.jsonl",
           [_budget_agents_unit("es", s, 0.8, 0.2) for s in (0, 1)])  # fmt: skip
    text = study.write("ml-1m", tmp_path).read_text()
    assert "- `search_diagnosis_ml-1m_v1`: not run (no `search_diagnosis_ml-1m_v1.jsonl`" in text
    assert "(no report yet)" in text  # the budget_agents JSONL exists, its report does not


def test_a_search_on_another_step_is_joined_under_its_own_name(tmp_path) -> None:
    """Issue 29's RW-TD3 on the sprint:150 step sits beside the -v1 rows, named by its step."""
    es = {0: 0.20, 1: 0.22, 2: 0.18}
    _write(tmp_path / "budget_agents_ml1m_v1.jsonl",
           [_budget_agents_unit("es", s, 0.9, v) for s, v in es.items()])  # fmt: skip
    _write(tmp_path / "search_diagnosis_ml-1m_sprint150.jsonl",
           [_diagnosis_unit("es", s, 0.9, v) for s, v in es.items()]
           + [_diagnosis_unit("retrain", s, 0.9, v - 0.02, noise="per_entity", pool=pool)
              for s, v in es.items() for pool in ("explored", "deterministic")])  # fmt: skip
    text = study.write("ml-1m", tmp_path).read_text()
    verdict = text.split("## Verdict")[1].split("## Per budget")[0]
    assert "| rw-td3:noise=per_entity,step=sprint:150 | -10.0% (below ES; 3 seeds) |" in verdict
    assert "| rw-td3:noise=per_entity,step=sprint:150 (noise-free policy) | -10.0%" in verdict
    assert "Rows with `step=sprint:150` searched with the `sprint:150` step instead" in text
    assert "ES check: the two studies' ES agree on 3 of 3 common (seed, budget) cells" in text
