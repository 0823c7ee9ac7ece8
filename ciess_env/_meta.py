"""Two facts every layer records: the installed package version and a file's SHA-256.

At the bottom of the package (no torch, no data) so that the data layer's downloads, the model
layer's cache keys, the export manifests and the run checkpoints all compute them one way.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def package_version() -> str:
    """The installed version of ciess-env (``"0+unknown"`` in a source tree never installed).

    Read from the metadata directly: importing the package root would register the Gymnasium
    envs and pull the env layer into whatever layer asks.
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ciess-env")
    except PackageNotFoundError:
        return "0+unknown"


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks (a replay buffer or a table can be large)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
