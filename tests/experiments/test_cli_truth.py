"""`ciess` tells the truth: one-line errors (exit 2), true counts, complete help, >= 3 seeds.

Each case here was a traceback or a misleading line before issue 28.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pandas as pd
import pytest

from agents.experiments.cli import build_parser, main

ENV_ID = "CIESS-MF-Synthetic-v0"
DATA = {"n_users": 40, "n_items": 30, "mean_interactions": 8}
AGENT_KW = ["--agent-kw", "batch_size=64", "policy_kwargs={'net_arch': [16]}"]


def _env_kw(cache: Path, **extra) -> list[str]:
    kw = {"preset": "tiny", "dataset_kwargs": DATA, "cache_dir": str(cache), **extra}
    return ["--env-kw", *(f"{k}={v!r}" for k, v in kw.items())]


def _one_line_error(capsys, command: str) -> str:
    """The error ``main`` printed: exactly one line, ``ciess <command>: error: ...``."""
    err = capsys.readouterr().err
    assert err.startswith(f"ciess {command}: error: "), err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


# ------------------------------------------------------------------ tracebacks → one line
@pytest.mark.parametrize("command", ["search", "compare"])
def test_an_env_id_typo_is_one_line_naming_the_close_id(command, tmp_path, capsys) -> None:
    """Was gymnasium's NameNotFound, 23 lines and exit 1; and the run folder was made."""
    out = tmp_path / "run"
    assert main([command, "CIESS-MF-Synthtic-v0", "--output", str(out)]) == 2
    err = _one_line_error(capsys, command)
    assert "Unknown env id 'CIESS-MF-Synthtic-v0'. Did you mean 'CIESS-MF-Synthetic-v0'?" in err
    assert "`ciess envs`" in err
    assert not out.exists()


def test_an_unknown_dataset_kwargs_key_is_one_line(tmp_path, capsys) -> None:
    """Was `TypeError: make_synthetic() got an unexpected keyword argument 'n_userz'`."""
    argv = ["search", ENV_ID, "--output", str(tmp_path / "run")]
    assert main([*argv, *_env_kw(tmp_path, dataset_kwargs={"n_userz": 40})]) == 2
    err = _one_line_error(capsys, "search")
    assert "`dataset_kwargs` key for data set 'synthetic': 'n_userz'" in err
    assert "Did you mean 'n_users'?" in err


def test_a_non_dict_dataset_kwargs_is_one_line(tmp_path, capsys) -> None:
    """Was `TypeError: 'int' object is not iterable` from inside gym.make."""
    argv = ["compare", ENV_ID, "--output", str(tmp_path / "run")]
    assert main([*argv, *_env_kw(tmp_path, dataset_kwargs=5)]) == 2
    err = _one_line_error(capsys, "compare")
    assert "`dataset_kwargs` must be a dict of load_dataset arguments" in err
    assert "got int 5." in err


def test_the_env_checks_dataset_kwargs_for_python_callers_too(tmp_path) -> None:
    import gymnasium as gym

    from ciess_env.errors import CIESSError

    with pytest.raises(CIESSError, match=r"data set 'ml-1m': 'n_users'.*download, keep_test"):
        gym.make("CIESS-MF-ML1M-v1", dataset_kwargs={"n_users": 3}, data_dir=str(tmp_path))


def test_an_unknown_agent_kw_is_one_line_before_any_work(tmp_path, capsys) -> None:
    """Was `TypeError: RandomWalkTD3.__init__() got an unexpected keyword argument`."""
    out = tmp_path / "run"
    argv = ["search", ENV_ID, "--output", str(out), *_env_kw(tmp_path)]
    assert main([*argv, "--agent-kw", "noise_stages=2"]) == 2
    err = _one_line_error(capsys, "search")
    assert "Unknown argument of agent 'rw-td3': 'noise_stages'" in err
    assert "Did you mean 'noise_stage'" in err
    assert not out.exists()


