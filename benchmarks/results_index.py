"""Every results file in ``benchmarks/results/``: how it regenerates, or why it cannot.

One entry per ``results/*.md``, of one of three kinds:

- ``study``: a study of :mod:`study` (a sweep spec and its committed cells); ``command``
  rewrites the file from the cells (``tests/benchmarks/test_study.py`` checks it byte for byte).
- ``units``: a script's report mode rewrites the file from the committed JSONL / JSON files in
  ``cache`` (nothing is rerun); ``tests/benchmarks/test_results_index.py`` regenerates the
  ``cheap`` ones into a temporary folder and compares every line but the ``volatile`` text.
- ``measurement``: a timing or a one-off run that kept no cache; ``command`` measures anew
  and ``why`` says why no cache exists.

``python benchmarks/results_index.py`` prints the table that ``docs/reproducing.md`` shows;
``python benchmarks/results_index.py check`` regenerates every study and units file into a
temporary folder (the data sets from ``../shared/data`` where a report needs them) and lists
the lines that differ from the committed file.
"""

from __future__ import annotations

import importlib
import os
import re
import shlex
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

#: When a report was written (``2026-12-07 16:15 UTC``): the one line that changes on a rerun.
WRITTEN = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC"
#: A ``Command: `...``` whose arguments name the output folder (the copy, in a test).
COMMAND = r"Command: `[^`]*`"
KINDS = ("study", "units", "measurement")


@dataclass(frozen=True)
class Entry:
    """How one results file was made and how it regenerates.

    Attributes:
        kind: ``study``, ``units`` or ``measurement`` (see the module's docstring).
        command: Run from the repository root: rewrites the file (study, units) or measures
            anew (measurement).
        why: What the command reads, or why the file has no cache.
        cache: The committed inputs of a ``units`` report, relative to ``results/``.
        redirect: Arguments that point ``command`` at a copy of ``results/`` (``{results}``:
            its folder), appended to the command (argparse keeps the last value given).
        volatile: Regular expressions of text a rerun legitimately changes (the time written).
        cheap: The report reads only ``cache`` (no data set) and takes well under 2 s, so
            the tests regenerate it.
    """

    kind: str
    command: str
    why: str
    cache: tuple[str, ...] = ()
    redirect: tuple[str, ...] = ("--results-dir", "{results}")
    volatile: tuple[str, ...] = (WRITTEN,)
    cheap: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            msg = f"kind must be one of {KINDS}; got {self.kind!r}."
            raise ValueError(msg)


def _study(name: str) -> Entry:
    return Entry("study", f"python benchmarks/study.py report {name}",
                 f"cells in `{name}/cells/` (sweep specs `sweeps/{name}*.toml`)")  # fmt: skip


def _measured(command: str, why: str) -> Entry:
    return Entry("measurement", command, why)


_FIDELITY = (
    "python benchmarks/fidelity_ground_truth.py --data-dir ../shared/data --report --dataset"
)
_NO_UNITS = "writes the table directly, keeps no units"
_TIMING = "a timing: the seconds are the result, and a rerun times anew"
_REPRO = (
    "ran 2026-11-28, before `reproduce.py` kept sweep cells; its cells go to the git-ignored "
    "`runs/reproduce/`, so a rerun searches anew"
)

