"""One way to run a study: a sweep spec (the grid) and a report, run by the sweep.

A study is a TOML sweep spec in ``benchmarks/sweeps/<name>.toml`` (agents × seeds × settings;
see :mod:`agents.experiments.sweep`), optionally variant specs (an agent with settings of its
own, ``sweeps/<name>-<variant>.toml``, whose rows carry a label such as ``td3:episodes=5``),
and a report function that turns its finished cells into ``benchmarks/results/<name>.md``.
Its cells are the sweep's own cell store, committed in ``benchmarks/results/<name>/cells/``:
``run`` runs only the cells still missing (in this process or on Ray), and ``report`` rewrites
the markdown from the cells alone, so every committed results file of a study regenerates from
its committed cells (``tests/benchmarks/test_study.py``). Cells are reported in the order they
finished (the spec's order breaks ties): the bootstrap intervals of
:mod:`agents.experiments.stats` see the seeds in that order.

Studies that began as a JSONL of units (``jsonl_cache.py``) move in with ``import``, which
writes each unit's rows, seconds and load average into the cells the spec defines.

Run (from the repository root; ``CIESS_DATA_DIR`` names the data)::

    python benchmarks/study.py run budget_agents_ml1m_v1 --sequential   # or --address auto
    python benchmarks/study.py report budget_agents_ml1m_v1
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from jsonl_cache import read_units

from agents.experiments.sweep import (
    Cell,
    SweepSpec,
    cell_status,
    load_spec,
    read_cell,
    run_sweep,
)

HERE = Path(__file__).resolve().parent
SWEEPS = HERE / "sweeps"
RESULTS = HERE / "results"


@dataclass(frozen=True)
class FinishedCell:
    """One finished cell: its configuration, row label, ``done.json``, results and folder."""

    cell: Cell
    label: str
    done: dict[str, Any]
    table: pd.DataFrame
    folder: Path


@dataclass(frozen=True)
class Study:
    """A study: the names of its specs and results, and the report of its finished cells.

    Attributes:
        name: ``sweeps/<name>.toml``, ``results/<name>/cells/``, ``results/<name>.md``.
        render: (the study, its specs, its finished cells) → the markdown.
        variants: Further specs of the same study, ``(spec name, row label)``: an agent run
            with other settings than the main spec's (its own episodes or env arguments) is a
            spec of its own whose rows carry the label (``"td3:episodes=5"``); its cells share
            the study's folder.
    """

    name: str
    render: Callable[[Study, list[SweepSpec], list[FinishedCell]], str]
    variants: tuple[tuple[str, str], ...] = ()

    @property
    def specs(self) -> list[tuple[SweepSpec, str | None]]:
        """Each spec (validated) with its row label (None: the agent's own name)."""
        parts = [(self.name, None), *self.variants]
        return [(load_spec(SWEEPS / f"{stem}.toml"), label) for stem, label in parts]

    @property
    def folder(self) -> Path:
        """The sweep's output folder, which holds the cells."""
        return RESULTS / self.name

    @property
    def markdown(self) -> Path:
        """The results file."""
        return RESULTS / f"{self.name}.md"

    @property
    def command(self) -> str:
        """The command that runs (or resumes) the study, as the results file records it."""
        return f"python benchmarks/study.py run {self.name}"


def finished_cells(
    study: Study, specs: list[tuple[SweepSpec, str | None]], folder: Path | None = None
) -> list[FinishedCell]:
    """The specs' finished cells, in the order they finished (the specs' order on ties).

    ``folder``: the study's sweep folder when it is not :attr:`Study.folder` (a copy).
    """
    out = []
    for spec, label in specs:
        for cell in spec.cells():
            folder_of = (folder or study.folder) / "cells" / cell.key
            if cell_status(folder_of) == "done":
                done = json.loads((folder_of / "done.json").read_text())
                name = label or cell.config["agent"]
                out.append(FinishedCell(cell, name, done, read_cell(folder_of), folder_of))
    return sorted(out, key=lambda f: f.done.get("finished") or "")  # stable: spec order


def render(study: Study) -> str:
    """The study's markdown, from its specs and its cells alone.

    Raises:
        InvalidArgumentError: No cell of the study has finished yet (nothing to report).
    """
    specs = study.specs
    cells = finished_cells(study, specs)
    if not cells:
        from ciess_env.errors import InvalidArgumentError

        msg = (f"{study.name} has no finished cell in {study.folder / 'cells'}; run "
               f"`python benchmarks/study.py run {study.name}` first.")  # fmt: skip
        raise InvalidArgumentError(msg)
    return study.render(study, [s for s, _ in specs], cells)


def run(study: Study, *, sequential: bool, address: str | None, num_cpus: int | None) -> Path:
    """Run the study's missing cells with the sweep, spec by spec; rewrite its results file."""
    for spec, _ in study.specs:
        run_sweep(spec, study.folder, address=address, num_cpus=num_cpus, sequential=sequential,
                  make_report=False)  # fmt: skip
    study.markdown.write_text(render(study))
    return study.markdown


# ------------------------------------------------------------------ studies
def units(study: Study, folder: Path | None = None) -> list[dict[str, Any]]:
    """The study's finished cells as ``budget_agents.py`` units (what ``beats_es.py`` joins)."""
    return _units(finished_cells(study, study.specs, folder))


def _units(cells: list[FinishedCell]) -> list[dict[str, Any]]:
    units = []
    for f in cells:
        config, budgets = f.cell.config, f.cell.config["budgets"]
        units.append({
            "seed": config["seed"], "agent": f.label,
            "budget": budgets[0] if len(budgets) == 1 else None,
            "seconds": f.done.get("seconds"),
            "load_average": f.done.get("load_average") or math.nan,  # None: not recorded
            "note": f.done.get("note"),
            "rows": f.table.drop(columns=["env_id"]).assign(agent=f.label).to_dict("records"),
            "curve": _curve(f),
        })  # fmt: skip
    return units


def _curve(f: FinishedCell) -> list[dict[str, Any]] | None:
    """The search's per-step curve, as ``budget_agents.py`` keeps it (None: a heuristic).

    ``compare`` writes ``curve_<agent>.csv`` into the cell's ``compare/`` folder for every
    agent that steps the env; cells imported from a JSONL have no such folder.
    """
    from budget_agents import curve_records

    path = f.folder / "compare" / f"curve_{f.cell.config['agent']}.csv"
    return curve_records(pd.read_csv(path)) if path.exists() else None


def _budget_agents(study: Study, specs: list[SweepSpec], cells: list[FinishedCell]) -> str:
    """``budget_agents.py``'s report (summary vs ES, per seed), one unit per finished cell.

    The main spec gives the header's settings; each variant names its own in its label.
    """
    import budget_agents

    spec = specs[0]
    args = argparse.Namespace(
        env_id=spec.base["env_id"], seeds=spec.seeds, episodes=spec.base["episodes"],
        env_kw=",".join(f"{k}={v}" for k, v in spec.base["env_kwargs"].items()),
        top_l=spec.base["top_l"],
    )  # fmt: skip
    n_cells = sum(len(c.config["budgets"]) for s in specs for c in s.cells())
    return budget_agents.summary(_units(cells), args, n_cells, study.command)


def _pep_esapn(study: Study, specs: list[SweepSpec], cells: list[FinishedCell]) -> str:
    """``pep_esapn.py``'s report; a ``pep-prefix`` cell joins the unit of ``pep``, same seed.

    ``pep_esapn.py`` ran PEP and PEP-as-prefix as one unit (one PEP search serves both); the
    study runs them as two cells and reports them as that one unit again.
    """
    import pep_esapn

    dataset = study.name.removeprefix("pep_esapn_")
    units: list[dict[str, Any]] = []
    for f in cells:
        table = f.table.drop(columns=["env_id"]).rename(columns={"agent": "method"})
        rows = [{k: v for k, v in r.items() if not (k == "unfilled_from" and v != v)}
                for r in table.assign(method=f.label).to_dict("records")]  # fmt: skip
        seconds = f.done.get("seconds") or 0.0
        seed = f.cell.config["seed"]
        if f.label == "pep-prefix":
            pep = next(u for u in units if u["method"] == "pep" and u["seed"] == seed)
            pep["rows"] += rows
            pep["seconds"] += seconds
            continue
        load = f.done.get("load_average")
        units.append({
            "dataset": dataset, "method": f.label, "seed": seed, "rows": rows, "seconds": seconds,
            "load": "n/a" if load is None else f"{load:.2f}",
            "command": f.done.get("command") or study.command,
        })  # fmt: skip
    planned = sum(c.config["agent"] != "pep-prefix" for s in specs for c in s.cells())
    return pep_esapn.report_text(units, {dataset: planned})


STUDIES: dict[str, Study] = {
    s.name: s
    for s in (
        Study("budget_agents_ml100k", _budget_agents),
        Study(
            "budget_agents_ml1m_v1",
            _budget_agents,
            variants=(("budget_agents_ml1m_v1-sac", "sac-structured"),),
        ),
        Study(
            "pep_esapn_ml-100k",
            _pep_esapn,
            variants=(
                ("pep_esapn_ml-100k-rw-td3-fill", "rw-td3+fill"),
                ("pep_esapn_ml-100k-esapn-fill", "esapn+fill"),
            ),
        ),
        Study(
            "pep_esapn_ml-1m", _pep_esapn, variants=(("pep_esapn_ml-1m-esapn-fill", "esapn+fill"),)
        ),
        Study(
            "budget_agents_ml100k_v1",
            _budget_agents,
            variants=(
                ("budget_agents_ml100k_v1-td3", "td3:episodes=5"),
                ("budget_agents_ml100k_v1-lagrange", "rw-td3-lagrange:episodes=2"),
                ("budget_agents_ml100k_v1-team", "rw-td3:env.reward=team,episodes=5"),
            ),
        ),
    )
}


# ------------------------------------------------------------------ moving a JSONL study in
def import_units(study: Study, units: Sequence[dict[str, Any]], source: str) -> int:
    """Write JSONL units (``budget_agents.py``'s or ``pep_esapn.py``'s) into the study's cells.

    A unit of all budgets fills every single-budget cell of its (agent, seed); its seconds then
    belong to the unit, so each such cell records them in its note instead (so does
    PEP-as-prefix, whose rows come from PEP's unit). A cell already finished is left alone.
    Returns the number of cells written.
    """
    cells = [(cell, label or cell.config["agent"]) for spec, label in study.specs
             for cell in spec.cells()]  # fmt: skip
    written = 0
    for cell, name in cells:
        config, folder = cell.config, study.folder / "cells" / cell.key
        budgets = config["budgets"]
        unit = next((u for u in units if u["seed"] == config["seed"] and _name(u) in _owners(name)
                     and (u.get("budget") is None or [u["budget"]] == budgets)), None)  # fmt: skip
        if unit is None or cell_status(folder) == "done":
            continue
        rows = [{**r, "agent": _name(r)} for r in unit["rows"] if _name(r) == name
                and any(abs(r["budget"] - c) < 1e-9 for c in budgets)]  # fmt: skip
        rows = [{k: v for k, v in r.items() if k != "method"} for r in rows]
        load = float(unit.get("load_average", unit.get("load", "nan")))
        of_unit = {r["budget"] for r in unit["rows"]}
        shared = unit.get("budget") is None and len(budgets) < len(of_unit)
        note = unit.get("note")
        if shared or _name(unit) != name:  # the unit's seconds cover more than this cell
            seconds = "?" if unit["seconds"] is None else f"{unit['seconds']:.0f} s"
            what = "all budgets" if shared else f"{_name(unit)} and {name}"
            note = (f"one run of {what} ({seconds}, load {load:.1f} at its start) gave this "
                    "cell" + (f"; {note}" if note else ""))  # fmt: skip
        folder.mkdir(parents=True, exist_ok=True)
        _write_json(folder / "config.json", config)  # the files a sweep's cell holds
        table = pd.DataFrame(rows)
        table.insert(0, "env_id", config["env_id"])
        table.to_csv(folder / "results.csv", index=False)
        _write_json(folder / "done.json", {
            "sweep": f"imported from {source}", "started": None,
            "seconds": None if shared or _name(unit) != name else unit["seconds"],
            "finished": unit["finished"], "load_average": load,
            **({"note": note} if note else {}),
            **({"command": unit["command"]} if "command" in unit else {}),
        })  # fmt: skip
        written += 1
    return written


def _name(unit_or_row: dict[str, Any]) -> str:
    """The agent of a unit or row: ``agent`` (budget_agents.py) or ``method`` (pep_esapn.py)."""
    return unit_or_row.get("agent", unit_or_row.get("method"))


def _owners(name: str) -> tuple[str, ...]:
    """The units that hold a cell's rows: its own, and PEP's for PEP-as-prefix (one search)."""
    return (name, "pep") if name == "pep-prefix" else (name,)


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.write_text(json.dumps(payload, indent=2, default=str))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name, what in (("run", "run the missing cells, then report"),
                       ("report", "rewrite the results file from the cells"),
                       ("import", "move a JSONL study's units into its cells")):  # fmt: skip
        q = sub.add_parser(name, help=what)
        q.add_argument("study", choices=sorted(STUDIES))
        if name == "run":
            q.add_argument("--sequential", action="store_true", help="no Ray")
            q.add_argument("--address", default=None, help="a Ray cluster (default: local)")
            q.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray")
        if name == "import":
            q.add_argument("jsonl", type=Path)
    args = p.parse_args(argv)
    study = STUDIES[args.study]
    if args.command == "run":
        path = run(study, sequential=args.sequential, address=args.address,
                   num_cpus=args.num_cpus)  # fmt: skip
    elif args.command == "import":
        n = import_units(study, read_units(args.jsonl), os.path.relpath(args.jsonl, HERE.parent))
        print(f"{n} cells written to {study.folder / 'cells'}")
        path = study.markdown
        path.write_text(render(study))
    else:
        path = study.markdown
        path.write_text(render(study))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
