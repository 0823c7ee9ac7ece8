"""Readers for the raw files of the supported data sets, and for any CSV/TSV/Parquet table.

Each reader returns a :class:`pandas.DataFrame` with int64 columns ``user`` and ``item`` (raw
ids, as in the file) and, where the format has them, ``rating`` and ``timestamp``. Readers only
parse and validate; mapping raw ids to indices and splitting is the job of
:mod:`ciess_env.data.datasets`, so a reader can be tested on a five-line file.

Why the rules below:

* **Speed.** Whole files are read at once and parsed by pandas' C tokenizer or
  :func:`numpy.fromstring`, never line by line in Python: ML-1M (1M ratings) parses in well under
  a second, and Yelp2018's ragged LightGCN lines in about 0.1 s.
* **Clear failures.** A missing file raises :class:`~ciess_env.errors.DataNotFoundError` naming
  the path; a malformed line raises :class:`~ciess_env.errors.DataFormatError` naming the file
  and the 1-based line number; a file without interactions, with negative or non-integer ids
  is malformed too.
* **Implicit feedback.** Every rating counts as a positive unless ``min_rating`` is given (paper
  §4: "every rating counts as an implicit positive"). Duplicate (user, item) pairs carry no
  extra information for BPR, so they are dropped (the first occurrence is kept) and their number
  is logged at WARNING level.
* **Compression.** ``.gz`` files and the official GroupLens ``.zip`` archives are read directly;
  gzip is detected by its magic bytes, so the file name does not matter.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import logging
import lzma
import re
import zipfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ciess_env.errors import DataFormatError, DataNotFoundError, InvalidArgumentError

__all__ = ["read_lightgcn", "read_ml1m_ratings", "read_ml100k", "read_table"]

logger = logging.getLogger(__name__)

_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGIC = b"PK\x03\x04"
_BZ2_MAGIC = b"BZh"
_XZ_MAGIC = b"\xfd7zXZ\x00"
#: File-name suffix -> the magic bytes such a file must start with.
_SUFFIX_MAGIC = {".gz": _GZIP_MAGIC, ".zip": _ZIP_MAGIC, ".bz2": _BZ2_MAGIC, ".xz": _XZ_MAGIC}
_RATING_COLUMNS = ("user", "item", "rating", "timestamp")
_INT64_MAX = int(np.iinfo(np.int64).max)
_REMEDY = (
    "Delete it and download it again (for the official archives, "
    "load_dataset(..., download=True) re-downloads a file whose checksum is wrong), "
    "or replace it with an intact copy"
)


# ----------------------------------------------------------------------------- raw bytes
def _require_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "does not exist"
        msg = f"Data file {str(path)!r} {what}."
        raise DataNotFoundError(msg)
    return path


def _unreadable(path: Path, kind: str, err: BaseException) -> DataFormatError:
    msg = f"{str(path)!r} is not a readable {kind} (truncated or corrupt?): {err}. {_REMEDY}."
    return DataFormatError(msg)


def _read_zip_member(path: Path, member: str | None) -> tuple[bytes, str]:
    """Read ``member`` of a zip archive (or its only file when ``member`` is None)."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if not n.endswith("/")]
            if member is None:
                matches = names
                if len(names) != 1:
                    msg = (
                        f"Zip archive {str(path)!r} must hold exactly one file, got "
                        f"{len(names)} ({', '.join(names[:10])}); unpack the one you mean."
                    )
                    raise DataFormatError(msg)
            else:
                matches = [n for n in names if n == member or n.endswith("/" + member)]
            if not matches:
                msg = (
                    f"Zip archive {str(path)!r} has no member {member!r} "
                    f"(members: {', '.join(names[:10])}{', ...' if len(names) > 10 else ''})."
                )
                raise DataFormatError(msg)
            chosen = min(matches, key=len)
            return zf.read(chosen), f"{path}:{chosen}"
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
        raise _unreadable(path, "zip archive", err) from err


