"""The report toolkit every results file of benchmarks/ is written with."""

import math
import re

import pytest
import report


def test_md_table_formats_floats_nan_and_text_cells():
    """Floats get 4 decimals, NaN and None the missing mark, text stays as given."""
    lines = report.md_table(["a", "b", "c"], [[0.123456, math.nan, "x"], [2, None, "1,000"]])
    assert lines == ["| a | b | c |", "|---|---|---|", "| 0.1235 | — | x |", "| 2 | — | 1,000 |"]


def test_md_table_alignment_and_row_length_are_checked():
    """A custom rule per column is used; a short row or a wrong rule count is refused."""
    assert report.md_table(["a", "b"], [], align=["---", "---:"])[1] == "|---|---:|"
    with pytest.raises(ValueError, match=re.escape("each row must have 2 cells")):
        report.md_table(["a", "b"], [[1]])
    with pytest.raises(ValueError, match=re.escape("one rule per column (2), got 1")):
        report.md_table(["a", "b"], [], align=["---"])


def test_ci_and_diff_come_from_the_stats_module():
    """Three seeds give a mean with an interval; a paired difference marks a clear gap with *."""
    from agents.experiments.stats import bootstrap_ci

    values = [0.30, 0.31, 0.32]
    assert report.ci(values) == bootstrap_ci(values).format(".4f")
    assert report.ci([0.3, 0.31]) == "0.3050"  # below MIN_SEEDS: the mean alone
    assert report.diff([0.40, 0.41, 0.42], [0.30, 0.31, 0.30]).endswith("*")


def test_header_and_machine_name_command_machine_and_load():
    """The header carries the command and machine bullets; the machine line the load average."""
    line = report.machine("cpu")
    assert "device cpu" in line
    assert re.search(r"1-min load average (\d+\.\d\d|nan)", line)
    head = report.header("T", command="python x.py --a 1", machine_line=line, lines=["Seeds: 3"])
    assert head[:3] == ["# T", "", "- Command: `python x.py --a 1`"]
    assert head[3:] == [f"- Machine: {line}", "- Seeds: 3", ""]
