"""Run folders that never lose a result: refuse to reuse one silently, mark how each run ended.

A command that writes a run folder (``ciess search``, ``compare``, ``demo``) first calls
:func:`prepare_run_dir`: a missing or empty folder is used as is; any other is refused with a
message that says what it holds and how to go on (``--resume`` where a search can continue,
``--overwrite``, or another ``--output``). ``--overwrite`` never deletes: the old folder is
moved aside to ``NAME.old-<UTC time>`` (:func:`move_aside`).

While a command runs, ``status.json`` in its folder says ``running``; it ends as ``complete``,
``stopped`` (a search sitting that can be resumed) or ``failed`` (with the error), so a folder
left by a crash never looks like a finished run (:func:`run_status`). A run killed outright
(SIGKILL, power loss) stays ``running``, with the process id that wrote it.

Every file here is written atomically (:func:`write_json_atomic`: temp file, fsync,
``os.replace``), and every reader (:func:`read_config`, :func:`read_results`) turns a damaged
file into a :class:`RunFileDamagedError` that names it and says what to do.

``ciess retrain`` writes into the search's folder; :func:`merge_results` adds its budgets to
an earlier retrain's table made with the same settings instead of replacing it.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ciess_env.errors import CIESSError, InvalidArgumentError

if TYPE_CHECKING:  # pandas loads with the first results table, not with `ciess --help`
    import pandas as pd

__all__ = [
    "COMPLETE",
    "FAILED",
    "RUNNING",
    "STATUS_FILE",
    "STOPPED",
    "RunDirError",
    "RunDirExistsError",
    "RunFileDamagedError",
    "RunStatus",
    "check_not_running",
    "describe",
    "merge_results",
    "move_aside",
    "next_free",
    "prepare_run_dir",
    "read_config",
    "read_results",
    "read_status",
    "run_status",
    "write_json_atomic",
    "write_status",
    "write_text_atomic",
]

STATUS_FILE = "status.json"
RUNNING, STOPPED, FAILED, COMPLETE = "running", "stopped", "failed", "complete"


class RunDirError(CIESSError, ValueError):
    """A run folder cannot be used as asked; the message says how to go on."""


class RunDirExistsError(RunDirError, FileExistsError):
    """The output folder already holds something that is not this command's run to continue."""


class RunFileDamagedError(RunDirError):
    """A file of a run folder is truncated or unreadable; the message names it and what to do."""


