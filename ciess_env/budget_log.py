"""The search log that selective retraining reads (paper §2.3, Eqs. 15–16).

During the search every size assignment the agent tries is logged with its quality. For a
budget ``c`` the final step picks the ``l`` logged assignments with the best mean quality ratio
``q̄`` among those whose sparsity is at least ``c``, and retrains each from scratch. One log
serves several budgets ("one shot for several budgets").

A log built with ``budgets=`` is *bounded*: it keeps the masks that are among the ``top_l``
best for at least one of those budgets (an evicted mask can never re-enter a top-l, so the
selection is exactly that of the full log), the mask of the best step by reward, and a scalar
summary of every step
(:attr:`BudgetLog.steps`, what search curves read). Without ``budgets`` it keeps every mask.
Sizes are stored compactly (``uint8`` when ``d_max ≤ 255``, else ``int16``).
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ciess_env.errors import (
    DataFormatError,
    DataNotFoundError,
    InvalidArgumentError,
    InvalidTypeError,
)

__all__ = ["MAX_D_MAX", "BudgetEntry", "BudgetLog", "StepSummary"]

#: The widest table a log can hold: sizes are stored as int16 above 255.
MAX_D_MAX = int(np.iinfo(np.int16).max)

#: Version 2 added ``reward``, version 3 the step summary and the bound (``budgets``,
#: ``top_l``); older files load with NaN rewards and a summary rebuilt from their entries.
_FORMAT_VERSION = 3
_READABLE_VERSIONS = (1, 2, 3)
_SCALARS = ("episode", "step", "sparsity", "mean_quality", "recall_20", "ndcg_20", "reward")
_STEP_FIELDS = (*_SCALARS, "mean_user_size", "mean_item_size")


def _paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``<path>.npz`` and ``<path>.json``; a given ``.npz``/``.json`` ending is the only one cut.

    Appending (not ``with_suffix``) keeps dotted names apart: ``run.seed0`` and ``run.seed1``
    are two logs, not both ``run``.
    """
    base = Path(path)
    if base.suffix in (".npz", ".json"):
        base = base.with_name(base.stem)
    return base.with_name(base.name + ".npz"), base.with_name(base.name + ".json")


@contextmanager
def _replacing(path: Path) -> Iterator[Path]:
    """A temporary path next to ``path`` that replaces it (``os.replace``) once written.

    A crash while writing leaves the old file whole; the temporary one is removed on errors.
    """
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _damaged(path: Path, err: BaseException) -> DataFormatError:
    one_line = " ".join(str(err).splitlines())
    msg = (
        f"{path} is damaged or not a budget log ({type(err).__name__}: {one_line}); restore it "
        "from a backup or a checkpoint's copy, or rerun the search that wrote it."
    )
    return DataFormatError(msg)