def _read_bytes(
    path: Path, member: str | None = None, *, any_member: bool = False
) -> tuple[bytes, str]:
    """Return the decompressed bytes of ``path`` and a name for messages.

    Compression is told by the magic bytes (gzip, zip, bzip2, xz), and a name that promises a
    compression the bytes do not have is refused. A zip archive is opened and its member
    ``member`` read (the name may also match at the end of a longer member path, e.g.
    ``ml-1m/ratings.dat``); with ``any_member`` an archive of exactly one file is read.
    Damaged compressed data of any kind becomes a :class:`DataFormatError` naming the file.
    """
    with path.open("rb") as fh:
        head = fh.read(6)
    promised = _SUFFIX_MAGIC.get(path.suffix.lower())
    if promised is not None and not head.startswith(promised):
        kind = path.suffix.lower().lstrip(".")
        msg = f"{str(path)!r} is named like a .{kind} file but is not one. {_REMEDY}."
        raise DataFormatError(msg)
    if head.startswith(_ZIP_MAGIC):
        if member is None and not any_member:
            msg = f"{str(path)!r} is a zip archive; this reader expects a plain or .gz file."
            raise DataFormatError(msg)
        return _read_zip_member(path, member)
    data = path.read_bytes()
    codecs = (
        (_GZIP_MAGIC, gzip.decompress, "gzip file"),
        (_BZ2_MAGIC, bz2.decompress, "bzip2 file"),
        (_XZ_MAGIC, lzma.decompress, "xz file"),
    )
    for magic, decompress, kind in codecs:
        if head.startswith(magic):
            try:
                return decompress(data), str(path)
            except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as err:
                raise _unreadable(path, kind, err) from err
    return data, str(path)


def _line_text(buf: bytes, line: int) -> str:
    """The text of 1-based line ``line`` of ``buf`` for an error message (slow path only)."""
    lines = buf.split(b"\n")
    text = lines[line - 1] if 0 < line <= len(lines) else b""
    return text.decode("latin-1").rstrip("\r")[:200]


def _field_counts(buf: bytes, sep: str) -> tuple[np.ndarray, np.ndarray]:
    """Fields per record of delimited text and the byte offset where each record starts.

    Vectorised over the bytes: separators and newlines inside double quotes (pandas' default
    quoting, ``""`` escapes included) are ignored, by the parity of the quotes before them.
    """
    raw = np.frombuffer(buf, dtype=np.uint8)
    is_nl = raw == ord("\n")
    is_sep = raw == ord(sep)
    if b'"' in buf:
        quote = raw == ord('"')
        inside = (np.cumsum(quote) - quote) % 2 == 1
        is_nl &= ~inside
        is_sep &= ~inside
    ends = np.flatnonzero(is_nl)
    n_records = ends.size + (0 if buf.endswith(b"\n") else 1)
    counts = np.bincount(np.searchsorted(ends, np.flatnonzero(is_sep)), minlength=n_records) + 1
    starts = np.concatenate([[0], ends + 1])[:n_records]
    return counts, starts


def _check_field_counts(
    buf: bytes, sep: str, *, source: str, expected: int | None, only_more: bool = False
) -> None:
    """Refuse the first record whose field count differs from ``expected`` (else record 0's).

    ``expected=None`` takes the count of the first record (the header). ``only_more`` refuses
    only records with too many fields (headerless formats report short rows by the first
    missing column instead).
    """
    counts, starts = _field_counts(buf, sep)
    if counts.size == 0:
        return
    want = int(counts[0]) if expected is None else expected
    bad = counts > want if only_more else counts != want
    if not bad.any():
        return
    rec = int(np.argmax(bad))
    line = buf.count(b"\n", 0, int(starts[rec])) + 1
    of = f"the header has {want}" if expected is None else f"expected {want}"
    problem = f"wrong number of fields: {int(counts[rec])}, {of}"
    raise _format_error(source, line, problem, _line_text(buf, line))


