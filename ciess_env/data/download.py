"""Downloading the public data sets into the data directory, with integrity checks.

Downloads go through :func:`pooch.retrieve`, which streams into a temporary file *in the target
folder* and moves it into place only after the hash matched; on a hash mismatch or a broken
connection the temporary file is deleted. So the data directory never holds a partial or
corrupt file under the real name, and a rerun simply tries again.

The table of remote files is the module-level dict :data:`REMOTE_FILES`; tests (and mirrors)
replace entries with ``monkeypatch.setitem`` or pass ``url=`` to :func:`fetch`.

Checksums: the SHA-256 of each GroupLens archive is the value pinned identically by several
independent public projects, and the MD5 is the one GroupLens publishes next to the archive
(``ml-1m.zip.md5``, ``ml-100k.zip.md5``), likewise cross-checked; both are kept here, pooch
checks the SHA-256. The Yelp2018 hashes are those of the LightGCN authors' files
(``kuandeng/LightGCN``, ``Data/yelp2018``), verified byte for byte on a local copy.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import NamedTuple

import requests

from ciess_env.errors import DataNotFoundError, DatasetIntegrityError

__all__ = ["DATASET_FILES", "REMOTE_FILES", "RemoteFile", "fetch", "fetch_dataset"]

logger = logging.getLogger(__name__)


class RemoteFile(NamedTuple):
    """One downloadable file.

    Attributes:
        url: Where to get it.
        relpath: Where it goes, relative to the data directory (POSIX separators).
        sha256: Expected SHA-256 (lowercase hex) of the file as downloaded.
        md5: The MD5 the publisher lists, for reference (not checked when ``sha256`` is set).
    """

    url: str
    relpath: str
    sha256: str
    md5: str | None = None


_GROUPLENS = "https://files.grouplens.org/datasets/movielens"
_LIGHTGCN = "https://raw.githubusercontent.com/kuandeng/LightGCN/master/Data"

#: Every downloadable file, by key.
REMOTE_FILES: dict[str, RemoteFile] = {
    "ml-1m.zip": RemoteFile(
        url=f"{_GROUPLENS}/ml-1m.zip",
        relpath="ml-1m.zip",
        sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
        md5="c4d9eecfca2ab87c1945afe126590906",
    ),
    "ml-100k.zip": RemoteFile(
        url=f"{_GROUPLENS}/ml-100k.zip",
        relpath="ml-100k.zip",
        sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
        md5="0e33842e24a9c977be4e0107933c0723",
    ),
    "yelp2018/train.txt": RemoteFile(
        url=f"{_LIGHTGCN}/yelp2018/train.txt",
        relpath="yelp2018/train.txt",
        sha256="1e9568725a9e833d0ac3bae01c94cd95367f73b3bb6104fd26b5f65ea5054093",
    ),
    "yelp2018/test.txt": RemoteFile(
        url=f"{_LIGHTGCN}/yelp2018/test.txt",
        relpath="yelp2018/test.txt",
        sha256="9cd9b37926cd1447a06625ffa7914527573fb097c10cb0bbdb1d1b8ded3742fe",
    ),
}

#: The files each named data set needs, as keys of :data:`REMOTE_FILES`.
DATASET_FILES: dict[str, tuple[str, ...]] = {
    "ml-1m": ("ml-1m.zip",),
    "ml-100k": ("ml-100k.zip",),
    "yelp2018": ("yelp2018/train.txt", "yelp2018/test.txt"),
}

_FOUND_HASH = re.compile(r"but got ([0-9a-fA-F]+)")


def fetch(
    key: str,
    data_dir: str | Path,
    *,
    url: str | None = None,
    sha256: str | None = None,
    progress_bar: bool = True,
) -> Path:
    """Download one file of :data:`REMOTE_FILES` into ``data_dir`` unless a verified copy is there.

    An existing file with the right hash is reused without network access; one with a wrong
    hash is downloaded again (pooch's "update" action).

    Args:
        key: Key of :data:`REMOTE_FILES`, e.g. ``"ml-1m.zip"``.
        data_dir: The data directory; the file goes to ``data_dir / relpath``.
        url: Override of the URL (a mirror, or a local server in tests).
        sha256: Override of the expected SHA-256.
        progress_bar: Show a tqdm progress bar while downloading.

    Returns:
        Path of the verified file.

    Raises:
        KeyError: If ``key`` is not in :data:`REMOTE_FILES`.
        DatasetIntegrityError: If the downloaded bytes do not have the expected hash (nothing is
            left in ``data_dir``).
        DataNotFoundError: If the download failed (offline, HTTP error, broken connection); the
            message names the URL and the path where the file can be put by hand.
    """
    remote = REMOTE_FILES[key]
    url = url or remote.url
    expected = (sha256 or remote.sha256).lower()
    target = Path(data_dir).expanduser() / remote.relpath
    # Imported here: pooch imports tqdm.auto, which warns in notebooks without ipywidgets,
    # and loading data from disk never needs it.
    import pooch

    downloader = pooch.HTTPDownloader(progressbar=progress_bar, timeout=60)
    try:
        path = pooch.retrieve(
            url,
            known_hash=f"sha256:{expected}",
            fname=target.name,
            path=target.parent,
            downloader=downloader,
            progressbar=progress_bar,
        )
    except ValueError as err:
        if "hash" not in str(err):
            raise
        found = _FOUND_HASH.search(str(err))
        msg = (
            f"Downloaded {url} has SHA-256 {found.group(1) if found else '(unknown)'}, "
            f"expected {expected}; the file was not saved to {str(target)!r}. "
            "The download was corrupted or the server's file changed; retry, or put a "
            "verified copy there by hand."
        )
        raise DatasetIntegrityError(msg) from err
    except (requests.exceptions.RequestException, OSError) as err:
        msg = (
            f"Could not download {url} ({type(err).__name__}: {err}). "
            f"Download it by hand and save it as {str(target)!r}."
        )
        raise DataNotFoundError(msg) from err
    logger.info("%s is at %s (sha256 verified).", key, path)
    return Path(path)


def fetch_dataset(name: str, data_dir: str | Path, *, progress_bar: bool = True) -> list[Path]:
    """Download every file of the named data set (see :data:`DATASET_FILES`).

    Args:
        name: Canonical data set name, e.g. ``"ml-1m"``.
        data_dir: The data directory.
        progress_bar: Show tqdm progress bars.

    Returns:
        The verified paths, in the order of :data:`DATASET_FILES`.
    """
    return [fetch(k, data_dir, progress_bar=progress_bar) for k in DATASET_FILES[name]]