def _json_safe(value: object) -> object:
    """NaN/inf floats as ``null`` (strict JSON has neither); the npz keeps the exact values."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


class BudgetEntry(NamedTuple):
    """One logged environment step.

    Attributes:
        episode: Episode index (0-based, counted by the env's resets).
        step: Step index within the episode (1-based: the first step after a reset is 1).
        sparsity: Fraction of the embedding table zeroed, ``1 − Σd / (d_max·(|U|+|V|))``.
        mean_quality: ``q̄``, the mean quality ratio over users ∪ items (paper Eq. 15), in [0, 1].
        recall_20: Validation Recall@20 (mean over users with ground truth).
        ndcg_20: Validation NDCG@20 (mean over users with ground truth).
        user_sizes: (n_users,) sizes, ``uint8`` or ``int16``.
        item_sizes: (n_items,) sizes, ``uint8`` or ``int16``.
        reward: The step's reward as the env returned it (the mean of
            ``spaces.entity_rewards`` under the env's ``reward`` variant); NaN when not recorded.
    """

    episode: int
    step: int
    sparsity: float
    mean_quality: float
    recall_20: float
    ndcg_20: float
    user_sizes: np.ndarray
    item_sizes: np.ndarray
    reward: float = float("nan")


class StepSummary(NamedTuple):
    """The scalars of one logged step, kept for every step even in a bounded log.

    Attributes:
        episode, step, sparsity, mean_quality, recall_20, ndcg_20, reward: As in
            :class:`BudgetEntry`.
        mean_user_size: Mean user size of the step.
        mean_item_size: Mean item size of the step.
    """

    episode: int
    step: int
    sparsity: float
    mean_quality: float
    recall_20: float
    ndcg_20: float
    reward: float
    mean_user_size: float
    mean_item_size: float

    @classmethod
    def of(cls, entry: BudgetEntry) -> StepSummary:
        """The summary of a full entry."""
        return cls(
            *(getattr(entry, name) for name in _SCALARS),
            mean_user_size=float(np.mean(entry.user_sizes)) if entry.user_sizes.size else 0.0,
            mean_item_size=float(np.mean(entry.item_sizes)) if entry.item_sizes.size else 0.0,
        )


def _size_dtype(d_max: int) -> type[np.integer]:
    return np.uint8 if d_max <= np.iinfo(np.uint8).max else np.int16


class BudgetLog:
    """Every size assignment tried during a search, with its quality, for budget-wise selection.

    Args:
        n_users: Number of users (length of every logged ``user_sizes``).
        n_items: Number of items (length of every logged ``item_sizes``).
        d_max: The largest size; fixes the storage dtype (``uint8`` up to 255, else ``int16``).
        budgets: If given, keep only the masks among the ``top_l`` best for one of these
            target sparsities (a bounded log); ``None`` keeps every mask.
        top_l: How many masks per budget a bounded log keeps.

    Examples:
        >>> import numpy as np
        >>> log = BudgetLog(n_users=2, n_items=1, d_max=128)
        >>> _ = log.record(episode=0, step=1, user_sizes=np.array([8, 8]),
        ...                item_sizes=np.array([8]), sparsity=0.9375, mean_quality=0.8,
        ...                recall_20=0.1, ndcg_20=0.2)
        >>> [e.mean_quality for e in log.top_masks(0.9)]
        [0.8]
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        *,
        d_max: int = 128,
        budgets: Sequence[float] | None = None,
        top_l: int = 3,
    ) -> None:
        if n_users < 0 or n_items < 0:
            msg = f"n_users and n_items must be >= 0, got {n_users} and {n_items}."
            raise InvalidArgumentError(msg)
        if not 1 <= d_max <= MAX_D_MAX:
            msg = f"`d_max` must be in [1, {MAX_D_MAX}], got {d_max!r}."
            raise InvalidArgumentError(msg)
        self.n_users = int(n_users)
        self.n_items = int(n_items)
        self.d_max = int(d_max)
        self._dtype = _size_dtype(self.d_max)
        if not isinstance(top_l, int | np.integer) or top_l < 1:
            msg = f"`top_l` must be an integer >= 1, got {top_l!r}."
            raise InvalidArgumentError(msg)
        if budgets is not None:
            budgets = tuple(sorted({float(c) for c in budgets}))
            if not budgets or not all(0.0 <= c <= 1.0 for c in budgets):
                msg = f"`budgets` must be sparsities in [0, 1] (at least one), got {budgets!r}."
                raise InvalidArgumentError(msg)
        self.budgets: tuple[float, ...] | None = budgets
        self.top_l = int(top_l)
        self._entries: list[BudgetEntry] = []
        self._steps: list[StepSummary] = []

    @property
    def bounded(self) -> bool:
        """Whether the log keeps only the top masks of its budgets."""
        return self.budgets is not None

    @property
    def steps(self) -> tuple[StepSummary, ...]:
        """The scalar summary of every recorded step, in order (bounded or not)."""
        return tuple(self._steps)

    # ------------------------------------------------------------- recording
    def record(
        self,
        *,
        episode: int,
        step: int,
        user_sizes: np.ndarray,
        item_sizes: np.ndarray,
        sparsity: float,
        mean_quality: float,
        recall_20: float = float("nan"),
        ndcg_20: float = float("nan"),
        reward: float = float("nan"),
    ) -> BudgetEntry:
        """Append one step; the sizes are copied, so the caller may reuse its arrays.

        Returns:
            The stored entry.

        Raises:
            ValueError: if a size array has the wrong length or a size lies outside [1, d_max].
        """
        users = self._as_sizes(user_sizes, self.n_users, "user_sizes")
        items = self._as_sizes(item_sizes, self.n_items, "item_sizes")
        entry = BudgetEntry(
            episode=int(episode),
            step=int(step),
            sparsity=float(sparsity),
            mean_quality=float(mean_quality),
            recall_20=float(recall_20),
            ndcg_20=float(ndcg_20),
            user_sizes=users,
            item_sizes=items,
            reward=float(reward),
        )
        self._entries.append(entry)
        self._steps.append(StepSummary.of(entry))
        if self.budgets is not None:
            keep: set[int] = set()
            for c in self.budgets:
                keep.update(self._top_indices(c, self.top_l).tolist())
            rewards = self.column("reward")
            if not np.all(np.isnan(rewards)):  # the best step by reward (search curves' pick)
                keep.add(int(np.nanargmax(rewards)))
            self._entries = [e for i, e in enumerate(self._entries) if i in keep]
        return entry

    def _as_sizes(self, sizes: np.ndarray, n: int, what: str) -> np.ndarray:
        arr = np.asarray(sizes)
        if arr.dtype.kind not in "iuf":
            msg = f"`{what}` must hold integers, got dtype {arr.dtype}."
            raise InvalidTypeError(msg)
        if arr.dtype.kind == "f" and arr.size and not np.all(arr == np.round(arr)):
            bad = arr.reshape(-1)[np.argmax(np.reshape(arr != np.round(arr), -1))]
            msg = f"`{what}` must be whole numbers, got {float(bad)!r}; round them first."
            raise InvalidArgumentError(msg)
        if arr.shape != (n,):
            msg = f"`{what}` must have shape ({n},), got {arr.shape}."
            raise InvalidArgumentError(msg)
        if n and (arr.min() < 1 or arr.max() > self.d_max):
            msg = f"`{what}` must lie in [1, {self.d_max}], got [{arr.min()}, {arr.max()}]."
            raise InvalidArgumentError(msg)
        out = arr.astype(self._dtype)
        out.flags.writeable = False
        return out

    # --------------------------------------------------------------- queries
    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[BudgetEntry]:
        return iter(self._entries)

    def __getitem__(self, index: int) -> BudgetEntry:
        return self._entries[index]

    def __repr__(self) -> str:
        bound = "" if self.budgets is None else f", budgets={self.budgets}, top_l={self.top_l}"
        return (
            f"BudgetLog(n_users={self.n_users}, n_items={self.n_items}, d_max={self.d_max}"
            f"{bound}, entries={len(self)}, steps={len(self._steps)})"
        )

    def column(self, name: str) -> np.ndarray:
        """One scalar field of every entry as an array, e.g. ``log.column("sparsity")``."""
        if name not in _SCALARS:
            msg = f"`name` must be one of {', '.join(_SCALARS)}, got {name!r}."
            raise InvalidArgumentError(msg)
        dtype = np.int64 if name in ("episode", "step") else np.float64
        return np.array([getattr(e, name) for e in self._entries], dtype=dtype)

    def top_masks(self, c: float, l: int = 3) -> list[BudgetEntry]:  # noqa: E741 (paper's name)
        """The ``l`` entries with the best ``q̄`` among those with sparsity ≥ ``c``, best first.

        This is the candidate set of selective retraining (paper Eq. 15–16); the authors' code
        uses ``l = 3``. Ties keep logging order (the earlier step first), so the result does not
        depend on the sort's stability. Entries whose ``q̄`` is NaN are never selected.

        Args:
            c: Target sparsity in [0, 1], e.g. 0.9 keeps at most 10 % of the parameters.
            l: How many entries to return at most.

        Returns:
            Up to ``l`` entries; fewer (possibly none) when fewer meet the budget.

        Raises:
            ValueError: for ``c`` outside [0, 1], ``l < 1``, or, on a bounded log, a budget it
                does not track or ``l`` above its ``top_l`` (the answer would be incomplete).
        """
        if not 0.0 <= c <= 1.0:
            msg = f"`c` must be in [0, 1], got {c!r}."
            raise InvalidArgumentError(msg)
        if l < 1:
            msg = f"`l` must be >= 1, got {l!r}."
            raise InvalidArgumentError(msg)
        if self.budgets is not None and (
            l > self.top_l or not any(abs(c - b) <= 1e-9 for b in self.budgets)
        ):
            msg = (
                f"this log keeps only the top {self.top_l} masks for budgets {self.budgets}; "
                f"got c={c!r}, l={l!r}. Record the search with those budgets (e.g. "
                "RecordBudgetLog(env, budgets=..., top_l=...)), or budgets=None to keep all."
            )
            raise InvalidArgumentError(msg)
        return [self._entries[i] for i in self._top_indices(c, l)]

    def _top_indices(self, c: float, l: int) -> np.ndarray:  # noqa: E741 (paper's name)
        if not self._entries:
            return np.zeros(0, dtype=np.int64)
        sparsity = self.column("sparsity")
        quality = self.column("mean_quality")
        # A relative tolerance so that an assignment computed to sit exactly on the budget
        # (e.g. ES at size 0.1·d_max for c = 0.9) is not lost to floating-point rounding.
        ok = np.flatnonzero((sparsity >= c - 1e-12) & ~np.isnan(quality))
        return ok[np.lexsort((ok, -quality[ok]))][:l]

    # ------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the log as ``<path>.npz`` (sizes and scalars) plus ``<path>.json`` (metadata).

        The scalars are stored in both files: the npz copy is what :meth:`load` reads (exact
        float64), the JSON copy is for people and other tools (strict JSON: NaN is ``null``).
        ``path`` may end in ``.npz``/``.json``; any other dotted name is kept whole
        (``run.seed0`` writes ``run.seed0.npz``).

        Returns:
            The path of the npz file.
        """
        npz_path, json_path = _paths(path)
        npz_path.parent.mkdir(parents=True, exist_ok=True)
        n = len(self._entries)
        arrays = {name: self.column(name) for name in _SCALARS}
        arrays["user_sizes"] = (
            np.stack([e.user_sizes for e in self._entries])
            if n
            else np.zeros((0, self.n_users), self._dtype)
        )
        arrays["item_sizes"] = (
            np.stack([e.item_sizes for e in self._entries])
            if n
            else np.zeros((0, self.n_items), self._dtype)
        )
        for name in _STEP_FIELDS:
            dtype = np.int64 if name in ("episode", "step") else np.float64
            arrays[f"steps_{name}"] = np.array([getattr(s, name) for s in self._steps], dtype)
        with _replacing(npz_path) as tmp, tmp.open("wb") as f:
            np.savez_compressed(f, **arrays)
        meta = {
            "format_version": _FORMAT_VERSION,
            "n_users": self.n_users,
            "n_items": self.n_items,
            "d_max": self.d_max,
            "budgets": None if self.budgets is None else list(self.budgets),
            "top_l": self.top_l,
            "entries": [{name: getattr(e, name) for name in _SCALARS} for e in self._entries],
            "steps": len(self._steps),
        }
        text = json.dumps(_json_safe(meta), indent=1, allow_nan=False)
        with _replacing(json_path) as tmp:
            tmp.write_text(text)
        return npz_path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> BudgetLog:
        """Read a log written by :meth:`save` (pass either file or the common stem).

        Raises:
            DataNotFoundError: if the npz or json file is missing (a ``FileNotFoundError``).
            DataFormatError: if a file is truncated or damaged, the two disagree, or they come
                from an unknown format version (a ``ValueError``); the message names the file.
        """
        npz_path, json_path = _paths(path)
        for p in (json_path, npz_path):
            if not p.is_file():
                msg = (
                    f"no budget log at {p}: `BudgetLog.save` writes both {npz_path.name} and "
                    f"{json_path.name}; check the path, or rerun the search that wrote it."
                )
                raise DataNotFoundError(msg)
        try:
            meta = json.loads(json_path.read_text())
            n_users, n_items, d_max = meta["n_users"], meta["n_items"], meta["d_max"]
            entries = meta["entries"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise _damaged(json_path, err) from err
        if meta.get("format_version") not in _READABLE_VERSIONS:
            msg = (
                f"`format_version` must be one of {_READABLE_VERSIONS}, got "
                f"{meta.get('format_version')!r} in {json_path}; it was written by another "
                "ciess-env."
            )
            raise DataFormatError(msg)
        log = cls(n_users, n_items, d_max=d_max)  # unbounded while filling
        try:
            # Our own handle: np.load leaves the file open when it is not a zip it can read.
            with npz_path.open("rb") as f, np.load(f, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error) as err:
            raise _damaged(npz_path, err) from err
        missing = sorted({*_SCALARS[:-1], "user_sizes", "item_sizes"} - set(arrays))
        if missing:
            raise _damaged(npz_path, KeyError(f"no arrays {', '.join(missing)}"))
        n = arrays["user_sizes"].shape[0]
        rewards = arrays.get("reward", np.full(n, np.nan))
        if len(entries) != n:
            msg = (
                f"{json_path} lists {len(entries)} entries but {npz_path} holds {n}: the two "
                "files come from different saves; restore the pair, or rerun the search."
            )
            raise DataFormatError(msg)
        for i in range(n):
            log.record(
                episode=int(arrays["episode"][i]),
                step=int(arrays["step"][i]),
                user_sizes=arrays["user_sizes"][i],
                item_sizes=arrays["item_sizes"][i],
                sparsity=float(arrays["sparsity"][i]),
                mean_quality=float(arrays["mean_quality"][i]),
                recall_20=float(arrays["recall_20"][i]),
                ndcg_20=float(arrays["ndcg_20"][i]),
                reward=float(rewards[i]),
            )
        if "steps_episode" in arrays:
            columns = [arrays[f"steps_{name}"] for name in _STEP_FIELDS]
            log._steps = [
                StepSummary(int(row[0]), int(row[1]), *(float(v) for v in row[2:]))
                for row in zip(*columns, strict=True)
            ]
        log.budgets = None if meta.get("budgets") is None else tuple(meta["budgets"])
        log.top_l = int(meta.get("top_l", 3))
        return log
