"""The package builds (sdist, then the wheel from it), passes ``twine check`` and installs.

This is what ``pip install .`` on a fresh clone does, minus the network: the build runs with
``--no-isolation`` (setuptools from this environment) and the install with ``--no-deps``.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str | Path, cwd: Path = ROOT) -> str:
    """Run a command; fail the test with its output if it fails."""
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
    return proc.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sdist and the wheel, built as ``python -m build`` builds them (wheel from sdist)."""
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT)
    (sdist,) = out.glob("ciess_env-*.tar.gz")
    (wheel,) = out.glob("ciess_env-*-py3-none-any.whl")
    return {"sdist": sdist, "wheel": wheel}


def package_sources() -> set[str]:
    """Every file of the two packages in the source tree that a wheel must ship."""
    files = set()
    for package in ("ciess_env", "agents"):
        for path in (ROOT / package).rglob("*"):
            if path.suffix in {".py", ".typed"} and "__pycache__" not in path.parts:
                files.add(path.relative_to(ROOT).as_posix())
    return files


def test_twine_check_passes_on_the_wheel_and_sdist(dist: dict[str, Path]) -> None:
    """``twine check --strict``: the metadata and the README render on PyPI."""
    out = run(sys.executable, "-m", "twine", "check", "--strict", dist["sdist"], dist["wheel"])
    assert out.count("PASSED") == 2


def test_wheel_ships_every_module_the_entry_point_and_metadata(dist: dict[str, Path]) -> None:
    """All of ciess_env/ and agents/ (with py.typed), the `ciess` script, licence and URLs."""
    with zipfile.ZipFile(dist["wheel"]) as wheel:
        names = set(wheel.namelist())
        info = next(n for n in names if n.endswith(".dist-info/METADATA")).rsplit("/", 1)[0]
        metadata = wheel.read(f"{info}/METADATA").decode()
        entry_points = wheel.read(f"{info}/entry_points.txt").decode()
    assert package_sources() - names == set()
    assert "ciess = agents.experiments.cli:main" in entry_points
    assert "License-Expression: MIT" in metadata
    assert "Project-URL: Paper, https://arxiv.org/abs/2304.03501" in metadata
    assert "Provides-Extra: ray" in metadata
    assert "Description-Content-Type: text/markdown" in metadata


def test_sdist_holds_what_a_build_needs(dist: dict[str, Path]) -> None:
    """pyproject.toml, README.md, LICENSE and every package module."""
    with tarfile.open(dist["sdist"]) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    assert {"pyproject.toml", "README.md", "LICENSE"} <= names
    assert package_sources() - names == set()


def test_the_wheel_installs_and_registers_the_envs(dist: dict[str, Path], tmp_path: Path) -> None:
    """``pip install`` of the wheel: imported from there, ids registered, version 0.1.0."""
    target = tmp_path / "site"
    run(sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
        "--target", target, dist["wheel"])  # fmt: skip
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import gymnasium, ciess_env; "
        "print(ciess_env.__file__); print(ciess_env.__version__); "
        "print('CIESS-LightGCN-ML1M-v1' in gymnasium.registry)"
    )
    out = run(sys.executable, "-c", code, target, cwd=tmp_path).split()
    assert Path(out[0]).is_relative_to(target)
    assert out[1:] == ["0.1.0", "True"]
    assert (target / "bin" / "ciess").is_file()
