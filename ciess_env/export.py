"""Export a trained mixed-size model as a compact serving artefact, and load it without ciess.

A searched mask saves memory only once its tables are materialised compactly: a masked
(n, d_max) table still stores every zero. :func:`export` writes the *served* embeddings of a
trained backbone to a folder holding two files:

* ``embeddings.safetensors``: each served table ``T`` (``user.emb`` and ``item.emb``; NCF:
  ``user.gmf``, ``user.mlp``, ``item.gmf``, ``item.mlp``) in one of two layouts
  (:data:`FORMATS`), plus NCF's tower weights as ``dense.<name>``:

  - ``"buckets"``: rows grouped by stored width ``w``: ``T.w{w}.table`` (n_w, w) float32 and
    ``T.w{w}.rows`` (n_w,) int64, the entity ids of its rows (one dense table per size
    bucket, as TorchRec's per-table dimensions and MDE-style buckets expect);
  - ``"ragged"``: ``T.values`` (Σ w,) float32, the rows back to back, and ``T.offsets``
    (n + 1,) int64, where row ``i`` is ``values[offsets[i]:offsets[i+1]]``.

  With ``dtype="int8"`` the rows are quantised row-wise as FBGEMM's fused 8-bit rows are:
  uint8 codes ``q`` with a float32 scale and bias per row, ``x ≈ q · scale + bias`` (scale =
  (max − min) / 255 and bias = min over the row's stored values), in ``T.w{w}.scale`` /
  ``T.w{w}.bias`` (buckets) or ``T.scale`` / ``T.bias`` (ragged, one per row). A row then
  costs ``w + 8`` bytes instead of ``4 w``; the loader keeps the codes and dequantises the
  rows it scores.

* ``manifest.json``: what the tensors are (backbone, what is served, layout, counts, width),
  the histogram of the searched sizes and of the stored widths, the caller's ``metadata``
  (data set, metrics, seed, ...), the package version and the sha256 of the tensors file.

What is served: for MF the score is the dot product of the masked input rows. NCF (NeuMF)
scores ``h_gmf · (p_u ⊙ q_v) + h_mlp · ReLU(W_u p'_u + W_i q'_v + b) + c``: its four masked
tables and its tower (``scorer: "neumf"`` in the manifest). For LightGCN and NGCF the rows are
the final, *propagated* embeddings, scored by a dot product: the propagation needs the training
graph, which a server does not have, so the artefact holds the result of it (computed once, in
eval mode). Propagation mixes a row with its neighbours', so a propagated row is generally as
wide as the widest size in the model even when its own size is small: for graph backbones the
searched sizes shrink the trained parameters (the input tables), not the served tables. Each
row is stored up to its last non-zero column (at least one), which is exactly the mask size for
MF and loses nothing for any backbone.

:func:`load` rebuilds a :class:`ServedEmbeddings` scorer from the folder alone (safetensors,
torch and this module; no data, no training code), after checking the checksum.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ciess_env._meta import file_sha256, package_version
from ciess_env.errors import CIESSError, InvalidArgumentError, InvalidTypeError
from ciess_env.recommenders.base import Backbone
from ciess_env.recommenders.graph import GraphBackbone
from ciess_env.recommenders.mf import MF
from ciess_env.recommenders.ncf import NCF

__all__ = [
    "ARTEFACT_KIND",
    "ARTEFACT_VERSION",
    "DTYPES",
    "FORMATS",
    "MANIFEST_FILE",
    "TENSORS_FILE",
    "ArtefactDamagedError",
    "ArtefactError",
    "ArtefactNotFoundError",
    "ServedEmbeddings",
    "export",
    "export_onnx",
    "load",
    "quantize_rows",
    "served_parts",
]

FORMATS = ("buckets", "ragged")
DTYPES = ("float32", "int8")
TENSORS_FILE = "embeddings.safetensors"
MANIFEST_FILE = "manifest.json"
ARTEFACT_KIND = "ciess-served-embeddings"
ARTEFACT_VERSION = 1
_SIDES = ("user", "item")
#: NCF's tower weights, as ``dense.<name>`` tensors.
_NCF_DENSE = ("w_user", "w_item", "b_mlp", "h_gmf", "h_mlp", "b_out")
_SCORERS = {"dot": ("emb",), "neumf": ("gmf", "mlp")}


class ArtefactError(CIESSError, ValueError):
    """An exported artefact cannot be written or read as asked; the message says why."""


class ArtefactNotFoundError(ArtefactError, FileNotFoundError):
    """The artefact folder, its manifest or its tensors file is missing."""


class ArtefactDamagedError(ArtefactError):
    """The artefact is truncated, altered (checksum mismatch) or inconsistent with its manifest."""


# ------------------------------------------------------------------ export
def served_parts(model: Backbone) -> tuple[dict, dict, str, str]:
    """What a server needs of a trained ``model``, as float32 CPU tensors.

    Returns:
        The (n, W) tables by name (``"user.emb"``...; NCF: ``"user.gmf"``, ``"user.mlp"``...),
        the dense weights by name (NCF's tower, else empty), what the rows are
        (``"propagated"`` for graph backbones, ``"input"``) and the scorer (``"dot"`` or
        ``"neumf"``).

    Raises:
        InvalidTypeError: if ``model`` is not a backbone.
        InvalidArgumentError: for a backbone this format cannot serve.
    """
    if not isinstance(model, Backbone):
        msg = f"`model` must be a ciess_env Backbone, got {type(model).__name__}."
        raise InvalidTypeError(msg)
    dense: dict[str, torch.Tensor] = {}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if isinstance(model, GraphBackbone):
                users, items = model.propagate_all()
                tables, served, scorer = {"user.emb": users, "item.emb": items}, "propagated", "dot"
            elif isinstance(model, MF):
                users, items = model.prefix_masked(model.user_emb, model.item_emb)
                tables, served, scorer = {"user.emb": users, "item.emb": items}, "input", "dot"
            elif isinstance(model, NCF):
                gu, mu, gi, mi = model._tables()
                tables = {"user.gmf": gu, "user.mlp": mu, "item.gmf": gi, "item.mlp": mi}
                dense = {name: getattr(model, name) for name in _NCF_DENSE}
                served, scorer = "input", "neumf"
            else:
                name = getattr(model, "name", type(model).__name__)
                msg = (
                    f"export supports the backbones mf, ncf, lightgcn and ngcf, got {name!r}: "
                    "the artefact format does not describe its scoring function."
                )
                raise InvalidArgumentError(msg)
    finally:
        model.invalidate_scoring()
        model.train(was_training)

    def cpu(t: torch.Tensor) -> torch.Tensor:
        return t.detach().to("cpu", torch.float32).contiguous()

    tables = {k: cpu(v) for k, v in tables.items()}
    return tables, {k: cpu(v) for k, v in dense.items()}, served, scorer


def _stored_widths(table: torch.Tensor) -> torch.Tensor:
    """Per row, 1 + the index of its last non-zero column (at least 1): a lossless trim."""
    cols = torch.arange(1, table.shape[1] + 1)
    return ((table != 0).long() * cols).amax(1).clamp(min=1)


def quantize_rows(
    table: torch.Tensor, widths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Row-wise 8-bit codes of ``table``'s first ``widths[i]`` columns per row.

    Returns:
        uint8 codes (n, W), float32 scale (n,) and bias (n,): ``x ≈ q · scale + bias`` with
        bias the row's minimum and scale its range / 255 (0 for a constant row, which the bias
        then holds exactly). The error per value is at most ``scale / 2``.
    """
    keep = torch.arange(table.shape[1]) < widths[:, None]
    lo = torch.where(keep, table, torch.inf).amin(1)
    hi = torch.where(keep, table, -torch.inf).amax(1)
    scale = (hi - lo) / 255
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    codes = torch.round((table - lo[:, None]) / safe[:, None]).clamp(0, 255)
    codes = torch.where(keep & (scale[:, None] > 0), codes, torch.zeros_like(codes))
    return codes.to(torch.uint8), scale.contiguous(), lo.contiguous()


def _layout_tensors(
    name: str, table: torch.Tensor, widths: torch.Tensor, fmt: str, dtype: str = "float32"
) -> dict:
    qparams = {}
    if dtype == "int8":
        table, scale, bias = quantize_rows(table, widths)
        qparams = {"scale": scale, "bias": bias}
    if fmt == "ragged":
        keep = torch.arange(table.shape[1]) < widths[:, None]
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(widths, 0)])
        out = {f"{name}.values": table[keep].contiguous(), f"{name}.offsets": offsets}
        out.update({f"{name}.{k}": v for k, v in qparams.items()})
        return out
    out = {}
    for w in torch.unique(widths).tolist():
        rows = torch.nonzero(widths == w).flatten()
        out[f"{name}.w{w}.table"] = table[rows, :w].contiguous()
        out[f"{name}.w{w}.rows"] = rows
        out.update({f"{name}.w{w}.{k}": v[rows].contiguous() for k, v in qparams.items()})
    return out


