"""The layer contracts of pyproject.toml hold, and they break when a lower layer imports up."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip


def test_import_contracts_hold() -> None:
    """`lint-imports` keeps every contract of pyproject.toml on the real packages."""
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_import_contracts_fail_when_a_lower_layer_imports_a_higher_one(tmp_path) -> None:
    """Upward imports injected into a copy of the packages break the matching contracts."""
    for package in ("ciess_env", "agents", "benchmarks"):
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    upward = {
        "ciess_env/data/synthetic.py": "import ciess_env.recommenders.mf",
        "ciess_env/recommenders/mf.py": "import ciess_env.spaces",
        "ciess_env/env.py": "import agents.baselines",
        "agents/baselines.py": "import agents.experiments.session",
        "agents/protocol.py": "import benchmarks.report",
    }
    for path, line in upward.items():
        with open(tmp_path / path, "a") as f:
            f.write(f"\n{line}  # noqa\n")
    result = _lint_imports(tmp_path)
    assert result.returncode != 0
    for name in (
        "data knows no model BROKEN",
        "models know no RL BROKEN",
        "the env knows no agent BROKEN",
        "agents know no experiments BROKEN",
        "benchmarks may import agents and ciess_env, never the reverse BROKEN",
        "ciess_env layers: data -> metrics -> recommenders -> MDP -> env BROKEN",
    ):
        assert name in result.stdout, result.stdout


def test_package_exports_are_not_shadowed_by_submodules() -> None:
    """Each lazy export of ``agents.experiments`` is the object, whatever was imported first.

    A submodule named like an export (``compare`` once was both) replaces the export on the
    package as soon as anything imports it, and the README's import then gives a module.
    """
    import importlib
    import pkgutil

    import agents.experiments as pkg

    submodules = {m.name for m in pkgutil.iter_modules(pkg.__path__)}
    assert not submodules & set(pkg.__all__), submodules & set(pkg.__all__)
    for name in submodules:  # import every submodule first, then each export
        importlib.import_module(f"agents.experiments.{name}")
    assert callable(pkg.compare)
    assert pkg.compare.__module__ == "agents.experiments.comparison"