# ------------------------------------------------------------------------ validation
def _format_error(source: str, line: int | None, problem: str, text: str | None) -> DataFormatError:
    where = f"{source}, line {line}" if line is not None else source
    shown = f": {text!r}" if text is not None else ""
    return DataFormatError(f"Malformed data in {where}: {problem}{shown}.")


_DECIMAL = r"\s*[+-]?[0-9]+\s*"


def _first_bad_token(col: str, tokens: pd.Series) -> tuple[int, str] | None:
    """First row whose token is not a decimal integer within int64, and what is wrong.

    The slow path, only taken once the fast path (pandas inferred int64) failed; vectorised
    except for the rare tokens with 19 or more digits, which Python compares exactly.
    """
    tokens = tokens.fillna("").astype(str).reset_index(drop=True)
    decimal = tokens.str.fullmatch(_DECIMAL).to_numpy(dtype=bool)
    digits = tokens.str.strip().str.lstrip("+-").str.lstrip("0")
    long_rows = np.flatnonzero(decimal & (digits.str.len().to_numpy() >= 19))
    too_big = np.zeros(len(tokens), dtype=bool)
    too_big[[r for r in long_rows if abs(int(tokens[r])) > _INT64_MAX]] = True
    bad = ~decimal | too_big
    if not bad.any():
        return None
    row = int(np.argmax(bad))
    token = tokens[row].strip()
    if too_big[row]:
        return row, f"{col!r} must fit in int64 (at most {_INT64_MAX}), got {token}"
    number = pd.to_numeric(pd.Series([token]), errors="coerce").to_numpy(dtype=np.float64)[0]
    if token and np.isfinite(number):
        if number != np.floor(number):
            return row, f"{col!r} must be an integer, got {token}"
        return row, f"{col!r} must be an integer written in decimal digits, got {token}"
    return row, f"missing or non-numeric {col!r} field"


def _validate_int_columns(
    df: pd.DataFrame,
    columns: Sequence[str],
    *,
    source: str,
    first_line: int | None,
    buf: bytes | None = None,
    tokens: Callable[[str], pd.Series] | None = None,
) -> pd.DataFrame:
    """Check that ``columns`` are complete decimal integers within int64 and make them int64.

    Text files take a fast path when pandas already inferred int64 (every token was a decimal
    integer in range); anything else (floats, ``1e3``, ``2**63``, text) goes to
    :func:`_first_bad_token` over the raw tokens, so ``1e3`` is never user 1000 and ``2**63``
    never wraps around to ``-2**63``. Ids must also be non-negative.

    Args:
        df: The parsed frame.
        columns: Columns that must hold integers (ids, ratings, timestamps).
        source: File name for messages.
        first_line: 1-based line number of row 0 (None when rows are not lines, e.g. Parquet).
        buf: The raw text, to quote the offending line.
        tokens: Returns the raw string tokens of a column (text files); ``None`` for typed
            sources (Parquet), where integral floats below 2**53 are exact and accepted.

    Returns:
        ``df`` with those columns as int64.
    """

    def fail(row: int, problem: str) -> DataFormatError:
        line = None if first_line is None else first_line + row
        text = _line_text(buf, line) if buf is not None and line is not None else None
        if first_line is None:
            problem = f"row {row}: {problem}"
        return _format_error(source, line, problem, text)

    out = {}
    for col in columns:
        values = df[col]
        kind = values.dtype.kind
        if kind == "u" and len(values) and int(values.max()) > _INT64_MAX:
            row = int(np.argmax(values.to_numpy() > _INT64_MAX))
            raise fail(row, f"{col!r} must fit in int64 (at most {_INT64_MAX}), got {values[row]}")
        if kind == "f" and tokens is None:
            arr = values.to_numpy(dtype=np.float64)
            checks = (
                (np.isnan(arr), f"missing or non-numeric {col!r} field"),
                (arr != np.floor(arr), f"{col!r} must be an integer, got {{}}"),
                (np.abs(arr) >= 2.0**53, f"{col!r} must be an exact integer (store ids as an "
                                         "integer column, not floats), got {}"),
            )  # fmt: skip
            for mask, problem in checks:
                if mask.any():
                    row = int(np.argmax(mask))
                    raise fail(row, problem.format(float(arr[row])))
            kind = "i"
        if kind not in "iu":
            found = _first_bad_token(col, tokens(col) if tokens else values.astype(str))
            if found is None:  # e.g. an object column of Python ints
                found = (0, f"{col!r} must hold integers, got dtype {values.dtype}")
            raise fail(*found)
        arr = values.to_numpy(dtype=np.int64)
        if col in ("user", "item") and np.any(arr < 0):
            row = int(np.argmax(arr < 0))
            raise fail(row, f"{col!r} id must be non-negative, got {int(arr[row])}")
        out[col] = arr
    return pd.DataFrame(out)