#: What a run writes before any result: a folder holding nothing else has nothing to lose.
_BOOKKEEPING = frozenset({"config.json", STATUS_FILE})


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a crash leaves the old file or the new one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (:func:`write_text_atomic`)."""
    write_text_atomic(path, json.dumps(obj, indent=2, default=str))


def _stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def read_status(folder: Path) -> dict[str, Any] | None:
    """The folder's ``status.json``; None if it has none (not a run, or an older ciess-env).

    A damaged status file reads as ``{"status": "unknown"}``: it only informs messages.
    """
    path = Path(folder) / STATUS_FILE
    if not path.is_file():
        return None
    try:
        status = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"status": "unknown"}
    return status if isinstance(status, dict) else {"status": "unknown"}


def write_status(folder: Path, status: str, *, command: str, error: str | None = None) -> None:
    """Record how the run in ``folder`` stands (with this process id, host and time)."""
    record = {
        "status": status,
        "command": command,
        "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "pid": os.getpid(),
        "host": socket.gethostname(),
    }
    if error is not None:
        record["error"] = error
    write_json_atomic(Path(folder) / STATUS_FILE, record)


def _alive(status: dict[str, Any]) -> bool:
    """Whether the process a ``running`` status names still runs (on this host)."""
    if status.get("status") != RUNNING or status.get("host") != socket.gethostname():
        return False
    pid = status.get("pid")
    if not isinstance(pid, int) or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def describe(folder: Path) -> str:
    """What ``folder`` holds, in words, for messages ("a stopped `ciess search` run", ...)."""
    folder = Path(folder)
    status = read_status(folder)
    if status is not None:
        command = status.get("command", "?")
        state = status.get("status", "unknown")
        text = f"a {state} `ciess {command}` run"
        if state == RUNNING:
            alive = _alive(status)
            text += f" (process {status.get('pid')} {'still runs' if alive else 'was killed'})"
        if status.get("error"):
            text += f" ({status['error']})"
        return text
    if (folder / "config.json").is_file():
        return "a run of an earlier ciess-env (config.json, no status.json)"
    names = sorted(p.name for p in folder.iterdir())
    shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    return f"{len(names)} file(s) ({shown})"


def move_aside(path: Path) -> Path:
    """Rename ``path`` (file or folder) to a free ``NAME.old-<UTC time>`` next to it."""
    path = Path(path)
    stem, suffix = (path.stem, path.suffix) if path.is_file() else (path.name, "")
    base = f"{stem}.old-{_stamp()}"
    target = path.with_name(base + suffix)
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{base}-{n}{suffix}")
    path.rename(target)
    return target


def next_free(folder: Path) -> Path:
    """``folder`` if it is missing or empty, else the first free ``folder-2``, ``folder-3``..."""
    folder = Path(folder)
    candidate, n = folder, 1
    while candidate.exists() and (not candidate.is_dir() or any(candidate.iterdir())):
        n += 1
        candidate = folder.with_name(f"{folder.name}-{n}")
    return candidate


def prepare_run_dir(
    folder: str | Path, *, command: str, overwrite: bool = False, resumable: bool = False
) -> Path | None:
    """Make ``folder`` ready for a new run of ``ciess command``, never losing what it holds.

    Args:
        folder: The ``--output`` folder.
        command: The ``ciess`` command, for the message.
        overwrite: Move an existing non-empty folder aside (:func:`move_aside`) instead of
            refusing it.
        resumable: The command can continue its own runs (``ciess search --resume``), so the
            message suggests it when the folder holds such a run.

    Returns:
        Where the old folder went, or None if there was nothing to move.

    Raises:
        RunDirExistsError: if the folder is not empty and ``overwrite`` is false, or a file.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        msg = f"`--output` {folder} is a file, not a folder; choose another --output."
        raise RunDirExistsError(msg)
    if not folder.exists() or not any(folder.iterdir()):
        folder.mkdir(parents=True, exist_ok=True)
        return None
    status = read_status(folder) or {}
    alive = _alive(status)
    if not alive and status.get("status") != COMPLETE and _only_bookkeeping(folder):
        print(
            f"ciess {command}: reusing {folder}: it holds only the config of {describe(folder)}",
            file=sys.stderr,
        )
        for path in folder.iterdir():
            _remove(path)
        return None
    if alive:
        msg = (
            f"`--output` {folder} holds a `ciess {status.get('command')}` run that is still "
            f"running (process {status.get('pid')}); wait for it or choose another --output."
        )
        raise RunDirExistsError(msg)
    if not overwrite:
        hint = ""
        if (
            resumable
            and status.get("command", command) == command
            and status.get("status") != COMPLETE
            and any((folder / name).is_dir() for name in ("checkpoint", "checkpoint.prev"))
        ):
            hint = f"continue it with `ciess {command} --resume {folder}`, "
        msg = (
            f"`--output` {folder} already holds {describe(folder)}; {hint}pass --overwrite to "
            f"move it aside to {folder.name}.old-<time> and start anew, or choose another "
            "--output."
        )
        raise RunDirExistsError(msg)
    moved = move_aside(folder)
    folder.mkdir(parents=True)
    print(f"ciess {command}: moved the previous contents of {folder} to {moved}", file=sys.stderr)
    return moved


def _only_bookkeeping(folder: Path) -> bool:
    """Whether ``folder`` holds no result, only a run's config and status.

    An unsealed ``checkpoint.tmp`` (a search killed while writing its first checkpoint) is
    no result either.
    """
    for path in folder.iterdir():
        if path.name in _BOOKKEEPING or path.name.startswith(f".{STATUS_FILE}.tmp"):
            continue
        if path.name == "checkpoint.tmp" and not (path / "complete.json").exists():
            continue
        return False
    return True


def _remove(path: Path) -> None:
    if path.is_dir():
        import shutil

        shutil.rmtree(path)
    else:
        path.unlink()


def check_not_running(folder: Path) -> None:
    """Refuse to continue a run that another live process is writing.

    Raises:
        RunDirError: if ``status.json`` names a live process on this host.
    """
    status = read_status(folder) or {}
    if _alive(status):
        msg = (
            f"{folder} is being written by process {status.get('pid')} "
            f"(`ciess {status.get('command')}`, {STATUS_FILE}); wait for it to end."
        )
        raise RunDirError(msg)


@dataclass
class RunStatus:
    """What :func:`run_status` records when its block ends without an error."""

    outcome: str = COMPLETE


