"""benchmarks/results_index.py: every results file is indexed, and its cached ones regenerate."""

from __future__ import annotations

import importlib
import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest
import results_index
import torch
from results_index import INDEX, RESULTS

DOCS = Path(__file__).resolve().parents[2] / "docs" / "reproducing.md"


def test_every_results_file_is_indexed_and_every_entry_exists():
    """No results file is left out of the index, and the index names no file that is gone."""
    on_disk = {p.name for p in RESULTS.glob("*.md")}
    assert sorted(on_disk - set(INDEX)) == []  # add each new results file to INDEX
    assert sorted(set(INDEX) - on_disk) == []
    for name, entry in INDEX.items():
        missing = [c for c in entry.cache if not (RESULTS / c).exists()]
        assert missing == [], f"{name}: cache {missing} is not committed"
        assert entry.kind != "measurement" or not entry.cheap, name
        if entry.kind == "study":
            assert entry.command.endswith(f"study.py report {name.removesuffix('.md')}")


def test_an_entry_of_an_unknown_kind_is_refused():
    kinds = r"kind must be one of \('study', 'units', 'measurement'\); got 'cached'"
    with pytest.raises(ValueError, match=kinds):
        results_index.Entry("cached", "python x.py", "")


def test_the_docs_show_the_index_as_it_is():
    """docs/reproducing.md holds ``python benchmarks/results_index.py``'s table, not a stale one."""
    assert results_index.markdown() in DOCS.read_text()


def _masked(text: str, patterns: tuple[str, ...]) -> list[str]:
    for pattern in patterns:
        text = re.sub(pattern, "<volatile>", text)
    return text.splitlines()


CHEAP = sorted(name for name, entry in INDEX.items() if entry.cheap)


@pytest.mark.parametrize("name", CHEAP)
def test_a_cached_results_file_regenerates_from_its_cache_alone(name, tmp_path, monkeypatch):
    """The report mode, given a folder holding only the entry's cache, writes the committed file.

    Every line is compared; only the entry's volatile text (the time it was written, an
    output path inside the command) is masked.
    """
    entry = INDEX[name]
    for item in entry.cache:  # only the declared inputs: a report needing more fails here
        source = RESULTS / item
        copy = shutil.copytree if source.is_dir() else shutil.copyfile
        copy(source, tmp_path / item)
    argv = shlex.split(entry.command)
    assert argv[:2] == ["python", f"benchmarks/{Path(argv[1]).name}"]
    args = argv[2:] + [a.format(results=tmp_path) for a in entry.redirect]
    monkeypatch.setattr(sys, "argv", [argv[1], *args])
    monkeypatch.chdir(RESULTS.parents[1])  # commands are recorded relative to the repository
    module = importlib.import_module(Path(argv[1]).stem)
    for glob in ("RESULTS", "UNITS", "JSONL", "MASKS", "REPORT"):  # main() may rebind these
        if hasattr(module, glob):
            monkeypatch.setattr(module, glob, getattr(module, glob))
    threads = torch.get_num_threads()  # main() may set one thread for the process
    try:
        module.main()
    finally:
        torch.set_num_threads(threads)
    got = tmp_path / name
    assert got.is_file(), f"{entry.command} wrote no {name} into the copy"
    committed = (RESULTS / name).read_text()
    assert _masked(got.read_text(), entry.volatile) == _masked(committed, entry.volatile)