def test_make_agent_refuses_an_unknown_keyword_by_name() -> None:
    from agents.registry import check_agent_kwargs

    with pytest.raises(ValueError, match="argument of agent 'structured-cem': 'populaton'"):
        check_agent_kwargs("structured-cem", {"populaton": 4})
    check_agent_kwargs("rw-td3-lagrange", {"target_sparsity": 0.9, "walk_steps": 2})  # accepted


def test_a_one_budget_agent_in_search_points_to_compare(tmp_path, capsys) -> None:
    assert main(["search", ENV_ID, "--agent", "rw-td3-lagrange", "--output", str(tmp_path)]) == 2
    assert "run it with `ciess compare`" in _one_line_error(capsys, "search")


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["search", ENV_ID, "--seed", "-1"], "search"),
        (["compare", ENV_ID, "--seed", "-1"], "compare"),
        (["demo", "--seed", "-1"], "demo"),
    ],
)
def test_a_negative_seed_is_a_one_line_usage_error(argv, command, capsys) -> None:
    """Was numpy's `ValueError: expected non-negative integer` after the env was built."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = _one_line_error(capsys, command)
    assert "argument --seed: expected a seed, an integer >= 0, got '-1'" in err
    assert f"(see `ciess {command} --help`)" in err


def test_a_truncated_config_json_for_retrain_is_one_line(tmp_path, capsys) -> None:
    """Was `json.decoder.JSONDecodeError` with a traceback."""
    run = tmp_path / "run"
    run.mkdir()
    text = json.dumps({"command": "search", "env_id": ENV_ID, "seed": 0}, indent=2)
    (run / "config.json").write_text(text[:30])
    assert main(["retrain", str(run)]) == 2
    err = _one_line_error(capsys, "retrain")
    assert str(run / "config.json") in err
    assert "damaged" in err


def test_a_real_bug_keeps_its_traceback(monkeypatch) -> None:
    """Only the project's errors and usage errors become one line; anything else propagates."""
    import agents.experiments.cli as cli

    def broken(args):
        raise KeyError("a bug")

    monkeypatch.setattr(cli, "cmd_envs", broken)
    with pytest.raises(KeyError, match="a bug"):
        main(["envs"])


# ------------------------------------------------------------------ help and version
def _options(parser):
    """Every (subcommand, action) of the parser."""
    import argparse

    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, subparser in sub.choices.items():
        for action in subparser._actions:
            if not isinstance(action, argparse._HelpAction):
                yield name, action


def test_every_option_has_help_and_every_default_is_shown() -> None:
    """`--episodes`, `--seed`, `--output`, `--agent-kw`, `--top-l` had no help or default."""
    for command, action in _options(build_parser()):
        if command == "sweep":  # its own module's options
            continue
        where = f"ciess {command} {'/'.join(action.option_strings) or action.dest}"
        assert action.help, where
        if action.option_strings and action.default not in (None, False, []):
            assert "default" in action.help, where


def test_help_has_no_rest_markup(capsys) -> None:
    parser = build_parser()
    texts = [parser.format_help()]
    for command in ("envs", "data", "search", "retrain", "compare", "sweep", "demo"):
        with pytest.raises(SystemExit):
            parser.parse_args([command, "--help"])
        texts.append(capsys.readouterr().out)
    for text in texts:
        for markup in ("``", ":func:", ":mod:", ":class:", ":meth:", ":data:"):
            assert markup not in text, (markup, text)


def test_compare_help_lists_every_registered_agent(capsys) -> None:
    """structured-tpe, structured-cem and rw-td3-lagrange were missing."""
    from agents.registry import agent_names

    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in agent_names():
        assert f" {name}" in text, name


