"""Execute every teaching notebook top to bottom, with its fast settings, in a scratch folder.

Each notebook reads ``CIESS_NOTEBOOK_FAST`` in its parameters cell and then runs on a tiny
synthetic data set for a few episodes. The kernel is a subprocess that inherits this process's
environment, so the settings are passed with ``monkeypatch.setenv``; it runs in ``tmp_path``
and caches pretrained models under it, so nothing is written to the repository or ``$HOME``.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"

#: Per-cell limit. Whole notebooks take 10–30 s on two cores with the fast settings.
CELL_TIMEOUT_S = 300

#: For each notebook: how many figures (image/png outputs) it must draw at least, and strings
#: its text outputs (stdout, text/plain, text/markdown) must contain.
EXPECTED: dict[str, tuple[int, list[str]]] = {
    "01_environment_tour": (
        2,
        [
            "observation space: Box(-1.0, 1.0, (",
            "= reward",  # the reward rebuilt from its two terms (the cell asserts equality)
            "sparsity 0.8750 | mean quality ratio",  # the ansi render after "everyone gets 16"
        ],
    ),
    "02_random_walk_td3": (4, ["rows sum to 1: True", "steps summarised, "]),
    "03_compare_agents": (
        3,
        [
            "| agent | budget | sparsity | recall@5 | recall@20 | ndcg@5 | ndcg@20 | search_s |",
            "| es | 0.8000 | 0.8000 |",  # ES spends the budget exactly
            "| rw-td3 | 0.9500 |",
            "| pep | 0.9500 | 0.9500 |",  # PEP's cut meets the budget to one entry
            "| pep-prefix | 0.9500 | 0.9500 |",
            "reached at batch",
        ],
    ),
    "04_bring_your_own_agent": (2, ["best arm after", "validation_quality"]),
    "05_deploy": (
        1,
        ["round trip: test recall@20", "from the MDE int8 artefact", "of the full table"],
    ),
}

NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def _texts_and_figures(nb: nbformat.NotebookNode) -> tuple[str, int]:
    """All text the executed notebook printed or displayed, and its number of PNG figures."""
    texts, figures = [], 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                texts.append(out.text)
            elif out.output_type in ("execute_result", "display_data"):
                figures += "image/png" in out.data
                texts.extend(out.data.get(m, "") for m in ("text/plain", "text/markdown"))
    return "\n".join(texts), figures


def test_every_notebook_has_expectations() -> None:
    """Each notebook in notebooks/ is listed in EXPECTED (so none is silently left untested)."""
    assert sorted(p.stem for p in NOTEBOOKS) == sorted(EXPECTED)


def test_notebooks_are_stored_without_outputs() -> None:
    """Notebooks are committed stripped: no outputs and no execution counts."""
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [], f"{path.name} has stored outputs"
                assert cell.execution_count is None, f"{path.name} has execution counts"


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The notebook executes without a failing cell and shows its figures and key results."""
    monkeypatch.setenv("CIESS_NOTEBOOK_FAST", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("CIESS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    # Tiny models gain nothing from intra-op threads, and torch's default (one per core) thrashes
    # when the suite runs on every core: one search episode took ~40 s instead of ~1 s.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    workdir = tmp_path / "work"
    workdir.mkdir()

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        # nbclient waits only 4 s for a cell's output after the kernel replies, then drops it
        # with a warning: on a loaded 2-core CI box a print went missing. Wait, and fail loudly.
        iopub_timeout=120,
        raise_on_iopub_timeout=True,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute()  # raises CellExecutionError, naming the cell, if any cell fails

    text, figures = _texts_and_figures(nb)
    min_figures, expected = EXPECTED[path.stem]
    assert figures >= min_figures, f"{path.name} drew {figures} figures, expected {min_figures}+"
    for snippet in expected:
        assert snippet in text, f"{path.name}: no output contains {snippet!r}"
    for cell in nb.cells:  # each figure is shown once (not by both pyplot and the display hook)
        pngs = [
            o.data["image/png"] for o in cell.get("outputs", []) if "image/png" in o.get("data", {})
        ]
        assert len(pngs) == len(set(pngs)), f"{path.name} shows a figure twice:\n{cell.source}"
    if path.stem == "02_random_walk_td3":
        entries = int(re.search(r"budget log: (\d+) steps summarised", text).group(1))
        assert entries > 0
        assert entries % 10 == 0  # whole episodes of T = 10 steps were logged
    if path.stem == "03_compare_agents":
        # compare() scores the heuristics itself: every ES / MR / MDE row has numbers, no dash.
        rows = re.findall(r"^\| (es|mr|mde) \|(.*)\|$", text, flags=re.MULTILINE)
        assert sorted(name for name, _ in rows) == ["es"] * 3 + ["mde"] * 3 + ["mr"] * 3
        for name, cells in rows:
            values = [v.strip() for v in cells.split("|")]
            assert len(values) == 7, f"{name} row: {values}"
            assert all(re.fullmatch(r"\d+\.\d{4}", v) for v in values), f"{name} row: {values}"
    assert not any(workdir.iterdir()), "the notebook wrote files into its working directory"
