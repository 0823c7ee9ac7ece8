"""No result is ever lost: `ciess search / compare / retrain` never reuse a folder silently.

A folder that holds another run is refused in one line (exit 2) that says how to go on; a run
that fails is marked failed in ``status.json``; a second retrain adds to the first.
"""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from agents.experiments import cli
from agents.experiments.cli import main
from agents.experiments.rundir import RunDirExistsError, prepare_run_dir, write_status
from agents.experiments.session import SearchSession


def _status(run: Path) -> dict:
    return json.loads((run / "status.json").read_text())


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert re.match(r"ciess( \w+)?: error: ", lines[-1]), lines
    assert not any("Traceback" in line for line in lines)
    return lines[-1]


def _disk_full(*args: object, **kwargs: object) -> None:
    raise OSError(28, "No space left on device")


def test_search_refuses_a_stopped_or_failed_run_and_overwrite_moves_it_aside(
    tmp_path, capsys, monkeypatch, search_argv
):
    out = tmp_path / "run"
    assert main(search_argv(out, "--stop-after", "1")) == 0
    assert _status(out)["status"] == "stopped"
    state = (out / "checkpoint" / "state.json").read_bytes()
    # Before: a new search replaced the resumable checkpoint without a word.
    assert main(search_argv(out, "--seed", "4")) == 2
    err = _one_line_error(capsys)
    assert f"`--output` {out} already holds a stopped `ciess search` run; " in err
    assert f"continue it with `ciess search --resume {out}`, pass --overwrite to move it " in err
    assert (out / "checkpoint" / "state.json").read_bytes() == state
    # A sitting that fails leaves the run marked failed, with the error.
    monkeypatch.setattr(SearchSession, "_run", _disk_full)
    with pytest.raises(OSError, match="No space left"):
        main(["search", "--resume", str(out)])
    monkeypatch.undo()
    assert _status(out)["status"] == "failed"
    assert _status(out)["error"] == "OSError: [Errno 28] No space left on device"
    assert main(search_argv(out)) == 2
    err = _one_line_error(capsys)
    assert "a failed `ciess search` run (OSError: [Errno 28] No space left on device)" in err
    assert f"`ciess search --resume {out}`" in err
    # --overwrite starts anew and keeps the old run next to it.
    assert main(search_argv(out, "--overwrite")) == 0
    (old,) = tmp_path.glob("run.old-*")
    assert (old / "checkpoint" / "state.json").read_bytes() == state
    assert _status(out)["status"] == "complete"
    assert (out / "budget_log.npz").is_file()
    assert "moved the previous contents of" in capsys.readouterr().err


def test_resume_before_the_first_checkpoint_says_rerun_without_resume(
    tmp_path, capsys, monkeypatch, search_argv
):
    out = tmp_path / "run"
    monkeypatch.setattr(SearchSession, "_run", _disk_full)
    with pytest.raises(OSError, match="No space left"):
        main(search_argv(out))
    monkeypatch.undo()
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "status.json"]
    # Before: "no search checkpoint in RUN/checkpoint ... when given checkpoint_dir".
    assert main(["search", "--resume", str(out)]) == 2
    err = _one_line_error(capsys)
    assert f"{out} holds no checkpoint to resume (a failed `ciess search` run (OSError" in err
    assert "Rerun it without --resume: `ciess search CIESS-MF-Synthetic-v0 --output" in err
    # ... and the rerun may use the folder: it holds no result, only the failed run's config.
    assert main(search_argv(out)) == 0
    assert f"reusing {out}: it holds only the config of a failed" in capsys.readouterr().err
    assert _status(out)["status"] == "complete"


def test_compare_refuses_other_files_and_a_failed_run(tmp_path, capsys, monkeypatch):
    out = tmp_path / "cmp"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    argv = ["compare", "CIESS-MF-Synthetic-v0", "--agents", "es", "--output", str(out)]
    assert main(argv) == 2
    err = _one_line_error(capsys)
    assert f"`--output` {out} already holds 1 file(s) (notes.txt); pass --overwrite" in err
    assert "--resume" not in err  # a comparison cannot be continued
    (out / "notes.txt").unlink()

    def half_written(args, folder, env_kwargs):
        (folder / "results.csv").write_text("agent,budget\nes,0.5\n")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cli, "_compare", half_written)
    with pytest.raises(OSError, match="No space left"):
        main(argv)
    # Before: config.json and results.csv, as a finished comparison has.
    assert _status(out) | {"updated": 0, "pid": 0, "host": ""} == {
        "status": "failed", "command": "compare", "updated": 0, "pid": 0, "host": "",
        "error": "OSError: [Errno 28] No space left on device",
    }  # fmt: skip
    assert main(argv) == 2
    assert "holds a failed `ciess compare` run (OSError: [Errno 28]" in _one_line_error(capsys)
    done = SimpleNamespace(to_markdown=lambda: "| agent |")
    monkeypatch.setattr(cli, "_compare", lambda args, folder, env_kwargs: done)
    assert main([*argv, "--overwrite"]) == 0
    (old,) = tmp_path.glob("cmp.old-*")
    assert (old / "results.csv").read_text() == "agent,budget\nes,0.5\n"
    assert _status(out)["status"] == "complete"