@contextmanager
def run_status(folder: Path, command: str) -> Iterator[RunStatus]:
    """Mark the run ``running`` for the block, then ``outcome`` (default complete) or failed.

    Any exception (Ctrl-C included) marks the run ``failed`` with the error's first line and
    propagates.
    """
    write_status(folder, RUNNING, command=command)
    state = RunStatus()
    try:
        yield state
    except BaseException as err:
        text = " ".join(str(err).splitlines())[:500]
        error = f"{type(err).__name__}: {text}" if text else type(err).__name__
        write_status(folder, FAILED, command=command, error=error)
        raise
    write_status(folder, state.outcome, command=command)


def _damaged(path: Path, err: BaseException, todo: str) -> RunFileDamagedError:
    one_line = " ".join(str(err).splitlines())
    return RunFileDamagedError(f"{path} is damaged ({type(err).__name__}: {one_line}); {todo}")


def read_config(run: str | Path, *, needs: Sequence[str] = ("command",)) -> dict[str, Any]:
    """The ``config.json`` of a run folder (what the run was asked to do).

    Raises:
        RunDirError: if the folder has no ``config.json`` (a ``FileNotFoundError`` too).
        RunFileDamagedError: if it is truncated, not a JSON object, or lacks a key of ``needs``.
    """
    run = Path(run)
    path = run / "config.json"
    if not path.is_file():
        msg = f"{run} is not a run folder: {path} is missing."
        raise _NoRunError(msg)
    todo = "restore it from a backup, or rerun the command that wrote it with another --output"
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise _damaged(path, err, todo) from err
    if not isinstance(config, dict):
        wrong = TypeError(f"a JSON object expected, got {type(config).__name__}")
        raise _damaged(path, wrong, todo)
    missing = [key for key in needs if key not in config]
    if missing:
        msg = f"{path} lacks {', '.join(map(repr, missing))}: it is damaged or not a run's; {todo}"
        raise RunFileDamagedError(msg)
    return config


class _NoRunError(RunDirError, FileNotFoundError):
    """The folder holds no run (no ``config.json``)."""


def read_results(path: str | Path) -> pd.DataFrame:
    """A results table (``results.csv``, ``retrain.csv``) written by a ``ciess`` command.

    Raises:
        RunFileDamagedError: if the file is empty, truncated or not a CSV table.
    """
    import pandas as pd

    path = Path(path)
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        todo = "restore it from a backup, or rerun the command that wrote it (with --overwrite)"
        raise _damaged(path, err, todo) from err
    return table


def _setting(value: Any) -> Any:
    """A setting as written to and read back from CSV (NaN is None, 8.0 is 8)."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.integer, np.floating)) and float(value).is_integer():
        return int(value)
    return value


def merge_results(
    path: str | Path, table: pd.DataFrame, *, key: str, settings: dict[str, Any]
) -> tuple[pd.DataFrame, list[Any]]:
    """``table`` with the rows of an earlier table at ``path`` for keys it does not hold.

    Every row carries ``settings`` as columns, so rows made with other settings never mix:
    those are refused instead.

    Returns:
        The merged table (sorted by ``key``) and the keys kept from the earlier table.

    Raises:
        RunDirExistsError: if the earlier table was made with other settings (or by an older
            ciess-env, which did not record them).
        RunFileDamagedError: if the earlier table cannot be read.
    """
    import pandas as pd

    path = Path(path)
    clash = sorted(set(settings) & set(table.columns))
    if clash:
        msg = f"settings {clash} would replace result columns of the same names; rename them."
        raise InvalidArgumentError(msg)
    table = table.assign(**{name: [value] * len(table) for name, value in settings.items()})
    if not path.exists():
        return table, []
    old = read_results(path)
    theirs = {
        name: sorted({_setting(v) for v in old[name]}, key=repr) if name in old else ["unknown"]
        for name in settings
    }
    mine = {name: [_setting(value)] for name, value in settings.items()}
    if key not in old or theirs != mine:
        made = ", ".join(f"{name}={'/'.join(map(str, v))}" for name, v in theirs.items())
        asked = ", ".join(f"{name}={v[0]}" for name, v in mine.items())
        held = ", ".join(map(str, old[key])) if key in old else "?"
        msg = (
            f"{path} already holds results for {key} {held} made with {made}; this run has "
            f"{asked}. Rerun with the same settings to add {key}s to it, pass --overwrite to move "
            f"it aside to {path.stem}.old-<time>{path.suffix}, or copy it elsewhere first."
        )
        raise RunDirExistsError(msg)
    kept = old[~old[key].isin(table[key])]
    merged = pd.concat([kept, table], ignore_index=True) if len(kept) else table
    return merged.sort_values(key, kind="stable").reset_index(drop=True), kept[key].tolist()