# fmt: off
INDEX: dict[str, Entry] = {
    **{f"{n}.md": _study(n) for n in ("budget_agents_ml100k", "budget_agents_ml100k_v1",
                                      "budget_agents_ml1m_v1", "pep_esapn_ml-100k",
                                      "pep_esapn_ml-1m")},
    "active_width.md": Entry(
        "units", "python benchmarks/bench_active_width.py report",
        "`active_width.jsonl`; the `- Machine:` bullet names the machine that renders it "
        "(the units record the load, not the machine)",
        cache=("active_width.jsonl",), redirect=("--results", "{results}"),
        volatile=(r"- Machine: .*",), cheap=True),
    "export_footprint_ml-1m.md": Entry(
        "units",
        "python benchmarks/export_footprint.py --data-dir ../shared/data --repeats 7 --report",
        "`export_footprint_ml-1m.jsonl`, `fidelity_masks_ml-1m.json` (the report's command and "
        "repeats come from its arguments, so they are given as the units were run)",
        cache=("export_footprint_ml-1m.jsonl", "fidelity_masks_ml-1m.json"),
        volatile=(WRITTEN, COMMAND, r"\d+ CPU cores \([^)]*\)"), cheap=True),
    "profile_step.md": Entry(
        "units", "python benchmarks/profile_step.py --report", "`profile_step.jsonl`",
        cache=("profile_step.jsonl",), cheap=True),
    "table1.md": Entry(
        "units", "python benchmarks/table1.py report",
        "`table1_units.jsonl` and the earlier studies it joins (`SOURCES` of `table1.py`)",
        cache=("table1_units.jsonl", "budget_agents_ml1m_v1.jsonl", "pep_esapn_ml-1m.jsonl"),
        redirect=("--units", "{results}/table1_units.jsonl", "--results", "{results}",
                  "--output", "{results}/table1.md"),
        volatile=(WRITTEN, COMMAND), cheap=True),
    "table1_costs.md": Entry(
        "units", "python benchmarks/table1.py costs",
        "`table1_costs.jsonl` (measured by `table1.py costs --measure`), the ES / PEP units "
        "it checks them against and `table1_units.jsonl`, whose wall times it lists",
        cache=("table1_costs.jsonl", "table1_units.jsonl", "budget_agents_ml1m_v1.jsonl",
               "pep_esapn_ml-1m.jsonl"),
        redirect=("--units", "{results}/table1_costs.jsonl",
                  "--study-units", "{results}/table1_units.jsonl",
                  "--output", "{results}/table1_costs.md"),
        volatile=(WRITTEN, COMMAND), cheap=True),
    "search_diagnosis_ml-100k_v1.md": Entry(
        "units", "python benchmarks/search_diagnosis.py report --dataset ml-100k --version v1",
        "`search_diagnosis_ml-100k_v1.jsonl`",
        cache=("search_diagnosis_ml-100k_v1.jsonl",), cheap=True),
    "search_diagnosis_ml-1m_sprint150.md": Entry(
        "units",
        "python benchmarks/search_diagnosis.py report --dataset ml-1m --version sprint150",
        "`search_diagnosis_ml-1m_sprint150.jsonl` (partial: its run appends units to it and "
        "leaves the report to this command, so the two differ while it runs)",
        cache=("search_diagnosis_ml-1m_sprint150.jsonl",)),
    **{f"structured_rl_synthetic{tail}.md": Entry(
        "units",
        "python benchmarks/structured_rl.py --env-kw '' --seeds 0 1 2 --env-id "
        "CIESS-LightGCN-Synthetic-v1 --budgets 0.9 --episodes 8 --agents es sac-structured "
        f"--out benchmarks/results/structured_rl_synthetic{tail} --report",
        f"`structured_rl_synthetic{tail}.jsonl` (`budget_agents.py --report`, then the curves)",
        cache=(f"structured_rl_synthetic{tail}.jsonl",),
        redirect=("--out", f"{{results}}/structured_rl_synthetic{tail}"), volatile=(COMMAND,),
        cheap=True)
       for tail in ("", "_warm")},  # _warm: sac-structured's defaults since issue 33's 2nd session
    **{f"structured_rl_ml100k_v1{tail}.md": Entry(
        "units",
        "python benchmarks/structured_rl.py --env-id CIESS-LightGCN-ML100K-v1 --env-kw '' "
        f"--seeds {seeds} --agents es sac-structured --episodes 1 "
        f"--out benchmarks/results/structured_rl_ml100k_v1{tail} --report",
        f"`structured_rl_ml100k_v1{tail}.jsonl`",
        # budget_agents_ml100k_v1: structured TPE's cells, the "Against structured-tpe" table.
        cache=(f"structured_rl_ml100k_v1{tail}.jsonl", "budget_agents_ml100k_v1"),
        redirect=("--out", f"{{results}}/structured_rl_ml100k_v1{tail}"), volatile=(COMMAND,))
       # _warm: seeds 3 and 4 were added (with structured TPE's) after 3 seeds missed TPE at 90 %
       for tail, seeds in (("", "0 1 2"), ("_warm", "0 1 2 3 4"))},
    "structured_rl_ml1m_v1.md": Entry(
        "units",
        "python benchmarks/structured_rl.py --study budget_agents_ml1m_v1 "
        "--out benchmarks/results/structured_rl_ml1m_v1",
        "the per-step curves and test rows in `budget_agents_ml1m_v1/cells` (its "
        "`sac-structured` variant and structured TPE)",
        cache=("budget_agents_ml1m_v1",),
        redirect=("--out", "{results}/structured_rl_ml1m_v1"), volatile=(COMMAND,)),
    **{f"{stem}_{d}.md": Entry(
        "units", f"{_FIDELITY} {d}",
        f"`fidelity_probes_{d}.jsonl`, `fidelity_designs_{d}.jsonl`, `fidelity_masks_{d}.json`; "
        "needs the data set (its split sizes scale the replayed batch counts); one run writes "
        "both files and the plot",
        cache=(f"fidelity_probes_{d}.jsonl", f"fidelity_designs_{d}.jsonl",
               f"fidelity_masks_{d}.json"))
       for stem in ("fidelity_ground_truth", "final_retraining") for d in ("ml-100k", "ml-1m")},
    "beats_es_ml-100k.md": Entry(
        "units", "python benchmarks/beats_es.py --dataset ml-100k --data-dir ../shared/data",
        "joins `budget_agents_ml100k_v1/cells`, `structured_rl_ml100k_v1_warm.jsonl`, "
        "`search_diagnosis_ml-100k_v1.jsonl` (their commands from their reports); the headroom "
        "row replays the fidelity probes and needs the data set",
        cache=("budget_agents_ml100k_v1", "structured_rl_ml100k_v1_warm.jsonl",
               "search_diagnosis_ml-100k_v1.jsonl", "fidelity_probes_ml-100k.jsonl",
               "fidelity_masks_ml-100k.json", "budget_agents_ml100k_v1.md",
               "structured_rl_ml100k_v1_warm.md", "search_diagnosis_ml-100k_v1.md")),
    "beats_es_ml-1m.md": Entry(
        "units", "python benchmarks/beats_es.py --dataset ml-1m --data-dir ../shared/data",
        "joins `budget_agents_ml1m_v1/cells`, `search_diagnosis_ml-1m_v1.jsonl` (none yet) and "
        "`search_diagnosis_ml-1m_sprint150.jsonl` (issue 29's RW-TD3 on the sprint:150 step); "
        "the headroom row replays the fidelity probes and needs the data set",
        cache=("budget_agents_ml1m_v1", "budget_agents_ml1m_v1.md",
               "search_diagnosis_ml-1m_sprint150.jsonl", "search_diagnosis_ml-1m_sprint150.md",
               "fidelity_probes_ml-1m.jsonl", "fidelity_masks_ml-1m.json")),
    "agents_ml100k.md": _measured(
        "ciess compare CIESS-LightGCN-ML100K-v0 --agents es mr mde rw-td3 --episodes 30 "
        "--env-kw retrain=fast --output runs/ml100k-fast",
        "`compare` runs whose output folders (`runs/`) are git-ignored; a rerun searches anew"),
    "backbones.md": _measured(
        "python benchmarks/bench_backbones.py --data-dir ../shared/data", _TIMING),
    "data.md": _measured("python benchmarks/bench_data.py", _TIMING),
    "env.md": _measured(
        "python benchmarks/bench_env.py --only synthetic --steps 3 --threads 1", _TIMING),
    "env_real.md": _measured(
        "python benchmarks/bench_env.py --data-dir ../shared/data --only ml-100k,ml-1m "
        "--steps 1 --threads 1 --out benchmarks/results/env_real.md", _TIMING),
    "env_v1_ml1m.md": _measured(
        "python benchmarks/bench_env.py --data-dir ../shared/data --only 'ml-1m converge,ml-1m "
        "scratch' --steps 3 --threads 1 --out benchmarks/results/env_v1_ml1m.md", _TIMING),
    "env_fast_mode.md": _measured(
        "python benchmarks/fast_mode_fidelity.py --data-dir ../shared/data --device cuda "
        "--designs short:8,short:4,nested:0,nested:20,nested:100",
        f"a GPU run; `fast_mode_fidelity.py` {_NO_UNITS}"),
    "env_fast_mode_synthetic.md": _measured(
        "python benchmarks/fast_mode_fidelity.py --dataset synthetic --designs "
        "short:8,short:4,nested:0,nested:20 --out benchmarks/results/env_fast_mode_synthetic.md",
        f"`fast_mode_fidelity.py` {_NO_UNITS}; its cost ratios are timings"),
    "pretrained.md": _measured(
        "python benchmarks/bench_pretrained.py --data-dir ../shared/data --threads 1",
        f"`bench_pretrained.py` {_NO_UNITS}; the pretraining seconds are timings"),
    "random_walk.md": _measured("python benchmarks/bench_random_walk.py --repeat 50", _TIMING),
    "scratch_budget.md": _measured(
        "python benchmarks/scratch_budget.py --data-dir ../shared/data --datasets ml-100k ml-1m "
        "--threads 1",
        f"`scratch_budget.py` {_NO_UNITS} (quality curves along one scratch step per size)"),
    "search_dynamics.md": _measured(
        "OMP_NUM_THREADS=1 python benchmarks/search_dynamics.py",
        f"`search_dynamics.py` {_NO_UNITS} (per-episode search curves, synthetic data)"),
    "sweep.md": _measured("python benchmarks/bench_sweep.py --cpus 2 --episodes 10", _TIMING),
    **{f"reproduction_{protocol}_{d}.md": _measured(
        f"python benchmarks/reproduce.py {protocol.replace('_', '-')} --data-dir ../shared/data "
        f"--datasets {d} --threads 1 --no-progress", _REPRO)
       for protocol, d in (("ablation", "ml-100k"), ("ablation", "ml-1m"),
                           ("fast_vs_scratch", "ml-100k"), ("reduced", "ml-100k"),
                           ("reduced", "ml-1m"))},
}
# fmt: on


