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
    cell_status,
    load_spec,
    parse_spec,
    pid_alive,
    run_sweep,
)

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

    rerun = subprocess.run(args, env=_env(), capture_output=True, text=True, timeout=600)
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
    raw = {"env_id": "x", "agents": ["pep", "pep-prefix", "td3"], "top_l": 2,
           "agent_kwargs": {"pep": {"check_every": 10}},
           "grid": {"episodes": [1, 2]}}  # fmt: skip
    cells = parse_spec(raw).cells()
    pep = [c for c in cells if c.config["agent"] == "pep"]
    assert len(pep) == 1  # the episodes axis does not multiply PEP's cells
    assert "episodes" not in pep[0].config
    assert "top_l" not in pep[0].config
    assert pep[0].config["agent_kwargs"] == {"check_every": 10}
    assert len([c for c in cells if c.config["agent"] == "td3"]) == 2
