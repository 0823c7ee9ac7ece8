"""Downloading the public data sets into the data directory, with integrity checks.

A download streams (pooch's :class:`~pooch.HTTPDownloader`) into ``<name>.<pid>.ciess-partial``
next to the target and is moved into place only after its SHA-256 matched; on a hash mismatch,
a broken connection or an interrupt the partial file is deleted. So the data directory never
holds a partial or corrupt file under the real name, and a rerun simply tries again. A process
killed outright cannot clean up, which is why the partial carries a fixed suffix and its pid:
the next :func:`fetch` of that file removes partials whose process is gone (POSIX) or that have
not been written to for an hour. An existing file with the wrong hash (a corrupt or truncated
copy) is downloaded again.

The table of remote files is the module-level dict :data:`REMOTE_FILES`, filled from each
data set's :class:`~ciess_env.data.specs.DatasetSpec`; tests (and mirrors) replace entries
with ``monkeypatch.setitem`` or pass ``url=`` to :func:`fetch`.

Checksums: the SHA-256 of each GroupLens archive is the value pinned identically by several
independent public projects, and the MD5 is the one GroupLens publishes next to the archive
(``ml-1m.zip.md5``, ``ml-100k.zip.md5``), likewise cross-checked; both are kept here, pooch
checks the SHA-256. The Yelp2018 hashes are those of the LightGCN authors' files
(``kuandeng/LightGCN``, ``Data/yelp2018``), verified byte for byte on a local copy.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import requests

from ciess_env._meta import file_sha256
from ciess_env.data.specs import DATASET_FILES, REMOTE_FILES, RemoteFile
from ciess_env.errors import DataNotFoundError, DatasetIntegrityError

__all__ = ["DATASET_FILES", "REMOTE_FILES", "RemoteFile", "fetch", "fetch_dataset"]

logger = logging.getLogger(__name__)


_PARTIAL = ".ciess-partial"
_STALE_SECONDS = 3600  # a live download writes every few seconds (HTTP timeout: 60 s)


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (POSIX); unknown elsewhere, so treated as alive."""
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _remove_stale_partials(target: Path) -> None:
    """Delete partial downloads of ``target`` left by killed processes."""
    if not target.parent.is_dir():
        return
    now = time.time()
    for part in target.parent.glob(f"{target.name}.*{_PARTIAL}"):
        pid_text = part.name[len(target.name) + 1 : -len(_PARTIAL)]
        try:
            stale = not (pid_text.isdigit() and _pid_alive(int(pid_text)))
            stale = stale or now - part.stat().st_mtime > _STALE_SECONDS
            if stale:
                part.unlink()
                logger.info("removed %s, left by an interrupted download", part)
        except OSError:  # vanished meanwhile, or not ours to delete
            continue


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
    hash (corrupt, truncated) is downloaded again. Partial files of killed earlier downloads
    of the same file are removed first (see the module docstring).

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
    _remove_stale_partials(target)
    if target.is_file():
        found = file_sha256(target)
        if found == expected:
            logger.info("%s is at %s (sha256 verified).", key, target)
            return target
        logger.warning(
            "%s has SHA-256 %s, expected %s (corrupt or truncated); downloading it again.",
            target, found, expected,
        )  # fmt: skip
    # Imported here: pooch imports tqdm.auto, which warns in notebooks without ipywidgets,
    # and loading data from disk never needs it.
    import pooch

    downloader = pooch.HTTPDownloader(progressbar=progress_bar, timeout=60)
    part = target.with_name(f"{target.name}.{os.getpid()}{_PARTIAL}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        logger.info("downloading %s to %s", url, target)
        downloader(url, str(part), None)
        found = file_sha256(part)
        if found != expected:
            msg = (
                f"Downloaded {url} has SHA-256 {found}, expected {expected}; the file was not "
                f"saved to {str(target)!r}. The download was corrupted or the server's file "
                "changed; retry, or put a verified copy there by hand."
            )
            raise DatasetIntegrityError(msg)
        os.replace(part, target)
    except (requests.exceptions.RequestException, OSError) as err:
        msg = (
            f"Could not download {url} ({type(err).__name__}: {err}). "
            f"Download it by hand and save it as {str(target)!r}."
        )
        raise DataNotFoundError(msg) from err
    finally:
        part.unlink(missing_ok=True)
    logger.info("%s is at %s (sha256 verified).", key, target)
    return target


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
