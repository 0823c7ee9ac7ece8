"""Named data sets: find the files, parse, check integrity, index and split.

``load_dataset("ml-1m")`` is the one call the environment makes. It

1. resolves the data directory: ``data_dir=`` > ``$CIESS_DATA_DIR`` >
   ``platformdirs.user_cache_dir("ciess-env")/data`` (DEVELOPING.md);
2. looks for the data set in the forms it is commonly distributed in (see :data:`SOURCES`),
   downloading it first when ``download=True`` and nothing is there;
3. checks the parsed counts against the canonical statistics (:data:`CANONICAL_STATS`) and
   refuses a truncated or corrupt copy, because a silently partial ML-1M would produce
   plausible-looking but wrong numbers for every experiment;
4. maps raw ids to contiguous indices (sorted raw ids, so indices do not depend on file order)
   and splits per user (paper §1.2: 50/25/25, seed 42). Named data sets are re-split from the
   union of all their pairs by default, as the paper does for Yelp2018; ``keep_test=True`` keeps
   a LightGCN file pair's test split instead (:func:`~ciess_env.data.split.carve_validation`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import platformdirs

from ciess_env.checks import check_seed
from ciess_env.data.download import fetch_dataset
from ciess_env.data.interactions import InteractionData, Interactions
from ciess_env.data.readers import read_lightgcn, read_ml1m_ratings, read_ml100k
from ciess_env.data.specs import (
    ALIASES,
    CANONICAL_STATS,
    DATASET_FILES,
    DATASETS,
    REMOTE_FILES,
    SOURCES,
    DatasetStats,
    Source,
    alias_key,
)
from ciess_env.data.split import carve_validation, check_ratios, split_per_user
from ciess_env.data.synthetic import make_synthetic
from ciess_env.errors import (
    DataFormatError,
    DataNotFoundError,
    DatasetError,
    DatasetIntegrityError,
    InvalidArgumentError,
    InvalidTypeError,
    suggest,
)

__all__ = [
    "CANONICAL_STATS",
    "DATASETS",
    "SOURCES",
    "DatasetStats",
    "Source",
    "canonical_name",
    "from_pairs",
    "load_dataset",
    "resolve_data_dir",
]

logger = logging.getLogger(__name__)


def canonical_name(name: str) -> str:
    """Return the canonical data set name for ``name`` (case, ``-``/``_``/spaces ignored).

    Raises:
        UnknownNameError: If the name is unknown; the message suggests close names.
    """
    if not isinstance(name, str):
        msg = f"`name` must be a string, got {name!r}."
        raise InvalidTypeError(msg)
    key = alias_key(name)
    if key not in ALIASES:
        raise suggest(name, sorted(DATASETS), what="data set")
    return ALIASES[key]


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """Return the data directory: ``data_dir`` > ``$CIESS_DATA_DIR`` > the user cache.

    Args:
        data_dir: Explicit directory, or ``None``.

    Returns:
        The directory (not created; it may not exist).
    """
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get("CIESS_DATA_DIR", "").strip()
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("ciess-env")) / "data"


def from_pairs(
    users: np.ndarray,
    items: np.ndarray,
    *,
    name: str,
    ratios: Sequence[float] = (0.5, 0.25, 0.25),
    seed: int | None = 42,
) -> InteractionData:
    """Index raw (user, item) ids and split them per user into an :class:`InteractionData`.

    The building block of :func:`load_dataset`, public so that any table read with
    :func:`~ciess_env.data.readers.read_table` becomes a data set in one call.

    Args:
        users: (n,) raw user ids (any sortable dtype).
        items: (n,) raw item ids.
        name: Name of the data set.
        ratios: (train, validation, test) proportions.
        seed: Seed of the split.

    Returns:
        The data set; indices follow sorted raw ids.
    """
    user_ids, u = np.unique(np.asarray(users), return_inverse=True)
    item_ids, i = np.unique(np.asarray(items), return_inverse=True)
    train, validation, test = split_per_user(u, i, ratios=ratios, seed=seed)
    return InteractionData(name, len(user_ids), len(item_ids), train, validation, test,
                           user_ids, item_ids)  # fmt: skip


def _with_gz(rel: str) -> tuple[str, str]:
    return rel, rel + ".gz"


def _locate(source: Source, root: Path) -> tuple[list[Path] | None, list[Path]]:
    """Return (the files of ``source`` if all exist, else None; every path looked at)."""
    found, looked = [], []
    for rel in source.files:
        paths = [root / v for v in (_with_gz(rel) if source.kind == "lightgcn" else (rel,))]
        looked += paths
        hit = next((p for p in paths if p.is_file()), None)
        if hit is not None:
            found.append(hit)
    return (found if len(found) == len(source.files) else None), looked


class _Parsed(NamedTuple):
    pairs: pd.DataFrame  # every distinct pair, with ratings where the source has them
    train: pd.DataFrame | None  # the source's own split, for keep_test (LightGCN pairs only)
    test: pd.DataFrame | None


def _read_source(source: Source, files: list[Path]) -> _Parsed:
    """Parse the files of one source."""
    if source.kind == "ml1m":
        return _Parsed(read_ml1m_ratings(files[0]), None, None)
    if source.kind == "ml100k":
        return _Parsed(read_ml100k(files[0]), None, None)
    train, test = (read_lightgcn(f) + source.id_offset for f in files)
    pairs = pd.concat([train, test], ignore_index=True).drop_duplicates(["user", "item"])
    return _Parsed(pairs, train, test)


def _check_stats(name: str, pairs: pd.DataFrame, files: list[Path]) -> None:
    expected = CANONICAL_STATS[name]
    found = DatasetStats(int(pairs["user"].nunique()), int(pairs["item"].nunique()), len(pairs))
    if found != expected:
        where = " + ".join(repr(str(f)) for f in files)
        msg = (
            f"{name} at {where} is incomplete or corrupt: found {found.n_users:,} users / "
            f"{found.n_items:,} items / {found.n_interactions:,} interactions, expected "
            f"{expected.n_users:,} / {expected.n_items:,} / {expected.n_interactions:,}. "
            f"Replace it with the official files (see `ciess_env.data.download.REMOTE_FILES`)."
        )
        raise DatasetIntegrityError(msg)


def _not_found(name: str, root: Path, looked: list[Path], data_dir: Path | None) -> Exception:
    origin = (
        "the data_dir= argument"
        if data_dir is not None
        else "$CIESS_DATA_DIR"
        if os.environ.get("CIESS_DATA_DIR", "").strip()
        else "the default cache"
    )
    urls = ", ".join(REMOTE_FILES[k].url for k in DATASET_FILES[name])
    msg = (
        f"Data set {name!r} not found in {str(root)!r} (from {origin}). Looked for: "
        f"{', '.join(str(p) for p in looked)}. Get it from {urls} into {str(root)!r}, "
        "or call load_dataset(..., download=True); or pass data_dir=... or set "
        "CIESS_DATA_DIR to a folder that holds it."
    )
    return DataNotFoundError(msg)


def _downloadable(name: str, files: list[Path], root: Path) -> bool:
    """Whether ``files`` are exactly the official downloads of ``name`` (hash-checkable)."""
    official = {root / REMOTE_FILES[k].relpath for k in DATASET_FILES[name]}
    return set(files) == official


def _find_and_read(
    name: str, root: Path, *, data_dir: Path | None, download: bool
) -> tuple[_Parsed, list[Path]]:
    """Try every present source in order; return the first that passes the integrity check.

    With ``download=True`` the official files are hash-checked (and fetched again when
    corrupt) before they are read, and if no present copy can be read the official files are
    fetched as a last resort; without it nothing touches the network.
    """
    present, looked = [], []
    for source in SOURCES[name]:
        files, paths = _locate(source, root)
        looked += paths
        if files is not None:
            present.append((source, files))
    if not present and not download:
        raise _not_found(name, root, looked, data_dir)
    errors: list[DatasetError] = []
    tried_official = False
    for source, files in present:
        official = download and _downloadable(name, files, root)
        if official:
            fetch_dataset(name, root)  # verifies the hashes; replaces a corrupt copy
            tried_official = True
        try:
            parsed = _read_source(source, files)
            _check_stats(name, parsed.pairs, files)
        except DatasetIntegrityError as err:
            logger.warning("%s", err)
            errors.append(err)
            continue
        except DataFormatError as err:
            if not download:
                raise
            logger.warning("%s", err)
            errors.append(err)
            continue
        return parsed, files
    if download and not tried_official:
        fetch_dataset(name, root)
        return _find_and_read(name, root, data_dir=data_dir, download=False)
    raise errors[0]


def _load_named(
    name: str,
    *,
    data_dir: str | Path | None,
    split_seed: int | None,
    ratios: Sequence[float],
    min_rating: float | None,
    download: bool,
    keep_test: bool,
) -> InteractionData:
    explicit = None if data_dir is None else Path(data_dir)
    root = resolve_data_dir(data_dir)
    parsed, files = _find_and_read(name, root, data_dir=explicit, download=download)
    pairs = parsed.pairs
    if min_rating is not None:
        if "rating" not in pairs.columns:
            msg = (
                f"`min_rating` needs rating values, but {name} was read from "
                f"{', '.join(map(str, files))}, which has none; got min_rating={min_rating!r}. "
                "Use the official ratings file, or min_rating=None."
            )
            raise InvalidArgumentError(msg)
        pairs = pairs[pairs["rating"].to_numpy() >= min_rating]
    if not keep_test:
        return from_pairs(pairs["user"].to_numpy(), pairs["item"].to_numpy(),
                          name=name, ratios=ratios, seed=split_seed)  # fmt: skip
    if parsed.test is None or parsed.train is None:
        msg = (
            f"`keep_test=True` needs a given train/test split, but {name} was read from "
            f"{files[0]}, which has none; got keep_test=True."
        )
        raise InvalidArgumentError(msg)
    user_ids = np.unique(pairs["user"].to_numpy())
    item_ids = np.unique(pairs["item"].to_numpy())

    def index(frame: pd.DataFrame) -> Interactions:
        return Interactions(
            np.searchsorted(user_ids, frame["user"].to_numpy()),
            np.searchsorted(item_ids, frame["item"].to_numpy()),
        )

    train, validation, test = carve_validation(
        index(parsed.train), index(parsed.test), ratios=ratios, seed=split_seed
    )
    return InteractionData(name, len(user_ids), len(item_ids), train, validation, test,
                           user_ids, item_ids)  # fmt: skip


def load_dataset(
    name: str,
    *,
    data_dir: str | Path | None = None,
    split_seed: int | None = 42,
    ratios: Sequence[float] = (0.5, 0.25, 0.25),
    min_rating: float | None = None,
    download: bool = False,
    keep_test: bool = False,
    **synthetic_kwargs: Any,
) -> InteractionData:
    """Load a named data set, split per user into train / validation / test.

    Args:
        name: ``"ml-1m"``, ``"ml-100k"``, ``"yelp2018"`` or ``"synthetic"``; case, ``-`` and
            ``_`` are ignored and ``"movielens-1m"``, ``"yelp"`` ... are accepted.
        data_dir: Folder holding the data (see :data:`SOURCES` for the accepted layouts);
            default ``$CIESS_DATA_DIR``, then ``platformdirs.user_cache_dir("ciess-env")/data``.
        split_seed: Seed of the per-user split (the paper's code uses 42).
        ratios: (train, validation, test) proportions (paper: 50/25/25).
        min_rating: Keep only ratings ≥ this; ``None`` (the paper) keeps every rating as a
            positive. Needs a source with ratings (``ratings.dat``, ``u.data``).
        download: Download the official files into the data directory if none is found; an
            official file already there is checked against its SHA-256 and fetched again if
            it is corrupt (a truncated earlier download), and if no copy present can be read
            the official files are fetched.
        keep_test: For LightGCN ``train.txt``/``test.txt`` sources, keep the given test split
            and carve validation from train instead of re-splitting the union.
        **synthetic_kwargs: Passed to :func:`~ciess_env.data.synthetic.make_synthetic`; only for
            ``"synthetic"`` (which ignores ``data_dir``, ``download`` and ``keep_test``).

    Returns:
        The split data set, named by its canonical name.

    Raises:
        UnknownNameError: Unknown ``name`` (close names suggested).
        DataNotFoundError: No copy found (every path looked at, the URL and the fixes named).
        DatasetIntegrityError: The only copies found have the wrong counts.
        DataFormatError: A file is malformed.
        ValueError: Invalid ``ratios``; ``min_rating`` or ``keep_test`` the source cannot honour.
        TypeError: ``synthetic_kwargs`` given for a real data set.
    """
    canonical = canonical_name(name)
    check_ratios(ratios)
    check_seed(split_seed, "split_seed")
    if canonical == "synthetic":
        if min_rating is not None:
            msg = (
                "`min_rating` must be None for 'synthetic' (it has no ratings), "
                f"got {min_rating!r}."
            )
            raise InvalidArgumentError(msg)
        return make_synthetic(ratios=ratios, split_seed=split_seed, **synthetic_kwargs)
    if synthetic_kwargs:
        msg = (
            f"load_dataset({canonical!r}) got unexpected keyword arguments "
            f"{sorted(synthetic_kwargs)}; only 'synthetic' takes extra arguments."
        )
        raise InvalidTypeError(msg)
    return _load_named(
        canonical,
        data_dir=data_dir,
        split_seed=split_seed,
        ratios=ratios,
        min_rating=min_rating,
        download=download,
        keep_test=keep_test,
    )
