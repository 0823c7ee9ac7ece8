"""MkDocs hooks: the API reference pages, and the repository files the docs link to.

Two jobs, so that ``mkdocs.yml`` never lists a module or a results file by hand:

- **API reference.** One page per public module of ``ciess_env`` and ``agents`` (every module
  whose dotted name has no part starting with ``_``), generated at build time and added to the
  nav under "API reference". A module added, moved or removed needs no edit here; its
  docstrings are rendered by mkdocstrings.
- **Linked repository files.** A docs page links to files outside ``docs/`` with a path that
  works on GitHub and in a clone (``../benchmarks/results/beats_es_ml-1m.md``). Each such file
  is mounted into the site under ``repo/`` and the link is rewritten to it, so the same link
  also works in the built site, and ``mkdocs build --strict`` still fails on a missing file.
- **Pages not in the nav.** A Markdown page in ``docs/`` that ``mkdocs.yml`` does not list is
  appended to the "User guide" section, so a page written by someone else joins the site
  without a nav edit (and without failing the strict build).
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files, InclusionLevel
from mkdocs.structure.pages import Page

#: The packages whose public modules get an API page.
PACKAGES = ("ciess_env", "agents")
#: Where the mounted repository files live inside the site.
MOUNT = "repo"
_LINK = re.compile(r"(\]\()([^)\s#]+)(#[^)\s]*)?(\))")
#: The marker of docs/agents.md that the agent registry's table replaces.
AGENTS_TABLE = "<!-- agents-table -->"


def _repo_root(config: MkDocsConfig) -> Path:
    return Path(config.config_file_path).resolve().parent


def public_modules(root: Path) -> list[str]:
    """Dotted names of the public modules of :data:`PACKAGES`, packages before their modules."""
    names = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if not any(part.startswith("_") for part in parts):
                names.append(".".join(parts))
    return sorted(names, key=lambda name: name.split("."))


def _api_uri(module: str) -> str:
    return f"api/{module}.md"


def _api_page(module: str, is_package: bool) -> str:
    options = "\n    options:\n      members: false" if is_package else ""
    return f"# `{module}`\n\n::: {module}{options}\n"


def _nav_pages(nav: Any) -> set[str]:
    """Every page path listed in a nav (nested lists and dicts)."""
    if isinstance(nav, str):
        return {nav}
    if isinstance(nav, dict):
        return set().union(*(_nav_pages(v) for v in nav.values()))
    if isinstance(nav, list):
        return set().union(*(_nav_pages(v) for v in nav))
    return set()


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """Fill the nav: one API entry per public module; unlisted pages into "User guide"."""
    modules = public_modules(_repo_root(config))
    listed = _nav_pages(config.nav)
    unlisted = sorted(p.name for p in Path(config.docs_dir).glob("*.md") if p.name not in listed)
    for i, item in enumerate(config.nav or []):
        if isinstance(item, dict) and "API reference" in item:
            config.nav[i] = {"API reference": [{m: _api_uri(m)} for m in modules]}
        if isinstance(item, dict) and "User guide" in item and unlisted:
            item["User guide"] = [*item["User guide"], *unlisted]
    return config


def _targets(text: str, page_dir: Path, root: Path) -> dict[str, Path]:
    """Relative link target → the repository file it names (existing files only)."""
    found = {}
    for match in _LINK.finditer(text):
        target = match.group(2)
        if "://" in target or target.startswith(("/", "mailto:")):
            continue
        path = (page_dir / target).resolve()
        if path.is_relative_to(root) and path.is_file():
            found[target] = path
    return found


def _site_uri(path: Path, root: Path, docs_dir: Path) -> str:
    """Where a repository file lives in the site: its docs path, or mounted under MOUNT."""
    if path.is_relative_to(docs_dir):
        return path.relative_to(docs_dir).as_posix()
    return f"{MOUNT}/{path.relative_to(root).as_posix()}"


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the API pages and mount every repository file that a page links to.

    Mounted Markdown files are scanned in turn (the README links to other files), so every
    link of every page in the site has a target.
    """
    root, docs_dir = _repo_root(config), Path(config.docs_dir).resolve()
    for module in public_modules(root):
        is_package = (root / module.replace(".", "/") / "__init__.py").exists()
        files.append(
            File.generated(config, _api_uri(module), content=_api_page(module, is_package))
        )
    queue = [Path(f.abs_src_path) for f in files if f.is_documentation_page() and f.abs_src_path]
    mounted: set[Path] = set()
    while queue:
        page = queue.pop()
        for path in _targets(page.read_text(encoding="utf-8"), page.parent, root).values():
            if path.is_relative_to(docs_dir) or path in mounted:
                continue
            mounted.add(path)
            if path.suffix == ".md":
                queue.append(path)
    for path in sorted(mounted):
        files.append(
            File.generated(
                config,
                _site_uri(path, root, docs_dir),
                abs_src_path=str(path),
                inclusion=InclusionLevel.NOT_IN_NAV,
            )
        )
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, **_: Any) -> str:
    """Point each link at its target's place in the site (mounted files move).

    Also fills ``<!-- agents-table -->`` (docs/agents.md) from the agent registry, so the list
    of agents is never stale.
    """
    if AGENTS_TABLE in markdown:
        from agents.registry import agents_markdown

        markdown = markdown.replace(AGENTS_TABLE, agents_markdown())
    if not page.file.abs_src_path:
        return markdown
    root, docs_dir = _repo_root(config), Path(config.docs_dir).resolve()
    source = Path(page.file.abs_src_path).resolve()
    targets = _targets(markdown, source.parent, root)
    if source.is_relative_to(docs_dir):  # links inside docs/ are right as they are
        targets = {k: v for k, v in targets.items() if not v.is_relative_to(docs_dir)}
    if not targets:
        return markdown
    here = posixpath.dirname(page.file.src_uri) or "."

    def rewrite(match: re.Match[str]) -> str:
        path = targets.get(match.group(2))
        if path is None:
            return match.group(0)
        new = posixpath.relpath(_site_uri(path, root, docs_dir), here)
        return f"{match.group(1)}{new}{match.group(3) or ''}{match.group(4)}"

    return _LINK.sub(rewrite, markdown)