def _finish(df: pd.DataFrame, *, source: str, min_rating: float | None) -> pd.DataFrame:
    """Apply the rating threshold, drop duplicate pairs, refuse empty results."""
    if df.empty:
        msg = f"Data file {source!r} contains no interactions."
        raise DataFormatError(msg)
    if min_rating is not None:
        if "rating" not in df.columns:
            msg = (
                f"`min_rating` needs ratings, but {source!r} has none; "
                f"got min_rating={min_rating!r}."
            )
            raise InvalidArgumentError(msg)
        df = df[df["rating"].to_numpy() >= min_rating]
        if df.empty:
            msg = f"No interaction in {source!r} has a rating ≥ {min_rating!r}."
            raise DataFormatError(msg)
    users, items = df["user"].to_numpy(), df["item"].to_numpy()
    width = int(items.max()) + 1
    if (int(users.max()) + 1) * width <= _INT64_MAX:  # one int64 key per pair, no overflow
        dup = pd.Series(users * width + items).duplicated().to_numpy()
    else:  # ids near 2**63: hash the two columns
        dup = df.duplicated(["user", "item"]).to_numpy()
    if dup.any():
        logger.warning("%s: dropped %d duplicate (user, item) pairs.", source, int(dup.sum()))
        df = df[~dup]
    return df.reset_index(drop=True)


def _csv_tokens(buf: bytes, **read_kw) -> Callable[[str], pd.Series]:
    """The raw string tokens of one column, re-read from ``buf`` (error path only)."""

    def tokens(col: str) -> pd.Series:
        frame = pd.read_csv(io.BytesIO(buf), dtype=str, keep_default_na=False, **read_kw)
        return frame[col]

    return tokens


def _read_csv_bytes(buf: bytes, *, source: str, original: bytes, **read_kw) -> pd.DataFrame:
    """``pandas.read_csv`` on ``buf`` with its errors as :class:`DataFormatError` (line named).

    ``original`` is the text as in the file, quoted in messages when ``buf`` was rewritten.
    """
    try:
        return pd.read_csv(io.BytesIO(buf), **read_kw)
    except pd.errors.ParserError as err:
        found = re.search(r"line (\d+)", str(err))
        line = int(found.group(1)) if found else None
        text = _line_text(original, line) if line else None
        raise _format_error(source, line, f"wrong number of fields ({err})", text) from err
    except (UnicodeDecodeError, ValueError) as err:
        msg = f"Could not read {source!r} as delimited text: {err}."
        raise DataFormatError(msg) from err


def _parse_delimited(
    buf: bytes, *, source: str, sep: str, names: Sequence[str], original: bytes | None = None
) -> pd.DataFrame:
    """Parse headerless delimited text with the C tokenizer; map its errors to line numbers.

    ``original`` is the text as in the file, quoted in messages when ``buf`` was rewritten.
    """
    buf = buf.rstrip(b"\r\n\t ")
    original = buf if original is None else original
    if not buf:
        msg = f"Data file {source!r} contains no interactions."
        raise DataFormatError(msg)
    _check_field_counts(buf, sep, source=source, expected=len(names), only_more=True)
    read_kw = dict(sep=sep, header=None, names=list(names), engine="c",
                   skip_blank_lines=False, encoding="latin-1")  # fmt: skip
    # skip_blank_lines=False keeps row i == line i + 1, so errors name the right line.
    df = _read_csv_bytes(buf, source=source, original=original, **read_kw)
    return _validate_int_columns(
        df, names, source=source, first_line=1, buf=original, tokens=_csv_tokens(buf, **read_kw)
    )


