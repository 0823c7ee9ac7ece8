"""The docs: the site builds with warnings as errors, every link resolves, the README works.

The README is the user guide (quickstart = exactly ``make demo`` and ``make test``); everything
else lives in ``docs/``, built by MkDocs (``mkdocs.yml``, ``docs/_hooks/site.py``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"

#: A Markdown inline link or image: ``[text](target)`` / ``![alt](target "title")``.
_LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)


def _api_pages() -> set[Path]:
    """The API pages the docs hook generates at build time (they are not files in docs/)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("docs_site_hook", DOCS / "_hooks" / "site.py")
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    return {DOCS / "api" / f"{module}.md" for module in hook.public_modules(ROOT)}


def _markdown_files() -> list[Path]:
    return [README, *sorted(p for p in DOCS.rglob("*.md") if "_hooks" not in p.parts)]


def _relative_links(path: Path) -> list[str]:
    """Relative link targets of a Markdown file, outside fenced code, without anchors."""
    text = _FENCE.sub("", path.read_text(encoding="utf-8"))
    targets = []
    for target in _LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # http:, https:, mailto:, or an anchor on the same page
        targets.append(target.split("#", 1)[0])
    return targets


def _readme_block(heading: str, lang: str) -> str:
    """The first ``lang`` code block under ``## heading`` in the README."""
    text = README.read_text(encoding="utf-8")
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return section.split(f"```{lang}\n", 1)[1].split("```", 1)[0]


def test_docs_site_builds_with_warnings_as_errors(tmp_path: Path) -> None:
    """``mkdocs build --strict`` succeeds, with an API page per public module."""
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's banner about MkDocs 2
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    env_page = (site / "api" / "ciess_env.env" / "index.html").read_text(encoding="utf-8")
    assert "EmbeddingSizeEnv" in env_page
    assert "sizes_to_action" in env_page  # members are rendered, not just the module docstring
    assert (site / "api" / "agents.protocol" / "index.html").exists()
    # A results file linked from the docs is part of the site (mounted by the hook).
    assert (site / "repo" / "benchmarks" / "results" / "beats_es_ml-1m" / "index.html").exists()


@pytest.mark.parametrize("path", _markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(path: Path) -> None:
    """Each relative link in README.md and docs/*.md names a file or folder that exists."""
    generated = _api_pages()
    missing = [
        t
        for t in _relative_links(path)
        if not (path.parent / t).exists() and (path.parent / t).resolve() not in generated
    ]
    assert not missing, f"{path.relative_to(ROOT)} links to missing files: {missing}"


def test_link_checker_sees_links() -> None:
    """The link check is not vacuous: it finds the README's links to docs/ and results."""
    links = _relative_links(README)
    assert "docs/index.md" in links
    assert "benchmarks/results/beats_es_ml-1m.md" in links


def test_readme_quickstart_is_make_demo_and_make_test() -> None:
    """The quickstart is exactly the two commands that work on a fresh clone."""
    commands = [line for line in _readme_block("Quickstart", "bash").splitlines() if line]
    assert commands == ["make demo", "make test"]


def test_readme_is_a_user_guide() -> None:
    """The README stays a guide (results and findings live in docs/), about 150-200 lines."""
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= 220, f"README.md has {lines} lines; move results and details to docs/"


def test_readme_own_agent_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's own agent runs through ``compare`` and lands in the table beside ES."""
    monkeypatch.setenv("CIESS_CACHE_DIR", str(tmp_path / "cache"))
    code = _readme_block("Your own agent, compared with the built-in ones", "python")
    assert "class PopularitySizes" in code
    exec(compile(code, "README.md", "exec"), {"__name__": "readme_example"})
    out = capsys.readouterr().out
    assert "| es | 0.9000 | 0.9000 |" in out  # ES spends the budget exactly
    row = re.search(r"^\| popularity \| 0\.9000 \| (\d\.\d{4}) \|", out, flags=re.MULTILINE)
    assert row, out
    assert float(row.group(1)) >= 0.9  # the policy rounds sizes down: at least as sparse as c
