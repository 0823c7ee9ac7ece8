"""``ciess sweep SPEC``: a grid of searches, one Ray task per cell, resumable, one report.

A sweep spec is a small TOML file. Every cell is one :func:`~agents.experiments.compare` run of
one agent with one seed (a search for RL agents, then selective retraining at every budget)::

    env_id = "CIESS-LightGCN-ML100K-v1"
    agents = ["es", "mr", "rw-td3"]      # always a grid axis
    seeds = 3                            # 3 → seeds 0, 1, 2; or a list [0, 5, 7]
    episodes = 15                        # RL agents only
    top_l = 3
    budgets = [0.8, 0.9, 0.95]
    retrain_batches = 2000               # cap on each final retraining (optional)
    fill_budget = true                   # grow each kept mask to its budget first (optional)

    [env_kwargs]                         # passed to gym.make in every cell
    retrain = "fast"

    [agent_kwargs.rw-td3]                # constructor overrides of one agent
    noise_std = 6.0

    [grid]                               # more axes: lists of values
    env_id = ["CIESS-LightGCN-ML100K-v1", "CIESS-LightGCN-ML1M-v1"]
    "env_kwargs.lam" = [0.2, 0.4]
    "agent_kwargs.rw-td3.random_walk" = [true, false]

    [resources]                          # per cell, as Ray schedules it
    num_cpus = 1
    num_gpus = 0                         # 1 with env_kwargs.device = "cuda"

Safety and resumption: each cell owns ``OUTPUT/cells/<agent>-s<seed>-<hash>/``, the hash taken
over its resolved configuration (settings that do not affect a cell, such as ``episodes`` for a
heuristic, are left out, so equal cells are run once). ``done.json`` is written last (atomically);
a folder with it is never touched again and is skipped on rerun, unless its results are damaged
(then ``--report`` names and skips it, and the next run redoes it). A cell that raises writes
``error.txt`` (the traceback) and ``failed.json`` and the others go on; a failed or interrupted
cell is started afresh next time. Killing the sweep and rerunning it therefore runs exactly the
missing cells; a cell running on Ray ends within a second of its driver.

The whole spec is checked when it is loaded, before any cell runs (keys, values, agent names,
env ids and arguments), and so is its ``[resources]`` against the Ray it runs on: a cell that
asks for more CPUs or GPUs than Ray has is refused at once instead of waiting forever.

The report (``OUTPUT/report.md``, ``results.csv`` and per env id ``report/<env id>/``) is
:func:`agents.experiments.stats.write_report`, the same code as ``ciess compare --seeds``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as dt
import hashlib
import itertools
import json
import logging
import os
import platform
import shlex
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ciess_env.errors import CIESSError, InvalidArgumentError

if TYPE_CHECKING:  # pandas loads with the report: `ciess --help` builds this parser without it
    import pandas as pd

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "Cell",
    "CellDamagedError",
    "RayMissingError",
    "SpecError",
    "SweepBusyError",
    "SweepNotFoundError",
    "SweepResourceError",
    "SweepResult",
    "SweepSpec",
    "cell_status",
    "collect",
    "load_spec",
    "main",
    "parse_spec",
    "read_cell",
    "report",
    "resolve_config",
    "run_cell",
    "run_sweep",
]

logger = logging.getLogger(__name__)

_TOP_KEYS = {
    "description", "env_id", "agents", "seeds", "episodes", "top_l", "budgets",
    "retrain_batches", "fill_budget", "env_kwargs", "agent_kwargs", "grid", "resources",
}  # fmt: skip
_AXES = ("env_id", "episodes", "top_l", "budgets", "retrain_batches")
_RESOURCES = {"num_cpus", "num_gpus"}


class SpecError(CIESSError, ValueError):
    """A sweep spec is malformed; the message names the file, the key and the fix."""


class SweepBusyError(CIESSError, RuntimeError):
    """Another live sweep holds the output folder's lock."""


class SweepResourceError(CIESSError, ValueError):
    """A cell asks for more CPUs or GPUs than the Ray it runs on has: it could never start."""


class CellDamagedError(CIESSError, ValueError):
    """A finished cell's ``done.json`` or ``results.csv`` cannot be read; the message names it."""


class SweepNotFoundError(CIESSError, FileNotFoundError):
    """``--report`` on a folder where no sweep has run."""


class RayMissingError(CIESSError, ImportError):
    """``ciess sweep`` needs Ray (the ``[ray]`` extra) unless it runs ``--sequential``."""