# --------------------------------------------------------------------------- readers
def read_ml1m_ratings(path: str | Path, *, min_rating: float | None = None) -> pd.DataFrame:
    """Read MovieLens-1M ``ratings.dat`` (``UserID::MovieID::Rating::Timestamp``, latin-1).

    Args:
        path: ``ratings.dat``, a gzip of it (any name), or the official ``ml-1m.zip`` (its
            ``ml-1m/ratings.dat`` member is read).
        min_rating: Keep only ratings ≥ this value; ``None`` keeps all (the paper's choice).

    Returns:
        DataFrame with int64 columns ``user``, ``item``, ``rating``, ``timestamp`` (raw ids),
        duplicates dropped.

    Raises:
        DataNotFoundError: If ``path`` does not exist.
        DataFormatError: On a malformed line (file and line number named) or an empty file.
    """
    path = _require_file(path)
    buf, source = _read_bytes(path, member="ratings.dat")
    # "::" is a two-character separator that only pandas' slow Python engine accepts; turning it
    # into ":" keeps the C tokenizer (10x faster) and leaves line numbers unchanged.
    df = _parse_delimited(
        buf.replace(b"::", b":"), source=source, sep=":", names=_RATING_COLUMNS, original=buf
    )
    return _finish(df, source=source, min_rating=min_rating)


def read_ml100k(path: str | Path, *, min_rating: float | None = None) -> pd.DataFrame:
    """Read MovieLens-100K ``u.data`` (tab-separated ``user item rating timestamp``).

    Args:
        path: ``u.data``, a gzip of it, or the official ``ml-100k.zip`` (member
            ``ml-100k/u.data``).
        min_rating: Keep only ratings ≥ this value; ``None`` keeps all.

    Returns:
        DataFrame with int64 columns ``user``, ``item``, ``rating``, ``timestamp``.

    Raises:
        DataNotFoundError: If ``path`` does not exist.
        DataFormatError: On a malformed line or an empty file.
    """
    path = _require_file(path)
    buf, source = _read_bytes(path, member="u.data")
    df = _parse_delimited(buf, source=source, sep="\t", names=_RATING_COLUMNS)
    return _finish(df, source=source, min_rating=min_rating)


