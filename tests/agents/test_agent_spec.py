"""One AgentSpec per agent, one registry: names, kinds, checks, and agents added from outside."""

from __future__ import annotations

import re

import pytest

from agents.baselines import PopularityProportional
from agents.protocol import BudgetCandidates
from agents.registry import (
    AGENT_KINDS,
    AGENT_SPECS,
    AgentSpec,
    agent_names,
    agent_spec,
    agents_help,
    check_agent_kwargs,
    register_agent,
    wrap_env_for,
)
from ciess_env.errors import UnknownNameError


@pytest.fixture
def registered():
    """``register(spec)`` for a test; every name it adds is removed afterwards."""
    added: list[str] = []

    def register(spec: AgentSpec, **kw) -> AgentSpec:
        added.append(spec.name)
        return register_agent(spec, **kw)

    yield register
    for name in added:
        AGENT_SPECS.pop(name, None)


def _rare_first(c, env, *, seed, **kw):
    """A toy heuristic from outside the package: MDE with a negative temperature."""
    return PopularityProportional.from_env(c, env, seed=seed, alpha=-0.5, **kw)


def test_builtin_agents_keep_their_names_and_kinds() -> None:
    """Every name of the six old tables is registered, with the kind its old table meant.

    (Agents registered later, e.g. by other modules, come after these.)
    """
    assert agent_names("heuristic")[:3] == ("es", "mr", "mde")
    assert agent_names("rl")[:6] == ("rw-td3", "td3", "ddpg", "sac", "ppo", "esapn")
    assert agent_names("budget-rl")[:1] == ("rw-td3-lagrange",)
    assert agent_names("budget-search")[:2] == ("structured-tpe", "structured-cem")
    assert agent_names("pruner")[:2] == ("pep", "pep-prefix")
    assert set(agent_names()) == set(AGENT_SPECS)
    assert set(AGENT_KINDS) == {"heuristic", "rl", "budget-rl", "budget-search", "pruner"}


def test_pep_prefix_shares_peps_search_and_settings() -> None:
    """The PEP special case is data now: pep-prefix reads 'pep''s kwargs and search."""
    prefix, pep = agent_spec("pep-prefix"), agent_spec("pep")
    assert prefix.search_of == "pep"
    assert prefix.kwargs_key == "pep" == pep.kwargs_key
    assert prefix.builder is pep.builder
    assert prefix.proposer is not pep.proposer  # same search, other candidates


def test_a_typo_gets_one_error_with_the_closest_name() -> None:
    msg = (
        "Unknown agent 'rw-td4'. Valid names: "
        + ", ".join(sorted(AGENT_SPECS))
        + ". Did you mean 'rw-td3'?"
    )
    with pytest.raises(UnknownNameError, match=re.escape(msg)):
        agent_spec("rw-td4")


def test_an_agent_of_the_wrong_kind_is_named_with_its_kind() -> None:
    one_budget = sorted(agent_names("budget-rl", "budget-search"))
    msg = (
        "Agent 'rw-td3' is of kind 'rl' (searches the per-entity vector env once for all "
        "budgets); expected kind 'budget-rl' or 'budget-search' (one-budget agent): "
        + ", ".join(one_budget)
        + "."
    )
    assert {"rw-td3-lagrange", "structured-cem", "structured-tpe"} <= set(one_budget)
    with pytest.raises(UnknownNameError, match=re.escape(msg)):
        agent_spec("rw-td3", kinds=("budget-rl", "budget-search"), what="one-budget agent")


def test_register_agent_refuses_a_taken_name_unless_replaced(registered) -> None:
    spec = registered(AgentSpec("toy-rare", "heuristic", _rare_first))
    with pytest.raises(ValueError, match=re.escape("agent 'toy-rare' is already registered")):
        register_agent(AgentSpec("toy-rare", "heuristic", _rare_first))
    other = AgentSpec("toy-rare", "heuristic", PopularityProportional.from_env)
    assert register_agent(other, replace=True) is other is agent_spec("toy-rare")
    assert spec != other


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "Toy"}, "`name` must be a non-empty lowercase string"),
        ({"name": "my:toy"}, "without spaces, ':', ',' or '='"),
        ({"kind": "heuristc"}, "Unknown kind of agent 'toy': 'heuristc'.*Did you mean 'heuristic'"),
        ({"builder": "agents.baselines:EqualSize"}, "`builder` of agent 'toy' must be callable"),
    ],
)
def test_a_bad_spec_is_refused_when_it_is_made(kwargs, match) -> None:
    args = {"name": "toy", "kind": "heuristic", "builder": _rare_first, **kwargs}
    with pytest.raises((ValueError, TypeError), match=match):
        AgentSpec(**args)


