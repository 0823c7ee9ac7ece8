"""``ciess sweep``: spec validation, cell keys, and resumable sweeps on a local 2-CPU Ray."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from agents.experiments.sweep import (
    SpecError,
    SweepResourceError,
    cell_status,
    load_spec,
    parse_spec,
    pid_alive,
    run_sweep,
)
from ciess_env.errors import InvalidArgumentError

TINY_SPEC = """
description = "tiny synthetic sweep for the tests"
env_id = "CIESS-MF-Synthetic-v0"
agents = ["es", "td3"]
seeds = 2
episodes = 1
top_l = 1
budgets = [0.5]
retrain_batches = 4

[env_kwargs]
preset = "tiny"
lam = 20.0
dataset_kwargs = {{ n_users = 40, n_items = 30, mean_interactions = 8 }}
cache_dir = "{cache}"

[agent_kwargs.td3]
batch_size = 64
policy_kwargs = {{ net_arch = [16] }}
gradient_steps = 20
learning_rate = 0.01
"""


def _spec(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_SPEC.format(cache=tmp_path / "cache") + extra)
    return path


def _sweep(*args: str) -> list[str]:
    """``ciess sweep ...`` as a subprocess command line."""
    return [sys.executable, "-m", "agents.experiments.cli", "sweep", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}


# ----------------------------------------------------------------------------- spec and keys
def test_cells_cover_the_grid_and_drop_what_does_not_apply(tmp_path) -> None:
    extra = '\n[grid]\n"agent_kwargs.td3.gamma" = [0.9, 0.99]\n'
    spec = load_spec(_spec(tmp_path, extra))
    cells = spec.cells()
    # es ignores td3's kwargs (and episodes): 2 es cells, 2 seeds × 2 gammas td3 cells.
    assert sorted(c.label for c in cells) == ["es", "es", "td3 gamma=0.9", "td3 gamma=0.9",
                                              "td3 gamma=0.99", "td3 gamma=0.99"]  # fmt: skip
    assert len({c.key for c in cells}) == 6
    es = next(c for c in cells if c.config["agent"] == "es")
    assert "episodes" not in es.config
    assert es.config["agent_kwargs"] == {}
    td3 = next(c for c in cells if c.label == "td3 gamma=0.99")
    assert td3.config["agent_kwargs"]["gamma"] == 0.99
    assert td3.config["agent_kwargs"]["batch_size"] == 64


def test_a_cell_key_is_a_hash_of_its_resolved_config(tmp_path) -> None:
    a = load_spec(_spec(tmp_path)).cells()
    b = load_spec(_spec(tmp_path)).cells()
    assert [c.key for c in a] == [c.key for c in b]
    changed = load_spec(_spec(tmp_path, "")).cells()[0]
    changed.config["budgets"] = [0.6]
    assert changed.key != a[0].key
    assert a[0].key.startswith("es-s0-")


@pytest.mark.parametrize(
    ("name", "n_cells"),
    [("reduced", 36), ("ablation", 6), ("fast-vs-scratch", 12), ("paper", 30), ("quick", 9)],
)
def test_the_committed_protocol_specs_parse_into_their_grids(name, n_cells) -> None:
    root = Path(__file__).resolve().parents[2] / "benchmarks" / "sweeps"
    spec = load_spec(root / f"{name}.toml")
    cells = spec.cells()
    assert len(cells) == n_cells
    assert {c.config["seed"] for c in cells} == {0, 1, 2}  # >= 3 seeds everywhere


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"env_id": "x", "agent": ["es"]}, "Unknown spec key 'agent'.*Did you mean 'agents'"),
        ({"env_id": "x", "agents": []}, "`agents` must be a non-empty list"),
        ({"agents": ["es"]}, "`env_id` is required"),
        ({"env_id": "x", "agents": ["es"], "seeds": 0}, "`seeds` must be >= 1"),
        ({"env_id": "x", "agents": ["es"], "grid": {"lam": [1]}}, "'lam' is not an axis"),
        ({"env_id": "x", "agents": ["es"], "grid": {"episodes": 3}}, "must be a non-empty list"),
        ({"env_id": "x", "agents": ["es"], "resources": {"cpus": 1}}, "Did you mean 'num_cpus'"),
    ],
)
def test_a_bad_spec_is_refused_with_the_key_and_the_fix(raw, message) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec(raw)


def test_cli_reports_a_missing_spec_without_a_traceback(tmp_path, capsys) -> None:
    from agents.experiments.cli import main

    assert main(["sweep", str(tmp_path / "nope.toml")]) == 2
    assert "sweep spec" in capsys.readouterr().err


def test_sequential_sweep_reports_mean_and_ci_per_budget(tmp_path) -> None:
    """Without Ray: 4 cells, combined table of 4 rows, report through stats.write_report."""
    result = run_sweep(load_spec(_spec(tmp_path)), tmp_path / "out", sequential=True,
                       progress=False)  # fmt: skip
    assert result.counts == {"done": 4, "skipped": 0, "failed": 0}
    assert len(result.table) == 4
    assert sorted(result.table["seed"]) == [0, 0, 1, 1]
    # Seeds change the search and the retraining: td3's two seeds differ.
    td3 = result.table[result.table["agent"] == "td3"]
    assert td3["recall@20"].nunique() == 2 or td3["sparsity"].nunique() == 2
    text = (tmp_path / "out" / "report.md").read_text()
    assert "### Budget 50 % pruned" in text
    assert "cells: complete" in text
    summary = pd.read_csv(tmp_path / "out" / "report" / "CIESS-MF-Synthetic-v0" / "summary.csv")
    assert list(summary["seeds"]) == [2, 2]
    again = run_sweep(load_spec(_spec(tmp_path)), tmp_path / "out", sequential=True,
                      progress=False)  # fmt: skip
    assert again.counts == {"done": 0, "skipped": 4, "failed": 0}


# ----------------------------------------------------------------------------- on Ray
WATCHER = """
import socket, sys, time
from agents.experiments.sweep import _process_token, _watch_driver
pid = int(sys.argv[1])
_watch_driver({"host": socket.gethostname(), "pid": pid, "token": _process_token(pid)}, 0.1)
print("watching", flush=True)
time.sleep(60)
"""


def test_a_cell_worker_ends_within_a_second_of_its_driver_even_an_unreaped_one() -> None:
    """The watchdog of Ray cells: a dead driver, zombie included (no init reaps it), ends them."""
    driver = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    watcher = subprocess.Popen([sys.executable, "-c", WATCHER, str(driver.pid)],
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert watcher.stdout.readline() == "watching\n"
        assert watcher.poll() is None
        t0 = time.monotonic()
        driver.kill()  # not waited for: a zombie, which os.kill(pid, 0) takes for alive
        os.kill(driver.pid, 0)
        assert watcher.wait(timeout=5) == 1
        assert time.monotonic() - t0 < 1.5
        os.kill(driver.pid, 0)  # still unreaped: the watcher saw through the zombie
    finally:
        watcher.kill()
        watcher.communicate()
        driver.wait()


@contextlib.contextmanager
def _init_that_does_not_reap() -> Iterator[None]:
    """Adopt this block's orphans and leave them zombies, as a container's init may (in CI).

    Ray's workers take their dead raylet for alive while it is an unreaped zombie and finish
    their cells; the sweep's own watchdog must end them anyway. Linux only (a no-op elsewhere).
    """
    if not sys.platform.startswith("linux"):
        yield
        return
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    set_child_subreaper = 36
    prctl(set_child_subreaper, 1, 0, 0, 0)
    try:
        yield
    finally:
        prctl(set_child_subreaper, 0, 0, 0, 0)
        with contextlib.suppress(ChildProcessError):  # reap the adopted zombies
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_a_killed_sweep_reruns_exactly_the_missing_cells(tmp_path) -> None:
    """Kill a 4-cell sweep after its first cell finishes; the rerun runs only the others."""
    spec, out = _spec(tmp_path), tmp_path / "out"
    args = _sweep(str(spec), "--output", str(out), "--num-cpus", "2", "--no-progress")
    log = tmp_path / "first_run.log"
    with log.open("wb") as fh, _init_that_does_not_reap():
        proc = subprocess.Popen(args, env=_env(), start_new_session=True, stdout=fh,
                                stderr=subprocess.STDOUT)  # fmt: skip
        cells = out / "cells"
        deadline = time.monotonic() + 300
        while not list(cells.glob("*/done.json")):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "no cell finished in 300 s"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray processes it started
        proc.wait()
        # Ray workers run in their own sessions, outside the killed group: each cell's worker
        # must notice that its driver is gone and end within seconds, not finish its cell.
        pids = {json.loads(p.read_text())["pid"] for p in cells.glob("*/started.json")}
        assert pids
        deadline = time.monotonic() + 5
        while (alive := {pid for pid in pids if pid_alive(pid)}) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive, f"cell workers {alive} outlived their killed driver by > 5 s"
    before = {p.parent.name: p.read_text() for p in cells.glob("*/done.json")}
    assert 1 <= len(before) < 4, before

    # The rerun reads the same cell store; in this process it spares a second Ray start.
    rerun_args = _sweep(str(spec), "--output", str(out), "--sequential", "--no-progress")
    rerun = subprocess.run(rerun_args, env=_env(), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"{4 - len(before)} cells run, {len(before)} already finished, 0 failed" in rerun.stdout
    after = {p.parent.name: json.loads(p.read_text()) for p in cells.glob("*/done.json")}
    assert len(after) == 4
    first_id = {json.loads(text)["sweep"] for text in before.values()}
    for key, marker in after.items():
        if key in before:  # untouched: the same bytes, written by the first run
            assert (cells / key / "done.json").read_text() == before[key]
        else:
            assert marker["sweep"] not in first_id
    assert len({m["sweep"] for k, m in after.items() if k not in before}) == 1
    table = pd.read_csv(out / "results.csv")
    assert len(table) == 4
    assert table["recall@20"].notna().all()
    assert sorted(zip(table["agent"], table["seed"], strict=True)) == [
        ("es", 0), ("es", 1), ("td3", 0), ("td3", 1)
    ]  # fmt: skip


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_a_failing_cell_is_reported_while_the_others_finish(tmp_path) -> None:
    """A bad env kwarg fails its cells (traceback in their folders); the rest complete."""
    spec = _spec(tmp_path, '\n[grid]\n"env_kwargs.preset" = ["tiny", "huge"]\n')
    spec.write_text(spec.read_text().replace('agents = ["es", "td3"]', 'agents = ["es"]')
                    .replace('preset = "tiny"\n', ""))  # fmt: skip
    out = tmp_path / "out"
    run = subprocess.run(_sweep(str(spec), "--output", str(out), "--num-cpus", "2"),
                         env=_env(), capture_output=True, text=True, timeout=600)  # fmt: skip
    assert run.returncode == 1, run.stdout + run.stderr
    assert "2 cells run, 0 already finished, 2 failed" in run.stdout
    assert "preset" in run.stdout  # the error's own words
    statuses: dict[str, list[str]] = {"tiny": [], "huge": []}
    for cell in load_spec(spec).cells():
        folder = out / "cells" / cell.key
        statuses[cell.config["env_kwargs"]["preset"]].append(cell_status(folder))
        if cell_status(folder) == "failed":
            error = (folder / "error.txt").read_text()
            assert error.startswith("Traceback")
            assert "'huge'" in error
    assert statuses == {"tiny": ["done", "done"], "huge": ["failed", "failed"]}
    assert "2 failed" in (out / "report.md").read_text()
    assert len(pd.read_csv(out / "results.csv")) == 2


def test_pep_cells_ignore_episodes_and_top_l_and_take_peps_kwargs(tmp_path) -> None:
    """PEP cells hash without ``episodes``/``top_l`` (no RL search) and keep their own kwargs."""
    raw = {"env_id": "CIESS-MF-Synthetic-v0", "agents": ["pep", "pep-prefix", "td3"], "top_l": 2,
           "agent_kwargs": {"pep": {"check_every": 10}},
           "grid": {"episodes": [1, 2]}}  # fmt: skip
    cells = parse_spec(raw).cells()
    pep = [c for c in cells if c.config["agent"] == "pep"]
    assert len(pep) == 1  # the episodes axis does not multiply PEP's cells
    assert "episodes" not in pep[0].config
    assert "top_l" not in pep[0].config
    assert pep[0].config["agent_kwargs"] == {"check_every": 10}
    assert len([c for c in cells if c.config["agent"] == "td3"]) == 2


# ----------------------------------------------------------------------------- whole-spec checks
#: A valid spec as a TOML table; each case below changes one thing.
VALID = {"env_id": "CIESS-MF-Synthetic-v0", "agents": ["es", "td3"], "seeds": 2, "episodes": 1,
         "top_l": 1, "budgets": [0.5], "env_kwargs": {"preset": "tiny"}}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"agents": ["es", "rw-td4"]}, r"`agents`: Unknown agent 'rw-td4'.*Did you mean 'rw-td3'"),
        ({"env_id": "CIESS-MF-Synthetic-v9"},
         r"Unknown env id 'CIESS-MF-Synthetic-v9'\. Did you mean 'CIESS-MF-Synthetic-v\d'"),
        ({"env_id": 3}, r"`env_id` must be an id .*got 3"),
        ({"env_kwargs": {"presett": "tiny"}},
         r"\[env_kwargs\].*Unknown env argument 'presett'.*Did you mean 'preset'"),
        ({"grid": {"env_kwargs.lamm": [0.2]}}, r"Unknown env argument 'lamm'.*Did you mean 'lam'"),
        ({"budgets": 1.5}, r"`budgets` must be a non-empty list of fractions.*got 1\.5"),
        ({"budgets": [0.8, 1.5]}, r"`budgets` .*strictly between 0 and 1.*got \[1\.5\]"),
        ({"budgets": [0, 0.5]}, r"`budgets` .*strictly between 0 and 1.*got \[0\]"),
        ({"budgets": ["0.5"]}, r"`budgets` .*got \['0\.5'\]"),
        ({"grid": {"budgets": [[0.5], [1.0]]}}, r"\[grid\] 'budgets' .*got \[1\.0\]"),
        ({"episodes": 0}, r"`episodes` must be a whole number >= 1.*got 0\."),
        ({"episodes": "one"}, r"`episodes` must be a whole number >= 1.*got 'one'"),
        ({"episodes": 1.5}, r"`episodes` must be a whole number >= 1.*got 1\.5"),
        ({"episodes": True}, r"`episodes` must be a whole number >= 1.*got True"),
        ({"grid": {"episodes": [1, 1.5]}}, r"\[grid\] 'episodes' must be a whole.*got 1\.5"),
        ({"top_l": 0}, r"`top_l` must be a whole number >= 1.*got 0"),
        ({"retrain_batches": 2.5}, r"`retrain_batches` must be a whole number.*got 2\.5"),
        ({"seeds": [-1, 0]}, r"`seeds` must be integers >= 0.*got \[-1, 0\]"),
        ({"agent_kwargs": {"td3": {"batch_sise": 8}}},
         r"\[agent_kwargs\.td3\]: .*'batch_sise'.*Did you mean 'batch_size'"),
        ({"agent_kwargs": {"rw-td4": {}}}, r"\[agent_kwargs\.rw-td4\]: Unknown agent 'rw-td4'"),
        ({"agent_kwargs": {"td3": 3}}, r"\[agent_kwargs\.td3\] must be a table.*got 3"),
        ({"resources": {"num_cpus": "two"}}, r"\[resources\] needs num_cpus > 0.*got 'two'"),
    ],
)  # fmt: skip
def test_the_whole_spec_is_checked_before_any_cell_runs(change, message) -> None:
    """Each mistake the cells met one by one (or as a traceback) is a SpecError at load."""
    assert len(parse_spec(VALID).cells()) == 4  # the unchanged spec passes
    raw = {k: v for k, v in VALID.items() if k not in change.get("grid", {})}  # an axis or a key
    with pytest.raises(SpecError, match=message) as err:
        parse_spec({**raw, **change}, Path("spec.toml"))
    assert str(err.value).startswith("spec.toml: ")
    assert "\n" not in str(err.value)


def test_cli_refuses_a_bad_spec_in_one_line_before_any_cell(tmp_path, capsys) -> None:
    from agents.experiments.cli import main

    spec = _spec(tmp_path).read_text().replace("episodes = 1\n", "episodes = 1.5\n")
    (tmp_path / "bad.toml").write_text(spec)
    out = tmp_path / "out"
    assert main(["sweep", str(tmp_path / "bad.toml"), "--output", str(out), "--sequential"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "bad.toml: `episodes` must be a whole number >= 1" in err
    assert "got 1.5" in err
    assert not out.exists()  # no cell ran, no folder was made


# ----------------------------------------------------------------------------- resources
@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_num_cpus_below_one_is_a_usage_error(tmp_path, capsys, value) -> None:
    from agents.experiments.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["sweep", str(_spec(tmp_path)), "--num-cpus", value])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"--num-cpus: expected a positive integer, got '{value}'" in err


def test_cells_bigger_than_the_local_ray_fail_at_once(tmp_path, capsys) -> None:
    """``num_cpus = 3`` per cell on a 2-CPU Ray waited forever ("running 0"); now exit 2."""
    from agents.experiments.cli import main

    spec, out = _spec(tmp_path, "\n[resources]\nnum_cpus = 3\n"), tmp_path / "out"
    t0 = time.monotonic()
    assert main(["sweep", str(spec), "--output", str(out), "--num-cpus", "2"]) == 2
    assert time.monotonic() - t0 < 5  # before Ray starts
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "[resources] num_cpus = 3 but the local Ray (--num-cpus 2) has 2 CPUs" in err
    assert not out.exists()
    with pytest.raises(SweepResourceError, match="num_cpus = 3"):
        run_sweep(load_spec(spec), out, num_cpus=2)
    with pytest.raises(InvalidArgumentError, match="got 0"):
        run_sweep(load_spec(spec), out, num_cpus=0)


@pytest.mark.xdist_group("ray")
def test_cells_bigger_than_the_ray_cluster_fail_once_it_has_started(tmp_path) -> None:
    """Without --num-cpus the size is Ray's own: checked after it starts, before any cell."""
    spec, out = _spec(tmp_path, "\n[resources]\nnum_cpus = 4096\n"), tmp_path / "out"
    run = subprocess.run(_sweep(str(spec), "--output", str(out), "--no-progress"), env=_env(),
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 2, run.stdout + run.stderr
    assert "ciess sweep: error: each cell asks for [resources] num_cpus = 4096 but the " \
        "local Ray has" in run.stderr  # fmt: skip
    assert "Traceback" not in run.stderr
    assert not list((out / "cells").glob("*"))


# ----------------------------------------------------------------------------- --report
def _finished_cells(tmp_path: Path) -> tuple[Path, Path, list]:
    """A sweep folder whose 4 cells finished, written by hand (no cell is run)."""
    spec = _spec(tmp_path).read_text().replace('["es", "td3"]', '["es", "mr"]')
    path = tmp_path / "hand.toml"
    path.write_text(spec)
    out, cells = tmp_path / "out", load_spec(path).cells()
    for i, cell in enumerate(cells):
        folder = out / "cells" / cell.key
        folder.mkdir(parents=True)
        row = {"env_id": cell.config["env_id"], "agent": cell.config["agent"],
               "seed": cell.config["seed"], "budget": 0.5, "search_s": 0.0, "sparsity": 0.5,
               "recall@5": 0.1, "recall@20": 0.2 + i / 100, "ndcg@5": 0.1,
               "ndcg@20": 0.3}  # fmt: skip
        pd.DataFrame([row]).to_csv(folder / "results.csv", index=False)
        (folder / "done.json").write_text(json.dumps({"sweep": "hand"}))
    return path, out, cells


DAMAGES = {
    "empty csv": ("results.csv", "", "results.csv: empty"),
    "garbled csv": ("results.csv", 'env_id,agent\n"unterminated\n', "not a readable CSV"),
    "no agent column": ("results.csv", "x,y\n1,2\n", "lacks column(s) ['env_id', 'agent'"),
    "header only": ("results.csv", "env_id,agent,seed,budget,sparsity,recall@20,ndcg@20\n",
                    "has no rows"),
    "missing csv": ("results.csv", None, "results.csv: missing"),
    "garbled done.json": ("done.json", '{"sweep": "ha', "done.json: not valid JSON"),
}  # fmt: skip


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_report_names_and_skips_a_damaged_finished_cell(tmp_path, capsys, caplog, damage) -> None:
    from agents.experiments.cli import main

    spec, out, cells = _finished_cells(tmp_path)
    name, text, says = DAMAGES[damage]
    bad = out / "cells" / cells[1].key / name
    bad.unlink() if text is None else bad.write_text(text)
    with caplog.at_level("WARNING", logger="agents.experiments.sweep"):
        assert main(["sweep", str(spec), "--output", str(out), "--report"]) == 0
    warning = caplog.text
    assert "1 finished cell(s)" in warning
    assert str(bad) in warning
    assert says in warning
    assert "Run the sweep again (without --report) to redo them" in warning
    table = pd.read_csv(out / "results.csv")
    assert sorted(table["cell"]) == sorted(c.key for c in cells if c is not cells[1])
    assert f"1 damaged (left out: {cells[1].key})" in (out / "report.md").read_text()
    assert "partial, 3 of 4 cells" in capsys.readouterr().out


def test_a_damaged_finished_cell_runs_again_on_the_next_sweep(tmp_path) -> None:
    """The damaged cell is the only one a rerun redoes (the others keep their bytes)."""
    spec, out, cells = _finished_cells(tmp_path)
    (out / "cells" / cells[0].key / "results.csv").write_text("")
    kept = (out / "cells" / cells[1].key / "results.csv").read_bytes()
    result = run_sweep(load_spec(spec), out, sequential=True, progress=False)
    assert result.counts == {"done": 1, "skipped": 3, "failed": 0}
    assert len(result.table) == 4
    assert (out / "cells" / cells[1].key / "results.csv").read_bytes() == kept
    redone = pd.read_csv(out / "cells" / cells[0].key / "results.csv")
    assert redone["recall@20"].between(0, 1).all()


def test_report_on_a_folder_that_never_ran_is_one_line(tmp_path, capsys) -> None:
    from agents.experiments.cli import main

    out = tmp_path / "never"
    assert main(["sweep", str(_spec(tmp_path)), "--output", str(out), "--report"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"ciess sweep: error: no sweep has run in {out}" in err
    assert f"--output {out}` first" in err
    assert not out.exists()