def read_lightgcn(path: str | Path) -> pd.DataFrame:
    """Read a LightGCN/NGCF interaction file: one line per user, ``user item item ...``.

    Lines have different lengths, which the tabular parsers handle badly, so the whole buffer
    is parsed at once with :func:`numpy.fromstring` and each number is attributed to its line
    from the positions of token starts and newlines. A line with a user and no items is allowed
    (it contributes no pair); blank lines are skipped.

    Args:
        path: ``train.txt`` / ``test.txt``, plain or gzip-compressed.

    Returns:
        DataFrame with int64 columns ``user``, ``item`` (raw ids), duplicates dropped.

    Raises:
        DataNotFoundError: If ``path`` does not exist.
        DataFormatError: On a character other than digits and whitespace (file and line named)
            or a file without any pair.
    """
    path = _require_file(path)
    buf, source = _read_bytes(path)
    raw = np.frombuffer(buf, dtype=np.uint8)
    is_space = (raw == ord(" ")) | (raw == ord("\t")) | (raw == ord("\r")) | (raw == ord("\n"))
    is_digit = (raw >= ord("0")) & (raw <= ord("9"))
    bad = ~(is_space | is_digit)
    if bad.any():
        pos = int(np.argmax(bad))
        line = int(np.count_nonzero(raw[:pos] == ord("\n"))) + 1
        char = chr(raw[pos])
        problem = (
            "ids must be non-negative, got a '-'"
            if char == "-"
            else f"ids must be non-negative integers separated by spaces, got {char!r}"
        )
        raise _format_error(source, line, problem, _line_text(buf, line))
    starts = np.flatnonzero(is_digit & np.concatenate([[True], is_space[:-1]]))
    _check_lightgcn_range(buf, raw, starts, is_digit, source=source)
    values = np.fromstring(buf, dtype=np.int64, sep=" ") if starts.size else np.zeros(0, np.int64)
    if values.size != starts.size:  # cannot happen for digits+whitespace; guards numpy changes
        msg = f"Could not parse {source!r}: {starts.size} numbers found, {values.size} parsed."
        raise DataFormatError(msg)
    line_of = np.cumsum(raw == ord("\n"))[starts] if starts.size else starts
    first = np.ones(starts.size, dtype=bool)
    first[1:] = line_of[1:] != line_of[:-1]
    owner = np.cumsum(first) - 1  # index of the line (among non-blank lines) of each number
    users = values[first][owner]
    df = pd.DataFrame({"user": users[~first], "item": values[~first]})
    return _finish(df, source=source, min_rating=None)


def _check_lightgcn_range(
    buf: bytes, raw: np.ndarray, starts: np.ndarray, is_digit: np.ndarray, *, source: str
) -> None:
    """Refuse ids above int64 (numpy would clamp them to 2**63 - 1 or overflow).

    Only tokens of 19 or more characters can be out of range; those few are compared exactly.
    """
    if not starts.size:
        return
    ends = np.flatnonzero(is_digit & ~np.concatenate([is_digit[1:], [False]])) + 1
    for pos in np.flatnonzero(ends - starts >= 19):
        token = buf[starts[pos] : ends[pos]].decode("ascii")
        if int(token) > _INT64_MAX:
            line = int(np.count_nonzero(raw[: starts[pos]] == ord("\n"))) + 1
            problem = f"ids must fit in int64 (at most {_INT64_MAX}), got {token}"
            raise _format_error(source, line, problem, _line_text(buf, line))


def _table_sep(path: Path, sep: str | None, buf: bytes, source: str) -> str:
    """The field separator: given, from the name (.csv/.tsv/.tab), or sniffed from the header."""
    if sep is not None:
        return sep
    suffixes = [s.lower() for s in path.suffixes]
    if ".tsv" in suffixes or ".tab" in suffixes:
        return "\t"
    if ".csv" in suffixes:
        return ","
    header = buf.split(b"\n", 1)[0].decode("utf-8", errors="replace")
    try:
        return csv.Sniffer().sniff(header, delimiters=",;\t| ").delimiter
    except csv.Error as err:
        msg = (
            f"Could not tell the field separator of {source!r} from its header line "
            f"{header[:200]!r}; pass `sep=` (e.g. sep=',')."
        )
        raise DataFormatError(msg) from err


def _read_delimited_table(path: Path, sep: str | None) -> tuple[pd.DataFrame, bytes, dict]:
    """Read a delimited table with a header row; every row must have the header's field count.

    pandas alone would turn a table whose rows have one field more than the header into one
    indexed by its first column, shifting every column by one; the count is checked first.
    """
    buf, source = _read_bytes(path, any_member=True)
    buf = buf.rstrip(b"\r\n")
    if not buf:
        msg = f"Data file {source!r} contains no interactions."
        raise DataFormatError(msg)
    chosen = _table_sep(path, sep, buf, source)
    if len(chosen) == 1:
        _check_field_counts(buf, chosen, source=source, expected=None)
        read_kw = dict(sep=chosen, engine="c")
    else:  # a regular expression: pandas' Python engine, which refuses long rows itself
        read_kw = dict(sep=chosen, engine="python", index_col=False)
    read_kw["skip_blank_lines"] = False
    return _read_csv_bytes(buf, source=source, original=buf, **read_kw), buf, read_kw