def test_search_of_must_name_a_registered_agent(registered) -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'pep'"):
        registered(AgentSpec("toy-prune", "pruner", _rare_first, search_of="pepp"))


def test_help_and_names_read_the_registry_live(registered) -> None:
    """An agent registered after import shows in the help line and the names of its kind."""
    assert "toy-rl" not in agents_help()
    registered(AgentSpec("toy-rl", "rl", lambda vec, **kw: None))
    assert "rl: rw-td3 td3 ddpg sac ppo esapn" in agents_help()
    assert " toy-rl" in agents_help("rl")
    assert "heuristic" not in agents_help("rl")
    assert agent_names("rl")[-1] == "toy-rl"
    assert wrap_env_for("toy-rl", env := object()) is env


def test_kwargs_are_checked_from_the_constructors_or_not_at_all(registered) -> None:
    with pytest.raises(UnknownNameError, match="argument of agent 'td3': 'polcy_delay'"):
        check_agent_kwargs("td3", {"polcy_delay": 2})
    registered(AgentSpec("toy-rare", "heuristic", _rare_first))
    check_agent_kwargs("toy-rare", {"anything": 1})  # no constructors named: unchecked


def test_budget_candidates_hold_exactly_one_kind_of_mask() -> None:
    with pytest.raises(ValueError, match="must hold exactly one of `log`"):
        BudgetCandidates(0.9)


TINY = {"preset": "tiny", "dataset_kwargs": {"n_users": 40, "n_items": 30, "mean_interactions": 8}}


def test_the_mr_heuristic_draws_with_the_seed_it_is_built_with(tmp_path) -> None:
    """Same seed, same MR sizes; another seed, other sizes.

    MR's builder dropped ``seed`` (``SizeBaseline.from_env`` took it), so every MR row was
    drawn unseeded: the same compare call gave other MR numbers on every run.
    """
    import gymnasium as gym
    import numpy as np

    import ciess_env  # noqa: F401

    env = gym.make("CIESS-MF-Synthetic-v1", cache_dir=str(tmp_path), **TINY)
    build = agent_spec("mr").builder
    first, again, other = (np.concatenate(build(0.9, env, seed=s).sizes()) for s in (3, 3, 4))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert first.sum() == again.sum() == other.sum()  # each meets the budget exactly


# ------------------------------------------------------------- agents registered from outside
ENV_ID = "CIESS-MF-Synthetic-v1"
METRICS = ["sparsity", "recall@5", "recall@20", "ndcg@5", "ndcg@20"]


def _compare(names, tmp_path, budgets=(0.5, 0.9), **kw):
    from agents.experiments.comparison import compare

    return compare(
        ENV_ID, names, budgets=list(budgets), episodes=1, top_l=1, seed=0, retrain_batches=8,
        env_kwargs={**TINY, "cache_dir": str(tmp_path)}, progress_bar=False, **kw,
    )  # fmt: skip


def test_a_heuristic_registered_from_a_test_file_runs_through_compare(registered, tmp_path):
    """One spec, zero files of the package: the toy equals MDE at α = −0.5, row for row."""
    registered(AgentSpec("toy-rare", "heuristic", _rare_first, "rare entities first"))
    result = _compare(
        ["toy-rare", "mde"], tmp_path, budgets=[0.9], agent_kwargs={"mde": {"alpha": -0.5}}
    )
    table = result.table.set_index(["agent", "budget"])
    assert list(table.loc["toy-rare"].index) == [0.9]
    assert table.loc[("toy-rare", 0.9), "sparsity"] == 0.9
    assert table.loc["toy-rare"][METRICS].equals(table.loc["mde"][METRICS])
    assert len(result.logs["toy-rare"]) == 1  # one assignment per budget
    assert "toy-rare" not in result.curves  # a heuristic does not search


def test_a_predict_only_rl_agent_registered_from_outside_is_searched_and_retrained(
    registered, tmp_path
):
    """A kind-"rl" agent outside SB3 is rolled out; its one mask (ES at 0.5) scores as ES."""
    from agents.baselines import EqualSize

    registered(AgentSpec("toy-es", "rl", lambda vec, **kw: EqualSize.from_env(0.5, vec.env)))
    result = _compare(["toy-es", "es"], tmp_path)
    table = result.table.set_index(["agent", "budget"])
    assert len(result.curves["toy-es"]) == 10  # one episode of T = 10 steps
    np_equal = table.loc[("toy-es", 0.5), METRICS].equals(table.loc[("es", 0.5), METRICS])
    assert np_equal
    assert table.loc[("toy-es", 0.9), METRICS].isna().all()  # ES at 0.5 never reaches 0.9