def test_version_is_the_installed_distribution(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"ciess {version('ciess-env')}\n"


@pytest.mark.parametrize("argv", [["--help"], ["envs"], ["search", "--help"]])
def test_help_and_envs_import_neither_torch_nor_pandas(argv) -> None:
    """Every call spent ~3.6 s importing torch before doing anything."""
    code = (
        "import sys\n"
        "from agents.experiments.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted(m for m in ('torch', 'pandas', 'stable_baselines3', 'matplotlib') "
        "if m in sys.modules)\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "HEAVY []" in done.stderr, done.stderr


# ------------------------------------------------------------------ counts and numbering
@pytest.fixture(scope="module")
def search_run(tmp_path_factory) -> tuple[Path, str]:
    """A 2-episode RW-TD3 search on 40 × 30 entities whose log keeps budgets 0.3 and 0.99."""
    root = tmp_path_factory.mktemp("truth")
    run = root / "run"
    argv = ["search", ENV_ID, "--episodes", "2", "--seed", "3", "--output", str(run)]
    argv += [*_env_kw(root / "cache"), *AGENT_KW, "--budgets", "0.3", "0.99"]
    import contextlib
    import io

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(argv) == 0
    return run, printed.getvalue()


def test_search_counts_its_steps_not_its_kept_masks(search_run) -> None:
    """Was "search: 6 steps in 5.7 s" after 30 steps (it counted the masks the log kept)."""
    from ciess_env.budget_log import BudgetLog

    run, printed = search_run
    kept = len(BudgetLog.load(run / "budget_log"))
    assert kept < 20
    assert "search: 20 steps (2 episodes) in " in printed
    assert f", {kept} mask{'s' * (kept != 1)} kept for retrain; results in " in printed


def test_search_numbers_episodes_alike_in_table_file_and_plot(search_run) -> None:
    """Episodes were numbered from 0 in tables and from 1 in plots, with ticks at 1.5."""
    run, printed = search_run
    curve = pd.read_csv(run / "curve.csv")
    assert sorted(set(curve["episode"])) == [0, 1]
    table = printed.split("mean_quality")[-1].split()
    assert table[:2] == ["episode", "0"]
    assert "1" in table
    best = json.loads((run / "best_step.json").read_text())
    assert f"best step: episode {best['episode']} step {best['step']}," in printed

    from agents.experiments.plots import plot_search_curves

    fig = plot_search_curves(curve)
    ticks = [t for t in fig.axes[0].get_xticks() if -0.5 <= t <= 1.5]
    assert ticks
    assert all(float(t).is_integer() for t in ticks)
    assert list(fig.axes[0].lines[0].get_xdata()) == [0, 1]
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_retrain_names_the_agent_and_seed_and_writes_recall_at_20(search_run, caplog) -> None:
    """The no-mask warning named neither agent nor seed; retrain.md said recall_20."""
    run, _ = search_run
    assert main(["retrain", str(run), "--budgets", "0.3", "0.99", "--batches", "2"]) == 0
    assert "rw-td3, seed 3: no logged mask reaches sparsity 0.99 (the sparsest reaches" in (
        caplog.text
    )
    text = (run / "retrain.md").read_text()
    assert "| recall@5 | recall@20 | ndcg@5 | ndcg@20 |" in text
    assert "recall_20" not in text
    assert "recall@20" in pd.read_csv(run / "retrain.csv").columns


# ------------------------------------------------------------------ seeds and intervals
def test_compare_with_two_seeds_prints_means_and_says_why_no_interval(tmp_path, capsys) -> None:
    """`compare --seeds 2` printed 95 % intervals, `*` marks and P(...) [0.00, 1.00]."""
    argv = ["compare", ENV_ID, "--agents", "es", "mr", "--budgets", "0.5", "--seeds", "2"]
    argv += ["--batches", "4", "--output", str(tmp_path / "cmp"), *_env_kw(tmp_path / "cache")]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    table = printed.split("Means only")[0]
    assert "| mr | 2 | 0.5" in table
    assert "[" not in table
    assert "*" not in table
    assert "intervals need >= 3 seeds; got 2." in printed
    summary = (tmp_path / "cmp" / "summary.md").read_text()
    assert "intervals need >= 3 seeds; got 2." in summary