def read_table(
    path: str | Path,
    *,
    user_col: str,
    item_col: str,
    rating_col: str | None = None,
    sep: str | None = None,
    min_rating: float | None = None,
) -> pd.DataFrame:
    """Read interactions from any CSV/TSV (with a header row) or Parquet file.

    The escape hatch for data sets without a dedicated reader: name the columns and get the same
    validated frame as the other readers. Ids must already be non-negative integers written in
    decimal digits and within int64 (map string ids with ``pandas.factorize`` first). Every row
    of a delimited file must have as many fields as the header (quoted separators do not
    count); the first that does not is named with its line.

    Args:
        path: ``.csv``, ``.tsv``/``.tab`` (optionally gzip, bzip2, xz or a one-file zip,
            told by the magic bytes) or ``.parquet``/``.pq``.
        user_col: Column holding the user ids.
        item_col: Column holding the item ids.
        rating_col: Optional column holding ratings (needed for ``min_rating``).
        sep: Field separator; by default ``","`` for .csv, tab for .tsv/.tab, sniffed otherwise.
        min_rating: Keep only rows with rating ≥ this value; ``None`` keeps all.

    Returns:
        DataFrame with int64 columns ``user``, ``item`` and, if ``rating_col`` is given,
        ``rating`` (float64).

    Raises:
        DataNotFoundError: If ``path`` does not exist.
        DataFormatError: If a column is missing, a line is malformed (field count, id not a
            decimal int64), the file is a damaged archive, or no row remains.
    """
    path = _require_file(path)
    source = str(path)
    if user_col == item_col or rating_col in (user_col, item_col):
        msg = (
            "`user_col`, `item_col` and `rating_col` must be different columns, got "
            f"{user_col!r}, {item_col!r}, {rating_col!r}."
        )
        raise InvalidArgumentError(msg)
    wanted = {user_col: "user", item_col: "item"}
    if rating_col is not None:
        wanted[rating_col] = "rating"
    is_parquet = path.suffix.lower() in (".parquet", ".pq")
    tokens = None
    if is_parquet:
        try:
            df = pd.read_parquet(path)
        except (ValueError, OSError, ImportError) as err:
            msg = f"Could not read table {source!r}: {err}. {_REMEDY}."
            raise DataFormatError(msg) from err
    else:
        df, buf, read_kw = _read_delimited_table(path, sep)
        tokens = _csv_tokens(buf, **read_kw)
    missing = [c for c in wanted if c not in df.columns]
    if missing:
        msg = (
            f"Table {source!r} has no column {missing[0]!r}; "
            f"its columns are {', '.join(map(str, df.columns))}."
        )
        raise DataFormatError(msg)
    columns = {v: k for k, v in wanted.items()}
    df = df[list(wanted)].rename(columns=wanted)
    if df.empty:
        msg = f"Data file {source!r} contains no interactions."
        raise DataFormatError(msg)
    first_line = None if is_parquet else 2  # row 0 is on line 2, after the header
    text = None if is_parquet else buf
    out = _validate_int_columns(
        df, ["user", "item"], source=source, first_line=first_line, buf=text,
        tokens=None if tokens is None else (lambda col: tokens(columns[col])),
    )  # fmt: skip
    if rating_col is not None:
        rating = pd.to_numeric(df["rating"], errors="coerce").to_numpy(dtype=np.float64)
        if not np.isfinite(rating).all():
            row = int(np.argmax(~np.isfinite(rating)))
            line = None if first_line is None else first_line + row
            where = "" if line is not None else f"row {row}: "
            problem = f"{where}missing, non-numeric or infinite rating"
            raise _format_error(source, line, problem, None if text is None else
                                _line_text(text, line))  # fmt: skip
        out["rating"] = rating
    return _finish(out, source=source, min_rating=min_rating)