def markdown() -> str:
    """The index as a markdown table: file, kind, the command, what it reads or why no cache."""
    from report import md_table

    rows = [[f"`{name}`", e.kind, f"`{e.command}`", e.why] for name, e in sorted(INDEX.items())]
    return "\n".join(md_table(["results file", "kind", "command", "reads / why not"], rows))


def regenerate(name: str, folder: Path) -> str:
    """The text the report of a study or units file writes now, from a copy of its cache.

    A units report runs in this process on a ``folder`` holding only the entry's ``cache``
    (a report that needs more fails); ``folder`` ends up holding what it wrote. The caller
    runs from the repository root (the commands' paths are relative to it).
    """
    entry = INDEX[name]
    if entry.kind == "study":
        import study

        return study.render(study.STUDIES[name.removesuffix(".md")])
    if entry.kind != "units":
        msg = f"{name} is a {entry.kind}: it has no cache to regenerate from."
        raise ValueError(msg)
    for item in entry.cache:
        source = RESULTS / item
        (shutil.copytree if source.is_dir() else shutil.copyfile)(source, folder / item)
    script, *args = shlex.split(entry.command)[1:]
    saved = sys.argv
    sys.argv = [script, *args, *(a.format(results=folder) for a in entry.redirect)]
    try:
        importlib.import_module(Path(script).stem).main()
    finally:
        sys.argv = saved
    return (folder / name).read_text()


