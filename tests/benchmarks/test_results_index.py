"""benchmarks/results_index.py: every results file is indexed, and its cached ones regenerate."""

from __future__ import annotations

import importlib
import re
import shlex
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


CHEAP = sorted(name for name, entry in INDEX.items() if entry.cheap)


@pytest.mark.parametrize("name", CHEAP)
def test_a_cached_results_file_regenerates_from_its_cache_alone(name, tmp_path, monkeypatch):
    """The report mode, given a folder holding only the entry's cache, writes the committed file.

    Every line is compared; only the entry's volatile text (the time it was written, an
    output path inside the command) is masked.
    """
    monkeypatch.chdir(RESULTS.parents[1])  # commands are recorded relative to the repository
    module = importlib.import_module(Path(shlex.split(INDEX[name].command)[1]).stem)
    for glob in ("RESULTS", "UNITS", "JSONL", "MASKS", "REPORT"):  # main() may rebind these
        if hasattr(module, glob):
            monkeypatch.setattr(module, glob, getattr(module, glob))
    threads = torch.get_num_threads()  # main() may set one thread for the process
    try:
        text = results_index.regenerate(name, tmp_path)
    finally:
        torch.set_num_threads(threads)
    assert results_index.differences(name, text) == []


def test_a_changed_number_is_a_difference_and_the_time_written_is_not():
    name = "profile_step.md"
    text = (RESULTS / name).read_text()
    later = re.sub(results_index.WRITTEN, "2031-01-01 00:00 UTC", text)
    assert later != text
    assert results_index.differences(name, later) == []
    changed = text.replace("| ml-1m |", "| ml-1m |x", 1)
    assert len(results_index.differences(name, changed)) == 1
    assert results_index.differences(name, text + "one more line\n") == [
        (f"({text.count(chr(10))} lines)", f"({text.count(chr(10)) + 1} lines)")
    ]