def test_the_cli_help_and_the_sweep_read_an_agent_registered_later(registered, tmp_path, capsys):
    """Compare --help lists it under its kind; a sweep drops episodes/top_l for a heuristic."""
    from agents.experiments.cli import main
    from agents.experiments.sweep import parse_spec

    registered(AgentSpec("toy-rare", "heuristic", _rare_first))
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    assert "heuristic: es mr mde toy-rare;" in " ".join(capsys.readouterr().out.split())
    raw = {"env_id": ENV_ID, "agents": ["toy-rare", "td3"], "episodes": 3, "top_l": 2}
    cells = {c.config["agent"]: c.config for c in parse_spec(raw).cells()}
    assert "episodes" not in cells["toy-rare"]
    assert "top_l" not in cells["toy-rare"]
    assert cells["td3"]["episodes"] == 3
    with pytest.raises(ValueError, match=r"`agents`: Unknown agent 'toy-rar'.*'toy-rare'"):
        parse_spec({**raw, "agents": ["toy-rar"]})


# ------------------------------------------------------------- agents shipped by other packages
PLUGIN_MODULE = """
from agents.baselines import PopularityProportional
from agents.registry import AgentSpec


def _rare_first(c, env, **kw):
    return PopularityProportional.from_env(c, env, alpha=-0.5)


SPEC = AgentSpec("plugin-rare", "heuristic", _rare_first, "rare entities first (a plugin)")
"""


def _install_plugin(root, entry_points: str) -> None:
    """A package installed the way pip leaves it: a module and its dist-info with entry points."""
    (root / "my_ciess_plugin.py").write_text(PLUGIN_MODULE)
    info = root / "my_ciess_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-ciess-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)


def test_an_installed_package_adds_an_agent_through_its_entry_point(tmp_path) -> None:
    """A fresh interpreter (the CLI, a Ray sweep's worker) finds the plugin's agent by name."""
    import os
    import subprocess
    import sys

    _install_plugin(tmp_path, "[ciess_env.agents]\nplugin-rare = my_ciess_plugin:SPEC\n")
    code = (
        "from agents.registry import agent_spec, agents_help\n"
        "spec = agent_spec('plugin-rare')\n"
        "print(spec.kind, spec.builder.__module__, 'plugin-rare' in agents_help())"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120, check=True)  # fmt: skip
    assert out.stdout.split() == ["heuristic", "my_ciess_plugin", "True"]


def test_a_broken_plugin_is_skipped_with_a_warning_and_named_when_asked_for(
    tmp_path, monkeypatch
) -> None:
    """One package that fails to import disables only its own agent, with the reason."""
    import sys

    from agents import registry

    _install_plugin(tmp_path, "[ciess_env.agents]\nplugin-rare = my_ciess_plugin:SPEC\n"
                    "plugin-gone = my_missing_module:SPEC\n")  # fmt: skip
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "PLUGIN_ERRORS", {})
    monkeypatch.setattr(registry, "AGENT_SPECS", dict(registry.AGENT_SPECS))
    with pytest.warns(UserWarning, match="'plugin-gone' .* of my-ciess-plugin failed to load"):
        assert registry.load_plugins() == ["plugin-rare"]
    assert registry.agent_spec("plugin-rare").kind == "heuristic"
    with pytest.raises(
        ValueError, match="ModuleNotFoundError: No module named 'my_missing_module'"
    ):
        registry.agent_spec("plugin-gone")
    sys.modules.pop("my_ciess_plugin", None)


def test_heuristic_and_pruner_arguments_are_checked_before_any_work(tmp_path) -> None:
    """A misspelt MDE or PEP setting is named with the valid ones, before any work.

    It was a TypeError from inside the constructor, after the pretraining. A size-range
    override reaches the heuristic.
    """
    with pytest.raises(ValueError, match=r"argument of agent 'mde': 'alhpa'.*Did you mean 'alpha'"):
        _compare(["es", "mde"], tmp_path, budgets=[0.9], agent_kwargs={"mde": {"alhpa": 0.5}})
    with pytest.raises(ValueError, match=r"agent 'pep': 'max_batchez'.*'max_batches'"):
        _compare(["pep-prefix"], tmp_path, budgets=[0.9], agent_kwargs={"pep": {"max_batchez": 5}})
    with pytest.raises(
        ValueError,
        match=r"settings of agent 'mr' may not set 'seed': every agent is seeded by the run",
    ):
        _compare(["mr"], tmp_path, budgets=[0.9], agent_kwargs={"mr": {"seed": 3}})
    assert list(tmp_path.iterdir()) == []  # refused before any env was built or pretrained
    import gymnasium as gym

    import ciess_env  # noqa: F401

    env = gym.make(ENV_ID, cache_dir=str(tmp_path), **TINY)
    users, items = agent_spec("es").builder(0.5, env, seed=0, d_min=8).sizes()
    assert min(users.min(), items.min()) >= 8