def differences(name: str, text: str) -> list[tuple[str, str]]:
    """(committed, regenerated) line pairs that differ, the entry's volatile text masked."""
    volatile = INDEX[name].volatile

    def masked(text: str) -> list[str]:
        for pattern in volatile:
            text = re.sub(pattern, "<volatile>", text)
        return text.splitlines()

    old, new = masked((RESULTS / name).read_text()), masked(text)
    pairs = [(a, b) for a, b in zip(old, new, strict=False) if a != b]
    if len(old) != len(new):
        pairs.append((f"({len(old)} lines)", f"({len(new)} lines)"))
    return pairs


def check(names: list[str]) -> int:
    """Regenerate each study / units file (all of them by default); 1 if any differs."""
    os.chdir(RESULTS.parents[1])
    sys.path.insert(0, str(RESULTS.parent))
    names = names or [n for n, e in sorted(INDEX.items()) if e.kind != "measurement"]
    failed = 0
    for name in names:
        with tempfile.TemporaryDirectory() as tmp:
            pairs = differences(name, regenerate(name, Path(tmp)))
        print(f"{'same' if not pairs else 'DIFFERS'}: {name}", flush=True)
        for old, new in pairs[:5]:
            print(f"  committed:   {old[:200]}\n  regenerated: {new[:200]}")
        failed += bool(pairs)
    return int(failed > 0)


if __name__ == "__main__":
    if sys.argv[1:2] == ["check"]:
        sys.exit(check(sys.argv[2:]))
    print(markdown())