def test_a_second_retrain_adds_its_budgets_and_refuses_other_settings(
    tmp_path, capsys, search_argv
):
    out = tmp_path / "run"
    assert main(search_argv(out)) == 0
    retrain = ["retrain", str(out), "--top-l", "1", "--batches", "4"]
    assert main([*retrain, "--budgets", "0.3"]) == 0
    first = pd.read_csv(out / "retrain.csv")
    assert main([*retrain, "--budgets", "0.5"]) == 0
    # Before: the second retrain's table held budget 0.5 alone.
    both = pd.read_csv(out / "retrain.csv")
    assert both["budget"].tolist() == [0.3, 0.5]
    pd.testing.assert_frame_equal(both.iloc[:1], first)
    assert both[["top_l", "max_batches", "fill_budget"]].drop_duplicates().values.tolist() == [
        [1, 4, False]
    ]
    assert (out / "retrain.md").read_text().count("\n| 0.") == 2
    assert "(budgets 0.3 are from an earlier retrain)" in capsys.readouterr().out
    kept = (out / "retrain.csv").read_bytes()
    assert main(["retrain", str(out), "--top-l", "1", "--batches", "5", "--budgets", "0.5"]) == 2
    err = _one_line_error(capsys)
    assert (
        f"{out / 'retrain.csv'} already holds results for budget 0.3, 0.5 made with top_l=1, "
        "max_batches=4, fill_budget=False; this run has top_l=1, max_batches=5, "
        "fill_budget=False. Rerun with the same settings to add budgets to it, pass --overwrite"
    ) in err
    assert (out / "retrain.csv").read_bytes() == kept
    argv = ["retrain", str(out), "--top-l", "1", "--batches", "5", "--budgets", "0.5"]
    assert main([*argv, "--overwrite"]) == 0
    assert pd.read_csv(out / "retrain.csv")["budget"].tolist() == [0.5]
    (old,) = out.glob("retrain.old-*.csv")
    assert old.read_bytes() == kept


@pytest.mark.parametrize("command", [["retrain"], ["search", "--resume"]])
def test_a_truncated_config_is_a_named_error(tmp_path, capsys, command):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"command": "search", "env_id": "CIESS-MF')
    # Before: json.decoder.JSONDecodeError, a traceback and exit 1.
    assert main([*command, str(run)]) == 2
    err = _one_line_error(capsys)
    assert f"{run / 'config.json'} is damaged (JSONDecodeError: Unterminated string" in err
    assert "restore it from a backup, or rerun the command that wrote it" in err
    (run / "config.json").write_text('{"command": "search"}')
    assert main([*command, str(run)]) == 2
    assert f"{run / 'config.json'} lacks 'env_id', " in _one_line_error(capsys)


def test_a_run_another_live_process_writes_is_refused_even_with_overwrite(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    config = {"command": "search", "env_id": "CIESS-MF-Synthetic-v0", "seed": 0, "agent": "td3"}
    (run / "config.json").write_text(json.dumps(config))
    live = os.getppid()  # alive while this test runs, and not this process
    status = {"status": "running", "command": "search", "pid": live, "host": socket.gethostname()}
    (run / "status.json").write_text(json.dumps(status))
    argv = ["compare", "CIESS-MF-Synthetic-v0", "--output", str(run), "--overwrite"]
    assert main(argv) == 2
    assert (
        f"`--output` {run} holds a `ciess search` run that is still running (process {live}); "
        "wait for it or choose another --output."
    ) in _one_line_error(capsys)
    assert main(["search", "--resume", str(run)]) == 2
    assert f"{run} is being written by process {live}" in _one_line_error(capsys)


def test_a_folder_with_nothing_but_a_config_is_reused_and_a_finished_run_is_not(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")  # e.g. an older ciess-env's search killed at once
    assert prepare_run_dir(run, command="search") is None
    assert list(run.iterdir()) == []
    assert f"reusing {run}: it holds only the config of a run of an earlier" in (
        capsys.readouterr().err
    )
    (run / "config.json").write_text("{}")
    write_status(run, "complete", command="search")
    with pytest.raises(RunDirExistsError, match="already holds a complete `ciess search` run"):
        prepare_run_dir(run, command="search")
