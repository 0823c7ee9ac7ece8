"""benchmarks/budget_agents.py: agent variants as rows of their own, units cached per cell."""

from __future__ import annotations

import json
import re
from pathlib import Path

import budget_agents as study
import pytest

from ciess_env.errors import InvalidArgumentError, UnknownNameError

TINY = {
    "preset": "tiny",
    "dataset_kwargs": {"n_users": 40, "n_items": 30, "mean_interactions": 8},
}


def test_an_agent_spec_splits_into_agent_and_env_keywords() -> None:
    name, agent_kw, env_kw = study.parse_agent("rw-td3:noise=shared,sigma=3,env.reward=team")
    assert name == "rw-td3"
    assert agent_kw == {"noise": "shared", "sigma": 3}
    assert env_kw == {"reward": "team"}
    assert study.parse_agent("es") == ("es", {}, {})
    assert study.parse_agent("ppo:net_arch=[64,64],n_steps=8")[1] == {
        "net_arch": [64, 64], "n_steps": 8,
    }  # fmt: skip


def test_a_bad_agent_spec_names_what_is_wrong() -> None:
    with pytest.raises(UnknownNameError, match="rw-td3"):
        study.parse_agent("rw-td4:noise=shared")
    with pytest.raises(InvalidArgumentError, match=r"'noise' is not k=v"):
        study.parse_agent("rw-td3:noise")
    with pytest.raises(InvalidArgumentError, match="not valid JSON"):
        study._env_kwargs('{"preset": tiny}')
    with pytest.raises(InvalidArgumentError, match="cannot read 'retrain'"):
        study._env_kwargs("retrain")


def test_a_variant_is_its_own_row_and_its_keywords_reach_the_agent(tmp_path) -> None:
    out = tmp_path / "study"
    env_kw = json.dumps(TINY | {"cache_dir": str(tmp_path / "cache")})
    args = ["--env-id", "CIESS-MF-Synthetic-v1", "--env-kw", env_kw, "--seeds", "0",
            "--budgets", "0.9", "--episodes", "1", "--retrain-batches", "8",
            "--out", str(out)]  # fmt: skip
    variant = "structured-tpe:warm_start=false,episodes=2"
    assert study.main([*args, "--agents", "es", variant]) == 0
    units = [json.loads(line) for line in out.with_suffix(".jsonl").read_text().splitlines()]
    assert [(u["agent"], u["budget"], u["episodes"]) for u in units] == [
        ("es", 0.9, 1), (variant, 0.9, 2)
    ]  # fmt: skip
    assert [r["agent"] for u in units for r in u["rows"]] == ["es", variant]
    assert f"| {variant} | 1 | 0.9000 |" in out.with_suffix(".md").read_text()
    # The keywords do reach the agent: a bad value fails in the agent, naming the keyword.
    with pytest.raises(InvalidArgumentError, match="`population` must be >= 2"):
        study.main([*args, "--agents", "structured-cem:population=1"])


def test_a_study_moved_to_its_cells_is_not_forked_into_a_jsonl() -> None:
    """Running the old command on a ported study names study.py instead of starting a JSONL."""
    out = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "budget_agents_ml100k"
    before = out.with_suffix(".jsonl").read_bytes()  # kept, frozen, for table1.py
    with pytest.raises(InvalidArgumentError, match=re.escape("benchmarks/study.py run budget_")):
        study.main(["--out", str(out)])
    assert out.with_suffix(".jsonl").read_bytes() == before