# ----------------------------------------------------------------------------- the spec
@dataclass(frozen=True)
class Cell:
    """One unit of a sweep: one agent, one seed, one resolved configuration.

    Attributes:
        config: The resolved configuration (what :func:`run_cell` passes to ``compare``).
        label: The agent name plus the grid values that distinguish it (report rows).
    """

    config: dict[str, Any]
    label: str

    @property
    def key(self) -> str:
        """Folder name: ``<agent>-s<seed>-<12 hex digits of the config's SHA-256>``."""
        blob = json.dumps(self.config, sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(blob.encode()).hexdigest()[:12]
        return f"{self.config['agent']}-s{self.config['seed']}-{digest}"


@dataclass
class SweepSpec:
    """A parsed sweep spec (:func:`load_spec`).

    Attributes:
        path: The TOML file (None when built in code).
        base: The fixed settings (env id, episodes, budgets, ...).
        agents: Agent names, one grid axis.
        seeds: Seeds, one grid axis.
        grid: Further axes: setting (``"episodes"``, ``"env_kwargs.lam"``, ...) → values.
        num_cpus: CPUs Ray reserves per cell (also torch's threads in the cell).
        num_gpus: GPUs Ray reserves per cell.
        description: Free text shown in the report.
    """

    path: Path | None
    base: dict[str, Any]
    agents: list[str]
    seeds: list[int]
    grid: dict[str, list[Any]] = field(default_factory=dict)
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    description: str = ""

    def cells(self) -> list[Cell]:
        """Every distinct cell of the grid, in a stable order (agents, then seeds, then axes)."""
        axes = list(self.grid)
        out: dict[str, Cell] = {}
        for agent, seed, *values in itertools.product(
            self.agents, self.seeds, *(self.grid[a] for a in axes)
        ):
            config = copy.deepcopy(self.base)
            config["agent"], config["seed"] = agent, int(seed)
            label_parts = []
            for axis, value in zip(axes, values, strict=True):
                if _set(config, axis, value, agent):
                    if axis != "env_id":
                        label_parts.append(f"{axis.rsplit('.', 1)[-1]}={value}")
            config = resolve_config(config)
            cell = Cell(config, " ".join([agent, *label_parts]))
            out.setdefault(cell.key, cell)
        return list(out.values())


def _set(config: dict[str, Any], axis: str, value: Any, agent: str) -> bool:
    """Apply one grid value to a cell's config; False if it does not concern this agent."""
    head, _, rest = axis.partition(".")
    if head == "env_kwargs":
        config["env_kwargs"][rest] = value
        return True
    if head == "agent_kwargs":
        name, _, key = rest.partition(".")
        if name != agent:
            return False
        config["agent_kwargs"].setdefault(name, {})[key] = value
        return True
    if head in ("episodes",) and agent in _no_search():
        return False
    config[axis] = value
    return True


def resolve_config(config: dict[str, Any]) -> dict[str, Any]:
    """A cell's config without what does not affect it, so that equal cells hash equally.

    ``agent_kwargs`` keeps only the cell's own agent's (flattened); agents of a kind that does
    not search (heuristics, pruners such as ``"pep"``: ``AgentKind.searches``) drop
    ``episodes`` and ``top_l`` (compare retrains their one mask per budget).
    """
    agent = config["agent"]
    config["agent_kwargs"] = dict(config["agent_kwargs"].get(agent, {}))
    if agent in _no_search():  # episodes do not matter, compare retrains top-1
        config.pop("episodes", None)
        config.pop("top_l", None)
    config["budgets"] = [float(c) for c in config["budgets"]]
    return config


def _no_search() -> tuple[str, ...]:
    """Agents for which ``episodes`` and ``top_l`` mean nothing: kinds that do not search."""
    from agents.registry import AGENT_SPECS

    return tuple(name for name, spec in AGENT_SPECS.items() if not spec.searches)


def _fail(path: Path | None, msg: str) -> SpecError:
    return SpecError(f"{path or 'sweep spec'}: {msg}")


def _check_grid(raw: dict[str, Any], path: Path | None) -> dict[str, list[Any]]:
    grid = dict(raw.get("grid", {}))
    for axis, values in grid.items():
        head = axis.partition(".")[0]
        if axis not in _AXES and head not in ("env_kwargs", "agent_kwargs"):
            choices = [*_AXES, "env_kwargs.KEY", "agent_kwargs.AGENT.KEY"]
            raise _fail(path, f"[grid] key {axis!r} is not an axis; choose from {choices}.")
        if head == "agent_kwargs" and axis.count(".") != 2:
            raise _fail(path, f"[grid] key {axis!r} must read 'agent_kwargs.AGENT.KEY'.")
        if not isinstance(values, list) or not values:
            msg = f"[grid] {axis!r} must be a non-empty list of values, got {values!r}."
            raise _fail(path, msg)
        if axis in raw:
            raise _fail(path, f"{axis!r} is set both at the top level and in [grid]; keep one.")
    return grid


def _check_seeds(raw: dict[str, Any], path: Path | None) -> list[int]:
    seeds = raw.get("seeds", 1)
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise _fail(path, f"`seeds` must be >= 1 (a count) or a list of seeds; got {seeds}.")
        seeds = list(range(seeds))
    if not isinstance(seeds, list) or not seeds or not all(_is_int(s) for s in seeds):
        raise _fail(path, f"`seeds` must be a count or a list of integers; got {seeds!r}.")
    if any(s < 0 for s in seeds):
        msg = f"`seeds` must be integers >= 0 (numpy refuses negative seeds); got {seeds}."
        raise _fail(path, msg)
    return [int(s) for s in seeds]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_setting(name: str, value: Any, where: str) -> str | None:
    """What is wrong with one value of a run setting, or None when it is valid.

    ``name``: ``episodes``, ``top_l``, ``budgets`` or ``retrain_batches``; ``where``: how the
    message names it.
    """
    if name in ("episodes", "top_l"):
        if not _is_int(value) or value < 1:  # 1.5 is refused, not truncated to 1
            return f"{where} must be a whole number >= 1, e.g. {name} = 3; got {value!r}."
    elif name == "retrain_batches":
        if value is not None and (not _is_int(value) or value < 1):
            return f"{where} must be a whole number >= 1 (or left out: no cap); got {value!r}."
    elif name == "budgets":
        example = "e.g. budgets = [0.8, 0.9, 0.95]"
        if not isinstance(value, list) or not value:
            msg = f"{where} must be a non-empty list of fractions pruned, {example};"
            return f"{msg} got {value!r}."
        bad = [c for c in value if not _is_number(c) or not 0 < c < 1]
        if bad:
            return (f"{where} must hold fractions pruned strictly between 0 and 1, {example}; "
                    f"got {bad} in {value!r}.")  # fmt: skip
    return None


def _check_settings(raw: dict[str, Any], grid: dict[str, list[Any]], path: Path | None) -> None:
    """The run settings, at the top level and as [grid] values, before any cell runs."""
    for name in ("episodes", "top_l", "budgets", "retrain_batches"):
        if name in raw and (msg := _check_setting(name, raw[name], f"`{name}`")):
            raise _fail(path, msg)
        for value in grid.get(name, []):
            if msg := _check_setting(name, value, f"each value of [grid] {name!r}"):
                raise _fail(path, msg)


def _check_agents(raw: dict[str, Any], path: Path | None) -> None:
    """The names in ``agents`` and of the ``[agent_kwargs.NAME]`` tables are agents."""
    from agents.registry import agent_spec

    named = [("`agents`", a) for a in raw["agents"]]
    named += [(f"[agent_kwargs.{a}]", a) for a in raw.get("agent_kwargs", {})]
    for where, agent in named:
        try:
            agent_spec(agent)
        except CIESSError as err:
            raise _fail(path, f"{where}: {err}") from None


def _check_cells(spec: SweepSpec) -> None:
    """Each env id and env argument, each agent argument, as its cells would meet them.

    Uses the checks of ``ciess search`` (gym.make would fail too, but in every cell, late).
    """
    from agents.experiments.cli import _check_env
    from agents.registry import check_user_kwargs

    seen_env, seen_agent = set(), set()
    for cell in spec.cells():
        config = cell.config
        env = json.dumps([config["env_id"], config["env_kwargs"]], sort_keys=True, default=str)
        if env not in seen_env:
            seen_env.add(env)
            try:
                _check_env(config["env_id"], config["env_kwargs"])
            except CIESSError as err:
                where = f"`env_id` {config['env_id']!r} / [env_kwargs] {config['env_kwargs']}"
                raise _fail(spec.path, f"{where}: {err}") from None
        agent, kwargs = config["agent"], config["agent_kwargs"]
        key = json.dumps([agent, sorted(kwargs)])
        if key not in seen_agent:  # agents whose spec names no constructors pass unchecked
            seen_agent.add(key)
            try:
                check_user_kwargs(agent, kwargs)
            except CIESSError as err:
                raise _fail(spec.path, f"[agent_kwargs.{agent}]: {err}") from None


def _check_resources(raw: dict[str, Any], path: Path | None) -> tuple[float, float]:
    from ciess_env.errors import suggest

    resources = dict(raw.get("resources", {}))
    for key in resources:
        if key not in _RESOURCES:
            raise _fail(path, str(suggest(key, _RESOURCES, what="[resources] key")))
    num_cpus, num_gpus = resources.get("num_cpus", 1), resources.get("num_gpus", 0)
    if not (_is_number(num_cpus) and _is_number(num_gpus)) or num_cpus <= 0 or num_gpus < 0:
        msg = f"[resources] needs num_cpus > 0 and num_gpus >= 0; got {num_cpus!r}, {num_gpus!r}."
        raise _fail(path, msg)
    return float(num_cpus), float(num_gpus)


def parse_spec(raw: dict[str, Any], path: Path | None = None) -> SweepSpec:
    """Validate a spec's TOML table and build a :class:`SweepSpec`.

    The whole spec is checked here, before any cell runs: its keys and types, each value
    (``episodes``, ``budgets``, seeds, ...), the agent names and every env id, env argument
    and agent argument its cells would use.

    Raises:
        SpecError: An unknown or missing key, a wrong type or value, an empty axis, an unknown
            agent, env id or argument; the message names the key, the value and the fix.
    """
    from ciess_env.errors import suggest

    for key in raw:
        if key not in _TOP_KEYS:
            raise _fail(path, str(suggest(key, _TOP_KEYS, what="spec key")))
    grid = _check_grid(raw, path)
    if "env_id" not in raw and "env_id" not in grid:
        raise _fail(path, "`env_id` is required (at the top level or in [grid]).")
    agents = raw.get("agents")
    if not isinstance(agents, list) or not agents or not all(isinstance(a, str) for a in agents):
        msg = f'`agents` must be a non-empty list of names, e.g. ["es", "rw-td3"]; got {agents!r}.'
        raise _fail(path, msg)
    for env_id in [raw["env_id"]] if "env_id" in raw else grid["env_id"]:
        if not isinstance(env_id, str):
            msg = f'`env_id` must be an id such as "CIESS-LightGCN-ML1M-v1"; got {env_id!r}.'
            raise _fail(path, msg)
    for key in ("env_kwargs", "agent_kwargs"):
        if not isinstance(raw.get(key, {}), dict):
            raise _fail(path, f"[{key}] must be a table, got {raw[key]!r}.")
    _check_agents(raw, path)
    for name, kwargs in raw.get("agent_kwargs", {}).items():
        if not isinstance(kwargs, dict):
            msg = f"[agent_kwargs.{name}] must be a table of arguments, got {kwargs!r}."
            raise _fail(path, msg)
    _check_settings(raw, grid, path)
    fill = raw.get("fill_budget", False)
    if not isinstance(fill, bool):
        raise _fail(path, f"`fill_budget` must be true or false; got {fill!r}.")
    num_cpus, num_gpus = _check_resources(raw, path)
    base = {
        "env_id": raw.get("env_id"),
        "episodes": raw.get("episodes", 30),
        "top_l": raw.get("top_l", 3),
        "budgets": list(raw.get("budgets", [0.8, 0.9, 0.95])),
        "retrain_batches": raw.get("retrain_batches"),
        "env_kwargs": dict(raw.get("env_kwargs", {})),
        "agent_kwargs": {k: dict(v) for k, v in raw.get("agent_kwargs", {}).items()},
        # Only when set: a cell without it hashes as before (its folder name is unchanged).
        **({"fill_budget": True} if fill else {}),
    }
    spec = SweepSpec(
        path=path, base=base, agents=list(agents), seeds=_check_seeds(raw, path), grid=grid,
        num_cpus=num_cpus, num_gpus=num_gpus, description=str(raw.get("description", "")),
    )  # fmt: skip
    _check_cells(spec)
    return spec


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a TOML sweep spec (see the module docstring for its keys)."""
    path = Path(path)
    if not path.is_file():
        msg = f"sweep spec {str(path)!r} not found; pass a TOML file (see benchmarks/sweeps/)."
        raise SpecError(msg)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{path}: not valid TOML: {err}") from err
    return parse_spec(raw, path)


# ----------------------------------------------------------------------------- one cell
def _write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write atomically (temporary file + ``os.replace``), so a marker is whole or absent."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    os.replace(tmp, path)


def cell_status(folder: Path) -> str:
    """``"done"``, ``"failed"``, ``"started"`` (running or interrupted) or ``"todo"``."""
    for status in ("done", "failed", "started"):
        if (folder / f"{status}.json").is_file():
            return status
    return "todo"


#: Columns every finished cell's ``results.csv`` has (the report's summary reads them).
_CELL_COLUMNS = ("env_id", "agent", "seed", "budget", "sparsity", "recall@20", "ndcg@20")


def read_cell(folder: str | Path) -> pd.DataFrame:
    """A finished cell's results table, once its ``done.json`` and ``results.csv`` are whole.

    Raises:
        CellDamagedError: Either file is missing, empty, garbled or lacks the report's columns
            (a disk that filled up, a hand edit); the message names the file and what is wrong.
    """
    import pandas as pd

    folder = Path(folder)
    done, csv = folder / "done.json", folder / "results.csv"
    try:
        marker = json.loads(done.read_text())
    except FileNotFoundError:
        raise CellDamagedError(f"{done}: missing (the cell has not finished).") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise CellDamagedError(f"{done}: not valid JSON ({err}).") from None
    if not isinstance(marker, dict):
        raise CellDamagedError(f"{done}: not a JSON object (got {type(marker).__name__}).")
    try:
        frame = pd.read_csv(csv)
    except FileNotFoundError:
        raise CellDamagedError(f"{csv}: missing.") from None
    except pd.errors.EmptyDataError:
        raise CellDamagedError(f"{csv}: empty.") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as err:
        line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CellDamagedError(f"{csv}: not a readable CSV ({line}).") from None
    missing = [c for c in _CELL_COLUMNS if c not in frame.columns]
    if missing or frame.empty:
        what = f"lacks column(s) {missing}" if missing else "has no rows"
        raise CellDamagedError(f"{csv}: {what}; it is not a cell's results table.")
    return frame


def _finished(folder: Path) -> bool:
    """Done, with results the report can read (a damaged finished cell runs again)."""
    if cell_status(folder) != "done":
        return False
    try:
        read_cell(folder)
    except CellDamagedError:
        return False
    return True


def pid_alive(pid: int, token: str | None = None) -> bool:
    """Whether process ``pid`` runs (a zombie counts as dead) and, given, is still ``token``.

    ``token`` is :func:`_process_token` taken earlier: a different one means the pid was reused.
    """
    now = _process_token(pid)
    return now is not None and (token is None or now == token)


def _process_token(pid: int) -> str | None:
    """The process's start time (Linux), ``""`` where unknown but alive, None when gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:  # no /proc (macOS): existence only
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return ""
    fields = stat.rsplit(")", 1)[-1].split()  # after "(comm)", which may hold spaces
    return None if fields[0] in ("Z", "X") else fields[19]


def _driver() -> dict[str, Any]:
    """Who runs the sweep, for :func:`_watch_driver` in the cells it starts on Ray."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "token": _process_token(pid)}


_WATCHED: dict[str, Any] = {}


def _watch_driver(driver: dict[str, Any] | None, every: float = 0.5) -> None:
    """End this (Ray worker) process as soon as the sweep's driver is gone.

    Killing the driver must not leave its cells running for minutes in Ray workers (they run in
    their own sessions, outside the driver's process group): the cell stays "started", and the
    rerun starts it afresh. The watch outlives the cell, so an idle worker that finished one
    ends with the driver too. Only for a driver on this host (a remote Ray cleans up its own
    jobs); the latest driver to hand this worker a cell is the one watched.
    """
    if not driver or driver.get("host") != socket.gethostname() or driver["pid"] == os.getpid():
        return
    started = bool(_WATCHED)
    _WATCHED.update(driver)
    if started:
        return

    def watch() -> None:
        while True:
            time.sleep(every)
            if not pid_alive(_WATCHED["pid"], _WATCHED.get("token")):
                os._exit(1)

    threading.Thread(target=watch, name="ciess-sweep-driver-watch", daemon=True).start()


def run_cell(
    config: dict[str, Any], folder: str | Path, sweep_id: str, threads: int = 1,
    *, progress_bar: bool = False, driver: dict[str, Any] | None = None,
) -> dict:  # fmt: skip
    """Run one cell into ``folder``; never raises (a failure is recorded in the folder).

    Args:
        config: The resolved configuration (:func:`resolve_config`).
        folder: The cell's own folder.
        sweep_id: Written into the markers: which run of the sweep did the work.
        threads: torch threads (the CPUs reserved for the cell).
        progress_bar: Show the search's progress bar.
        driver: The sweep's driver (host, pid) when the cell runs in a Ray worker: the worker
            exits at once if the driver dies, leaving the cell to the rerun.

    Returns:
        ``{"status": "done" | "skipped" | "failed", "key": ..., "error": last line or None}``.
    """
    _watch_driver(driver)
    return _run_cell(config, Path(folder), sweep_id, threads, progress_bar)


def _run_cell(
    config: dict[str, Any], folder: Path, sweep_id: str, threads: int, progress_bar: bool
) -> dict:
    if _finished(folder):
        return {"status": "skipped", "key": folder.name, "error": None}
    if folder.exists():  # an earlier attempt failed, was killed or its results are damaged
        for item in sorted(folder.rglob("*"), reverse=True):
            item.unlink() if not item.is_dir() else item.rmdir()
    folder.mkdir(parents=True, exist_ok=True)
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    # A cell's seconds on a shared machine mean something only beside how busy it was.
    load = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    _write_json(folder / "config.json", config)
    _write_json(folder / "started.json", {"sweep": sweep_id, "pid": os.getpid(),
                                          "host": socket.gethostname(), "at": started})  # fmt: skip
    t0 = time.perf_counter()
    try:
        table = _compare_cell(config, folder, threads, progress_bar)
        table.to_csv(folder / "results.csv", index=False)
    except Exception as err:  # a cell's failure must not stop the sweep
        (folder / "error.txt").write_text(traceback.format_exc())
        line = f"{type(err).__name__}: {err}".splitlines()[0]
        _write_json(folder / "failed.json", {"sweep": sweep_id, "error": line,
                                             "seconds": time.perf_counter() - t0})  # fmt: skip
        return {"status": "failed", "key": folder.name, "error": line}
    _write_json(folder / "done.json", {
        "sweep": sweep_id, "started": started, "seconds": round(time.perf_counter() - t0, 3),
        "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "load_average": load,
    })  # fmt: skip
    return {"status": "done", "key": folder.name, "error": None}


def _compare_cell(
    config: dict[str, Any], folder: Path, threads: int, progress_bar: bool
) -> pd.DataFrame:
    import torch

    from agents.experiments.comparison import compare
    from agents.registry import agent_spec

    torch.set_num_threads(max(1, int(threads)))
    agent = config["agent"]
    # An agent that shares another's search reads its settings ("pep-prefix" reads "pep"'s).
    kwargs_key = agent_spec(agent).kwargs_key
    result = compare(
        config["env_id"], [agent], budgets=config["budgets"],
        episodes=config.get("episodes", 1), top_l=config.get("top_l", 1), seed=config["seed"],
        env_kwargs=config["env_kwargs"], agent_kwargs={kwargs_key: config["agent_kwargs"]},
        retrain_batches=config.get("retrain_batches"), output_dir=folder / "compare",
        progress_bar=progress_bar, fill_budget=config.get("fill_budget", False),
    )  # fmt: skip
    table = result.table.copy()
    table.insert(0, "env_id", config["env_id"])
    return table


# ----------------------------------------------------------------------------- the sweep
@dataclass
class SweepResult:
    """What :func:`run_sweep` did.

    Attributes:
        output: The sweep folder.
        counts: ``done`` (this run), ``skipped`` (finished before), ``failed``.
        failures: Cell key → the error's last line.
        table: The combined table of every finished cell (one row per cell × budget).
        seconds: Wall time of this run.
    """

    output: Path
    counts: dict[str, int]
    failures: dict[str, str]
    table: pd.DataFrame
    seconds: float


@contextlib.contextmanager
def _lock(output: Path) -> Iterator[None]:
    """One sweep per output folder at a time (a stale lock of a dead process is taken over)."""
    output.mkdir(parents=True, exist_ok=True)
    lock = output / "sweep.lock"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                pid = int(lock.read_text().strip() or 0)
                os.kill(pid, 0)
            except (ValueError, ProcessLookupError, FileNotFoundError):
                lock.unlink(missing_ok=True)  # its owner is gone
                continue
            except PermissionError:
                pass
            msg = (f"another sweep (pid {pid}) is writing to {output}; wait for it or remove "
                   f"{lock} if that process is not a sweep.")  # fmt: skip
            raise SweepBusyError(msg) from None
        with os.fdopen(fd, "w") as fh:
            fh.write(str(os.getpid()))
        break
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _machine() -> str:
    text = f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs"
    if hasattr(os, "getloadavg"):  # timings on a shared machine are only comparable with it
        text += f"; 1-min load average when written {os.getloadavg()[0]:.2f}"
    return text


def _import_ray():
    try:
        import ray
    except ImportError as err:
        msg = ("`ciess sweep` runs its cells on Ray: pip install 'ciess-env[ray]' "
               "(or pass --sequential to run them one after another in this process).")  # fmt: skip
        raise RayMissingError(msg) from err
    return ray


def run_sweep(
    spec: SweepSpec,
    output: str | Path,
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    sequential: bool = False,
    progress: bool = True,
    make_report: bool = True,
) -> SweepResult:
    """Run every unfinished cell of ``spec``; write the combined report.

    Args:
        spec: The sweep.
        output: Sweep folder (cells, results, report).
        address: Ray cluster to join (``"auto"``, ``"ray://host:10001"``, ...); default: start
            a local Ray in this process.
        num_cpus: CPUs of the local Ray (default: all); ignored with ``address``.
        sequential: Run the cells one after another in this process, without Ray.
        progress: Show the live progress line (done / running / failed, elapsed, ETA).
        make_report: Write the report when the cells are finished.

    Raises:
        SweepResourceError: A cell asks for more CPUs or GPUs than the Ray has (checked
            before any cell is queued: Ray would wait for them forever).
    """
    if not sequential and num_cpus is not None:
        if not _is_int(num_cpus) or num_cpus < 1:
            msg = f"`num_cpus` (--num-cpus) must be a whole number >= 1; got {num_cpus!r}."
            raise InvalidArgumentError(msg)
        if address is None:  # the local Ray's size is known before it starts
            _check_fits(spec, {"CPU": num_cpus}, f"the local Ray (--num-cpus {num_cpus})")
    output = Path(output)
    cells = spec.cells()
    sweep_id = uuid.uuid4().hex[:12]
    t0 = time.perf_counter()
    with _lock(output):
        (output / "cells").mkdir(parents=True, exist_ok=True)
        _write_json(output / "spec.json", {"path": str(spec.path), "cells": len(cells),
                                           "keys": [c.key for c in cells]})  # fmt: skip
        todo = [c for c in cells if not _finished(output / "cells" / c.key)]
        counts = {"done": 0, "skipped": len(cells) - len(todo), "failed": 0}
        failures: dict[str, str] = {}
        bar = _Progress(len(cells), counts["skipped"], enabled=progress)
        threads = max(1, int(spec.num_cpus))
        if sequential or not todo:
            for cell in todo:
                bar.running = 1
                bar.show()
                out = run_cell(cell.config, output / "cells" / cell.key, sweep_id, threads)
                _tally(out, counts, failures, bar)
            bar.running = 0
        else:
            _run_on_ray(spec, todo, output, sweep_id, threads, address, num_cpus,
                        counts, failures, bar)  # fmt: skip
        bar.close()
        if make_report:
            report(spec, output, cells=cells)
        table = collect(cells, output, warn=not make_report)
    return SweepResult(output, counts, failures, table, time.perf_counter() - t0)


def _tally(out: dict, counts: dict[str, int], failures: dict[str, str], bar: _Progress) -> None:
    status = "done" if out["status"] == "skipped" else out["status"]
    counts[status] += 1
    if out["error"]:
        failures[out["key"]] = out["error"]
        logger.warning("cell %s failed: %s", out["key"], out["error"])
    bar.update(status)


def _run_on_ray(spec, todo, output, sweep_id, threads, address, num_cpus, counts, failures,
                bar) -> None:  # fmt: skip
    ray = _import_ray()
    own = not ray.is_initialized()
    if own:
        if address is None:
            # A local Ray in this process: no dashboard, no usage report (no network). The
            # cells are the job itself, not background work: Ray nices workers to 15 by default
            # (ray-project/ray#24928), which on a shared machine starves them behind other jobs.
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            os.environ.setdefault("RAY_worker_niceness", "0")
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address)
    try:
        where = "the local Ray" if address is None else f"the Ray cluster at {address}"
        cluster = ray.cluster_resources()  # no "GPU" key without GPUs
        _check_fits(spec, {"CPU": cluster.get("CPU", 0.0), "GPU": cluster.get("GPU", 0.0)}, where)
        task = ray.remote(run_cell).options(
            num_cpus=spec.num_cpus, num_gpus=spec.num_gpus, max_retries=0
        )
        driver = _driver()
        pending = {task.remote(c.config, str((output / "cells" / c.key).resolve()), sweep_id,
                               threads, driver=driver): c for c in todo}  # fmt: skip
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in ready:
                cell = pending.pop(ref)
                try:
                    out = ray.get(ref)
                except Exception as err:  # the worker died: record it, go on
                    out = _record_crash(output / "cells" / cell.key, sweep_id, err)
                _tally(out, counts, failures, bar)
            bar.running = sum(
                cell_status(output / "cells" / c.key) == "started" for c in pending.values()
            )
            bar.show()
    finally:
        if own:
            ray.shutdown()


def _check_fits(spec: SweepSpec, available: dict[str, float], where: str) -> None:
    """Refuse cells bigger than the Ray: it would queue them and wait forever ("running 0")."""
    asked = {"CPU": ("num_cpus", spec.num_cpus), "GPU": ("num_gpus", spec.num_gpus)}
    for resource, have in available.items():
        if resource in asked and asked[resource][1] > have:
            key, need = asked[resource]
            msg = (f"each cell asks for [resources] {key} = {need:g} but {where} has {have:g} "
                   f"{resource}s, so no cell could ever start; lower {key} in "
                   f"{spec.path or 'the spec'}, or give Ray more (--num-cpus, or --address of "
                   "a bigger cluster).")  # fmt: skip
            raise SweepResourceError(msg)


def _record_crash(folder: Path, sweep_id: str, err: BaseException) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "error.txt").write_text("".join(traceback.format_exception(err)))
    line = f"{type(err).__name__}: {err}".splitlines()[0]
    _write_json(folder / "failed.json", {"sweep": sweep_id, "error": line})
    return {"status": "failed", "key": folder.name, "error": line}


class _Progress:
    """One live line: cells done / running / failed of the total, elapsed and ETA (tqdm)."""

    def __init__(self, total: int, skipped: int, *, enabled: bool) -> None:
        from tqdm import tqdm

        self.counts = {"done": 0, "failed": 0}
        self.skipped, self.running, self._last = skipped, 0, ""
        self.bar = tqdm(total=total, initial=skipped, desc="sweep", unit="cell",
                        disable=not enabled, dynamic_ncols=True)  # fmt: skip
        self.show()

    def update(self, status: str) -> None:
        self.counts[status] += 1
        self.bar.update(1)
        self.show()

    def show(self) -> None:
        text = (f"done {self.counts['done']} (+{self.skipped} before), running {self.running}, "
                f"failed {self.counts['failed']}")  # fmt: skip
        if text != self._last:  # redraw on change only (a log file gets one line per change)
            self._last = text
            self.bar.set_postfix_str(text)

    def close(self) -> None:
        self.bar.close()


# ----------------------------------------------------------------------------- the report
def collect(cells: Sequence[Cell], output: str | Path, *, warn: bool = True) -> pd.DataFrame:
    """The combined table of every finished cell: one row per cell × budget, with its label.

    A finished cell whose files are damaged (:func:`read_cell`) is left out and, with ``warn``,
    named in a logged warning; the next run of the sweep runs it again.
    """
    table, damaged = _collect(cells, Path(output))
    if warn:
        _warn_damaged(damaged, Path(output))
    return table


def _collect(cells: Sequence[Cell], output: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """The table of the readable finished cells; cell key → what is wrong with the others."""
    import pandas as pd

    frames, damaged = [], {}
    for cell in cells:
        folder = output / "cells" / cell.key
        if cell_status(folder) == "done":
            try:
                frame = read_cell(folder)
            except CellDamagedError as err:
                damaged[cell.key] = str(err)
                continue
            frame.insert(1, "label", cell.label)
            frame["cell"] = cell.key
            frames.append(frame)
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), damaged


def _warn_damaged(damaged: dict[str, str], output: Path) -> None:
    if damaged:
        logger.warning(
            "%d finished cell(s) of %s are damaged and left out of the report: %s Run the "
            "sweep again (without --report) to redo them.", len(damaged), output,
            " ".join(damaged.values()),
        )  # fmt: skip


def report(spec: SweepSpec, output: str | Path, *, cells: Sequence[Cell] | None = None) -> Path:
    """Write ``results.csv`` and ``report.md`` (+ per env id summaries and plots); return it.

    Every table is :func:`agents.experiments.stats.write_report`: per budget, each agent's mean
    and 95 % CI over seeds and its difference to ES. Labelled partial when cells are missing;
    finished cells with damaged files are left out, named in the report and a warning.

    Raises:
        SweepNotFoundError: ``output`` holds no sweep (no ``cells/`` folder).
    """
    from agents.experiments.stats import write_report

    output = Path(output)
    if not (output / "cells").is_dir():
        command = shlex.join(["ciess", "sweep", str(spec.path or "SPEC"), "--output", str(output)])
        msg = (f"no sweep has run in {output} (it has no cells/ folder), so there is nothing to "
               f"report; run `{command}` first, or pass the --output of the sweep.")  # fmt: skip
        raise SweepNotFoundError(msg)
    cells = spec.cells() if cells is None else cells
    table, damaged = _collect(cells, output)
    _warn_damaged(damaged, output)
    statuses = [cell_status(output / "cells" / c.key) for c in cells]
    n_done, n_failed = statuses.count("done") - len(damaged), statuses.count("failed")
    state = ("complete" if n_done == len(cells)
             else f"**partial, {n_done} of {len(cells)} cells**")  # fmt: skip
    command = "ciess sweep " + shlex.join([str(spec.path or "SPEC"), "--output", str(output)])
    lines = [
        f"# Sweep {spec.path.stem if spec.path else ''}".rstrip(),
        "",
        *([spec.description, ""] if spec.description else []),
        f"- Command: `{command}`",
        f"- Written: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; cells: {state}"
        + (f", {n_failed} failed (see cells/*/error.txt)" if n_failed else "")
        + (f", {len(damaged)} damaged (left out: {', '.join(damaged)})" if damaged else ""),
        f"- Machine: {_machine()}",
        f"- Seeds: {spec.seeds}; resources per cell: {spec.num_cpus:g} CPU, {spec.num_gpus:g} GPU",
        "",
    ]
    if not table.empty:
        table.to_csv(output / "results.csv", index=False)
        for env_id, rows in table.groupby("env_id", sort=False):
            folder = output / "report" / str(env_id)
            summary_rows = rows.assign(agent=rows["label"])
            write_report(summary_rows, folder, title="")
            lines += [f"## {env_id}", "", (folder / "summary.md").read_text(), ""]
            lines += [f"Plot: `report/{env_id}/quality_vs_memory.png`", ""]
    else:
        lines.append("No cell has finished yet.")
    path = output / "report.md"
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path


# ----------------------------------------------------------------------------- command line
def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``ciess sweep`` (shared with ``python -m agents.experiments.sweep``)."""
    p.add_argument("spec", help="a TOML sweep spec (see benchmarks/sweeps/)")
    p.add_argument("--output", default=None, help="sweep folder (default: runs/sweeps/<spec>)")
    p.add_argument(
        "--address", default=None,
        help="join this Ray cluster (e.g. auto); default: a local Ray in this process",
    )  # fmt: skip
    from agents.experiments.cli import _positive_int

    p.add_argument(
        "--num-cpus", type=_positive_int, default=None, metavar="N",
        help="CPUs of the local Ray (default: all of this machine's); each cell takes the spec's "
        "[resources] num_cpus of them",
    )  # fmt: skip
    p.add_argument(
        "--sequential", action="store_true",
        help="no Ray: run the cells one after another in this process",
    )  # fmt: skip
    p.add_argument(
        "--report", action="store_true",
        help="only (re)write the report from the finished cells; run nothing",
    )  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no live progress line")


def cmd_sweep(args: argparse.Namespace) -> int:
    """Run (or report) a sweep; exit status 1 if some cell failed."""
    spec = load_spec(args.spec)  # a SpecError is one line and exit status 2 (cli.main)
    output = Path(args.output or Path("runs") / "sweeps" / Path(args.spec).stem)
    if args.report:
        print(report(spec, output).read_text())
        return 0
    result = run_sweep(
        spec, output, address=args.address, num_cpus=args.num_cpus,
        sequential=args.sequential, progress=not args.no_progress,
    )  # fmt: skip
    c = result.counts
    print(f"sweep: {c['done']} cells run, {c['skipped']} already finished, {c['failed']} failed "
          f"in {result.seconds:.1f} s; report in {output / 'report.md'}")  # fmt: skip
    for key, error in result.failures.items():
        print(f"  failed {key}: {error} (traceback: {output / 'cells' / key / 'error.txt'})")
    return 1 if result.failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m agents.experiments.sweep SPEC`` (the same as ``ciess sweep SPEC``)."""
    from agents.experiments.cli import main as ciess

    return ciess(["sweep", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