def _histogram(values: torch.Tensor | np.ndarray) -> dict[str, int]:
    counts = Counter(np.asarray(values).astype(np.int64).tolist())
    return {str(k): counts[k] for k in sorted(counts)}


def export(
    model: Backbone,
    path: str | os.PathLike,
    *,
    format: Literal["buckets", "ragged"] = "buckets",
    dtype: Literal["float32", "int8"] = "float32",
    metadata: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the served embeddings of a trained ``model`` to the folder ``path``.

    Args:
        model: A trained MF, NCF, LightGCN or NGCF (sizes and element masks as trained).
        path: The artefact folder; created if missing.
        format: ``"buckets"`` (a dense table per stored width) or ``"ragged"``.
        dtype: ``"float32"`` (exact) or ``"int8"`` (row-wise codes with a float32 scale and
            bias per row, about a quarter of the bytes; scores change slightly).
        metadata: JSON-serialisable facts kept in the manifest under ``"metadata"`` (data
            set, metrics, seed, budget, ...).
        overwrite: Replace an existing artefact in ``path`` (otherwise it is refused).

    Returns:
        The folder.

    Raises:
        InvalidArgumentError: for an unknown format or dtype, an unsupported backbone,
            metadata that is not JSON, or a ``path`` that already holds files (without
            ``overwrite``).
    """
    for arg, value, known in (("format", format, FORMATS), ("dtype", dtype, DTYPES)):
        if value not in known:
            msg = f"`{arg}` must be one of {', '.join(map(repr, known))}, got {value!r}."
            raise InvalidArgumentError(msg)
    try:
        meta = json.loads(json.dumps(dict(metadata or {})))
    except (TypeError, ValueError) as err:
        msg = f"`metadata` must be JSON-serialisable (numbers, strings, lists, dicts): {err}."
        raise InvalidArgumentError(msg) from err
    folder = Path(path)
    if folder.exists() and (not folder.is_dir() or (any(folder.iterdir()) and not overwrite)):
        msg = (
            f"{folder} already exists and is not an empty folder; pass overwrite=True to replace "
            "an artefact there, or choose another path."
        )
        raise InvalidArgumentError(msg)
    tables, dense, served, scorer = served_parts(model)
    from safetensors.torch import save_file

    tensors = {f"dense.{k}": v for k, v in dense.items()}
    stored = {}
    for name, table in tables.items():
        widths = _stored_widths(table)
        tensors.update(_layout_tensors(name, table, widths, format, dtype))
        stored[name] = _histogram(widths)
    folder.mkdir(parents=True, exist_ok=True)
    tensors_path = folder / TENSORS_FILE
    save_file(tensors, str(tensors_path))
    manifest = {
        "kind": ARTEFACT_KIND,
        "version": ARTEFACT_VERSION,
        "format": format,
        "backbone": getattr(model, "name", type(model).__name__),
        "served": served,
        "scorer": scorer,
        "n_users": int(model.n_users),
        "n_items": int(model.n_items),
        "width": int(next(iter(tables.values())).shape[1]),
        "d_max": int(model.d_max),
        "dtype": dtype,
        "sizes": {
            "user": _histogram(model.user_sizes.cpu()),
            "item": _histogram(model.item_sizes.cpu()),
        },
        "stored_widths": stored,
        "tensors_file": TENSORS_FILE,
        "bytes": tensors_path.stat().st_size,
        "sha256": file_sha256(tensors_path),
        "package_version": package_version(),
        "metadata": meta,
    }
    tmp = folder / f".{MANIFEST_FILE}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2))
    os.replace(tmp, folder / MANIFEST_FILE)
    return folder


# -------------------------------------------------------------------- load
#: Per stored width: (rows, table), or (rows, uint8 codes, scale, bias) for int8 artefacts.
Buckets = dict[int, tuple[torch.Tensor, ...]]


class ServedEmbeddings(nn.Module):
    """A scorer over size buckets: ``score(users)`` against every item, and ``top_k``.

    Holds only the compact rows (per served table, one (n_w, w) table per stored width) and,
    per entity, its bucket and its position there; scoring multiplies each item bucket by the
    users' first ``w`` columns, so no (n_items, width) table is materialised for a dot-product
    scorer. NCF's scorer caches every item's tower input ``W_i q'_v + b`` (n_items, d_max)
    on first use, as NCF itself does. Int8 artefacts keep their codes; the rows a score
    needs are dequantised when it is computed.

    Args:
        manifest: The artefact's manifest.
        tables: ``{"user.emb": {width: (rows, table)}, ...}``, every table of the scorer
            (int8: ``(rows, codes, scale, bias)``).
        dense: The scorer's dense weights (NCF's tower), by name.
    """

    def __init__(
        self, manifest: dict[str, Any], tables: dict[str, Buckets], dense: dict[str, torch.Tensor]
    ) -> None:
        super().__init__()
        self.manifest = manifest
        self.n_users, self.n_items = int(manifest["n_users"]), int(manifest["n_items"])
        self.width = int(manifest["width"])
        self.scorer = str(manifest.get("scorer", "dot"))
        self.quantized = manifest.get("dtype", "float32") == "int8"
        self.widths: dict[str, list[int]] = {}
        self._in_order: dict[str, bool] = {}
        for name, buckets in tables.items():
            key = name.replace(".", "_")
            n = self.n_users if name.startswith("user.") else self.n_items
            bucket_of = torch.full((n,), -1, dtype=torch.long)
            position = torch.zeros(n, dtype=torch.long)
            self.widths[name] = sorted(buckets)
            for b, w in enumerate(self.widths[name]):
                rows, table, *qparams = buckets[w]
                bucket_of[rows] = b
                position[rows] = torch.arange(len(rows))
                self.register_buffer(f"{key}_w{w}_rows", rows)
                self.register_buffer(f"{key}_w{w}_table", table)
                for part, tensor in zip(("scale", "bias"), qparams, strict=False):
                    self.register_buffer(f"{key}_w{w}_{part}", tensor)
            if n and int(bucket_of.min()) < 0:
                msg = f"the artefact's {name} buckets do not cover every row (row index maps)."
                raise ArtefactDamagedError(msg)
            self.register_buffer(f"{key}_bucket", bucket_of)
            self.register_buffer(f"{key}_position", position)
            if not name.startswith("user."):  # item order of the concatenated buckets
                order = torch.cat([buckets[w][0] for w in self.widths[name]])
                self.register_buffer(f"{key}_inverse", torch.argsort(order))
                self._in_order[name] = bool(torch.equal(order, torch.arange(n)))
                self._merge_for_scoring(name)
        for name, tensor in dense.items():
            self.register_buffer(f"dense_{name}", tensor)
        self._item_mlp: torch.Tensor | None = None

    def _merge_for_scoring(self, name: str) -> None:
        """One (n, W) item-ordered table for ``_dot`` when padding the buckets costs ≤ 5 %.

        Scoring bucket by bucket ends with putting the blocks' columns in item order, a pass
        over the whole (users × items) output; when a few rows of odd width split the items
        into several buckets (propagated rows), one padded table scores faster at a small
        memory cost. Float32 only: int8 codes stay as they are.
        """
        widths = self.widths[name]
        n = sum(len(self.bucket(name, w)[0]) for w in widths)
        stored = sum(len(self.bucket(name, w)[0]) * w for w in widths)
        if self.quantized or len(widths) == 1 or n * widths[-1] > 1.05 * stored:
            return
        merged = torch.zeros(n, widths[-1])
        for w in widths:
            rows, table = self.bucket(name, w)
            merged[rows, :w] = table
        self.register_buffer(f"{name.replace('.', '_')}_merged", merged)

    def bucket(self, name: str, w: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The (rows, (n_w, w) float table) of width ``w`` of table ``name`` (``"item.emb"``)."""
        key = name.replace(".", "_")
        return getattr(self, f"{key}_w{w}_rows"), self._table(name, w)

    def _table(self, name: str, w: int, index: torch.Tensor | None = None) -> torch.Tensor:
        """Bucket ``w`` of ``name`` as float32 (its rows ``index`` only), dequantised if int8."""
        key = f"{name.replace('.', '_')}_w{w}"
        table = getattr(self, f"{key}_table")
        table = table if index is None else table[index]
        if not self.quantized:
            return table
        scale, bias = getattr(self, f"{key}_scale"), getattr(self, f"{key}_bias")
        if index is not None:
            scale, bias = scale[index], bias[index]
        return table.float() * scale[:, None] + bias[:, None]

    def _check_users(self, users: torch.Tensor | np.ndarray | list[int]) -> torch.Tensor:
        users = torch.as_tensor(np.asarray(users) if not torch.is_tensor(users) else users)
        if users.ndim != 1 or users.is_floating_point() or users.dtype == torch.bool:
            shape = tuple(users.shape)
            msg = f"`users` must be a 1-d array of integer ids, got {users.dtype} {shape}."
            raise InvalidArgumentError(msg)
        users = users.long()
        if users.numel() and (int(users.min()) < 0 or int(users.max()) >= self.n_users):
            lo, hi = int(users.min()), int(users.max())
            msg = f"`users` must lie in [0, {self.n_users}), got ids in [{lo}, {hi}]."
            raise InvalidArgumentError(msg)
        return users

    def rows(self, name: str, ids: torch.Tensor) -> torch.Tensor:
        """(len(ids), width) rows of table ``name``, zero-padded past their stored width."""
        key = name.replace(".", "_")
        out = torch.zeros(len(ids), self.width)
        bucket = getattr(self, f"{key}_bucket")[ids]
        position = getattr(self, f"{key}_position")[ids]
        for b, w in enumerate(self.widths[name]):  # a loop over buckets, not entities
            sel = torch.nonzero(bucket == b).flatten()
            if sel.numel():
                out[sel, :w] = self._table(name, w, position[sel])
        return out

    def _dot(self, user_rows: torch.Tensor, item_table: str) -> torch.Tensor:
        """``user_rows @ items.T`` against every item, one item bucket at a time.

        The buckets' blocks are concatenated and put in item order by one column gather
        (cheaper than scattering each block into its columns).
        """
        merged = getattr(self, f"{item_table.replace('.', '_')}_merged", None)
        if merged is not None:
            return user_rows[:, : merged.shape[1]] @ merged.T
        blocks = [user_rows[:, :w] @ self._table(item_table, w).T for w in self.widths[item_table]]
        scores = blocks[0] if len(blocks) == 1 else torch.cat(blocks, 1)
        if self._in_order[item_table]:
            return scores
        return scores.index_select(1, getattr(self, f"{item_table.replace('.', '_')}_inverse"))

    def _neumf(self, users: torch.Tensor) -> torch.Tensor:
        """NCF's score (:class:`ciess_env.recommenders.NCF`) from the buckets and the tower."""
        w = self.width
        h_gmf, h_mlp = self.dense_h_gmf[:w], self.dense_h_mlp
        out = self._dot(self.rows("user.gmf", users) * h_gmf, "item.gmf") + self.dense_b_out
        if self._item_mlp is None:
            cache = torch.zeros(self.n_items, self.dense_w_item.shape[0])
            for width in self.widths["item.mlp"]:
                ids, table = self.bucket("item.mlp", width)
                cache[ids] = table @ self.dense_w_item[:, :width].T
            self._item_mlp = cache + self.dense_b_mlp
        au = self.rows("user.mlp", users) @ self.dense_w_user[:, :w].T
        chunk = max(1, (1 << 19) // max(1, len(users) * au.shape[1]))
        for start in range(0, self.n_items, chunk):  # (users × item-chunk) blocks
            stop = min(start + chunk, self.n_items)
            hidden = torch.relu(au[:, None, :] + self._item_mlp[None, start:stop, :])
            out[:, start:stop] += hidden @ h_mlp
        return out

    @torch.no_grad()
    def score(self, users: torch.Tensor | np.ndarray | list[int]) -> torch.Tensor:
        """(len(users), n_items) scores of ``users`` against every item."""
        users = self._check_users(users)
        if self.scorer == "neumf":
            return self._neumf(users)
        return self._dot(self.rows("user.emb", users), "item.emb")

    def forward(self, users: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`score`."""
        return self.score(users)

    @torch.no_grad()
    def top_k(self, users: torch.Tensor | np.ndarray | list[int], k: int) -> torch.Tensor:
        """(len(users), k) item ids of the ``k`` best scores per user, best first.

        Ties are broken by increasing item id (:func:`ciess_env.metrics.top_k_items`'s rule).
        """
        valid = isinstance(k, (int, np.integer)) and not isinstance(k, bool)
        if not valid or not 1 <= k <= self.n_items:
            msg = f"`k` must be an integer in [1, {self.n_items}], got {k!r}."
            raise InvalidArgumentError(msg)
        scores = self.score(users)
        # A stable descending sort breaks ties by item id; n_items is small next to a batch.
        return torch.sort(scores, dim=1, descending=True, stable=True).indices[:, : int(k)]


def _read_manifest(folder: Path) -> dict[str, Any]:
    if not folder.is_dir():
        msg = f"{folder} is not an exported artefact: no such folder."
        raise ArtefactNotFoundError(msg)
    path = folder / MANIFEST_FILE
    if not path.is_file():
        msg = f"{folder} is not an exported artefact: {MANIFEST_FILE} is missing."
        raise ArtefactNotFoundError(msg)
    todo = "export the model again"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        msg = f"{path} is damaged ({type(err).__name__}: {err}); {todo}."
        raise ArtefactDamagedError(msg) from err
    need = ("kind", "version", "format", "scorer", "n_users", "n_items", "width", "sha256")
    if not isinstance(manifest, dict) or any(
        key not in manifest for key in (*need, "tensors_file")
    ):
        msg = f"{path} is not a ciess artefact manifest (it needs {', '.join(need)}); {todo}."
        raise ArtefactDamagedError(msg)
    if manifest["kind"] != ARTEFACT_KIND or manifest["version"] != ARTEFACT_VERSION:
        msg = (
            f"{path} holds a {manifest['kind']!r} artefact of version {manifest['version']!r}; "
            f"this ciess-env reads {ARTEFACT_KIND!r} version {ARTEFACT_VERSION}."
        )
        raise ArtefactDamagedError(msg)
    manifest.setdefault("dtype", "float32")
    for key, known in (("format", FORMATS), ("scorer", tuple(_SCORERS)), ("dtype", DTYPES)):
        if manifest[key] not in known:
            msg = f"{path}: unknown {key} {manifest[key]!r} (known: {', '.join(known)})."
            raise ArtefactDamagedError(msg)
    return manifest


def _ragged_to_buckets(
    values: torch.Tensor, offsets: torch.Tensor, qparams: tuple[torch.Tensor, ...] = ()
) -> Buckets:
    widths = offsets[1:] - offsets[:-1]
    if len(offsets) == 0 or int(offsets[0]) != 0 or int(offsets[-1]) != len(values):
        msg = "ragged offsets do not span the values"
        raise ArtefactDamagedError(msg)
    if widths.numel() and int(widths.min()) < 1:
        msg = "ragged offsets are not increasing"
        raise ArtefactDamagedError(msg)
    out = {}
    for w in torch.unique(widths).tolist():
        rows = torch.nonzero(widths == w).flatten()
        idx = offsets[rows][:, None] + torch.arange(w)
        out[w] = (rows, values[idx], *(q[rows] for q in qparams))
    return out


def _buckets(tensors: dict[str, torch.Tensor], name: str, fmt: str, dtype: str) -> Buckets:
    parts = ("scale", "bias") if dtype == "int8" else ()
    code = torch.uint8 if dtype == "int8" else torch.float32
    if fmt == "ragged":
        values = tensors[f"{name}.values"]
        qparams = tuple(tensors[f"{name}.{p}"] for p in parts)
        n = len(tensors[f"{name}.offsets"]) - 1
        if values.dtype != code or any(q.shape != (n,) for q in qparams):
            msg = f"{name}: values are {values.dtype}, the manifest says {dtype}"
            raise ArtefactDamagedError(msg)
        return _ragged_to_buckets(values, tensors[f"{name}.offsets"], qparams)
    out = {}
    for key, table in tensors.items():
        prefix, _, rest = key.partition(".w")
        if prefix == name and rest.endswith(".table"):
            w = int(rest.removesuffix(".table"))
            rows = tensors[f"{name}.w{w}.rows"]
            if table.shape != (len(rows), w) or table.dtype != code:
                msg = (
                    f"{key} is {table.dtype} {tuple(table.shape)}, its rows and the manifest "
                    f"say {dtype} ({len(rows)}, {w})"
                )
                raise ArtefactDamagedError(msg)
            qparams = tuple(tensors[f"{name}.w{w}.{p}"] for p in parts)
            if any(q.shape != (len(rows),) for q in qparams):
                msg = f"{name}.w{w}: one scale and one bias per row expected"
                raise ArtefactDamagedError(msg)
            out[w] = (rows.long(), table, *qparams)
    if not out:
        msg = f"no buckets of table {name!r}"
        raise ArtefactDamagedError(msg)
    return out


def load(path: str | os.PathLike) -> ServedEmbeddings:
    """Load an artefact written by :func:`export` into a :class:`ServedEmbeddings` scorer.

    Raises:
        ArtefactNotFoundError: if the folder, its manifest or its tensors file is missing.
        ArtefactDamagedError: if a file is truncated or altered (sha256 mismatch), or the
            tensors do not match the manifest.
    """
    folder = Path(path)
    manifest = _read_manifest(folder)
    tensors_path = folder / str(manifest["tensors_file"])
    if not tensors_path.is_file():
        msg = f"{tensors_path} is missing: the artefact in {folder} is incomplete; export again."
        raise ArtefactNotFoundError(msg)
    digest = file_sha256(tensors_path)
    if digest != manifest["sha256"]:
        msg = (
            f"{tensors_path} does not match its manifest (sha256 {digest[:12]}…, manifest says "
            f"{str(manifest['sha256'])[:12]}…): the file is truncated or altered; export again."
        )
        raise ArtefactDamagedError(msg)
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(tensors_path))
        fmt, names = manifest["format"], _SCORERS[manifest["scorer"]]
        tables = {
            f"{side}.{n}": _buckets(tensors, f"{side}.{n}", fmt, manifest["dtype"])
            for side in _SIDES
            for n in names
        }
        width = int(manifest["width"])
        if any(w > width for buckets in tables.values() for w in buckets):
            msg = f"a stored width exceeds the manifest's width {width}"
            raise ArtefactDamagedError(msg)
        dense = {k.removeprefix("dense."): v for k, v in tensors.items() if k.startswith("dense.")}
        if manifest["scorer"] == "neumf" and set(dense) != set(_NCF_DENSE):
            msg = f"the NCF tower needs {', '.join(_NCF_DENSE)}, found {', '.join(dense) or 'none'}"
            raise ArtefactDamagedError(msg)
    except (SafetensorError, KeyError, ValueError, RuntimeError, OSError) as err:
        msg = f"{tensors_path} is damaged or does not match its manifest ({err}); export again."
        raise ArtefactDamagedError(msg) from err
    return ServedEmbeddings(manifest, tables, dense)


# -------------------------------------------------------------------- ONNX
class _GraphScorer(nn.Module):
    """:meth:`ServedEmbeddings.score` as fixed tensor operations, for ``torch.onnx.export``.

    The buckets become constants of the graph (int8 codes stay int8 and are dequantised in
    it); a user's row is gathered from every user bucket and kept where it belongs, the items
    are scored bucket by bucket and put back in item order by a constant permutation.
    """

    def __init__(self, served: ServedEmbeddings) -> None:
        super().__init__()
        self.scorer, self.width = served.scorer, served.width
        self.parts: dict[str, list[tuple[int, str]]] = {}
        for name, widths in served.widths.items():
            key = name.replace(".", "_")
            self.parts[name] = []
            for w in widths:
                prefix = f"{key}_w{w}"
                for part in ("table", "scale", "bias"):
                    if hasattr(served, f"{prefix}_{part}"):
                        tensor = getattr(served, f"{prefix}_{part}")
                        self.register_buffer(f"{prefix}_{part}", tensor)
                self.parts[name].append((w, prefix))
            maps = ("bucket", "position") if name.startswith("user.") else ("inverse",)
            for part in maps:
                self.register_buffer(f"{key}_{part}", getattr(served, f"{key}_{part}"))
        for name in _NCF_DENSE:
            if hasattr(served, f"dense_{name}"):
                self.register_buffer(f"dense_{name}", getattr(served, f"dense_{name}"))
        if self.scorer == "neumf":
            served.score(torch.zeros(1, dtype=torch.long))  # builds the item tower cache
            self.register_buffer("item_mlp", served._item_mlp)

    def _table(self, prefix: str) -> torch.Tensor:
        table = getattr(self, f"{prefix}_table")
        if not hasattr(self, f"{prefix}_scale"):
            return table
        scale, bias = getattr(self, f"{prefix}_scale"), getattr(self, f"{prefix}_bias")
        return table.float() * scale[:, None] + bias[:, None]

    def _user_rows(self, name: str, users: torch.Tensor) -> torch.Tensor:
        key = name.replace(".", "_")
        bucket = getattr(self, f"{key}_bucket")[users]
        position = getattr(self, f"{key}_position")[users]
        rows = torch.zeros(users.shape[0], self.width)
        for b, (w, prefix) in enumerate(self.parts[name]):
            inside = bucket == b
            part = self._table(prefix)[torch.where(inside, position, 0)]
            part = nn.functional.pad(part, (0, self.width - w))
            rows = rows + torch.where(inside[:, None], part, torch.zeros_like(part))
        return rows

    def _dot(self, rows: torch.Tensor, name: str) -> torch.Tensor:
        blocks = [rows[:, :w] @ self._table(prefix).T for w, prefix in self.parts[name]]
        return torch.cat(blocks, 1)[:, getattr(self, f"{name.replace('.', '_')}_inverse")]

    def forward(self, users: torch.Tensor) -> torch.Tensor:
        if self.scorer != "neumf":
            return self._dot(self._user_rows("user.emb", users), "item.emb")
        gmf = self._user_rows("user.gmf", users) * self.dense_h_gmf[: self.width]
        out = self._dot(gmf, "item.gmf") + self.dense_b_out
        au = self._user_rows("user.mlp", users) @ self.dense_w_user[:, : self.width].T
        hidden = torch.relu(au[:, None, :] + self.item_mlp[None, :, :])
        return out + hidden @ self.dense_h_mlp


def export_onnx(served: ServedEmbeddings | str | os.PathLike, path: str | os.PathLike) -> Path:
    """Write the scorer of an artefact as an ONNX model: ``users`` (int64, [batch]) → ``scores``.

    The model needs nothing but an ONNX runtime: ``onnxruntime.InferenceSession(path)
    .run(["scores"], {"users": ids})[0]`` is the (batch, n_items) float32 matrix that
    :meth:`ServedEmbeddings.score` returns (equal up to float rounding). Its weights are the
    artefact's buckets (int8 codes stay 8-bit), in one file.

    Args:
        served: A loaded artefact, or the folder of one.
        path: The ``.onnx`` file to write (its folder is created).

    Raises:
        InvalidArgumentError: if the optional package ``onnx`` is missing
            (``pip install 'ciess-env[onnx]'``).
        ArtefactError: if ``served`` is a folder that holds no readable artefact.
    """
    if not isinstance(served, ServedEmbeddings):
        served = load(served)
    try:
        import onnx  # noqa: F401
    except ImportError as err:
        msg = (
            "export_onnx needs the optional package onnx: pip install 'ciess-env[onnx]' "
            "(which also brings onnxruntime to run the result)."
        )
        raise InvalidArgumentError(msg) from err
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    module = _GraphScorer(served).eval()
    example = torch.arange(min(2, served.n_users), dtype=torch.long)
    import warnings

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's notes on its own internals
        torch.onnx.export(
            module, (example,), str(out), input_names=["users"], output_names=["scores"],
            dynamic_axes={"users": {0: "batch"}, "scores": {0: "batch"}}, dynamo=False,
            opset_version=17, do_constant_folding=False,  # folding would dequantise int8
        )  # fmt: skip
    return out
