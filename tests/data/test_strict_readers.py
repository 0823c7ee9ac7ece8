"""Bad files never pass silently: field counts, id ranges, float notation, broken archives."""

import bz2
import gzip
import io
import lzma
import re
import zipfile

import numpy as np
import pytest

from ciess_env.data import read_lightgcn, read_ml1m_ratings, read_ml100k, read_table
from ciess_env.errors import DataFormatError

INT64_MAX = 2**63 - 1


def _csv(tmp_path, text: str, name: str = "x.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


# ------------------------------------------------------------------ item 1: field counts
def test_csv_rows_with_more_fields_than_the_header_are_refused(tmp_path):
    """Header of 3 columns, rows of 4: pandas would make column 1 the index and shift the rest."""
    rows = "".join(f"{u},{u + 1},3,9\n" for u in range(100))
    path = _csv(tmp_path, "user_id,item_id,rating\n" + rows)
    with pytest.raises(
        DataFormatError,
        match=re.escape(f"Malformed data in {path}, line 2: wrong number of fields: 4, ")
        + r"the header has 3",
    ):
        read_table(path, user_col="user_id", item_col="item_id")


def test_csv_first_bad_line_is_named_when_later_rows_are_long_or_short(tmp_path):
    """The first line whose field count differs from the header is the one reported."""
    long_row = _csv(tmp_path, "u,i,r\n1,2,3\n4,5,6\n7,8,9,10\n", "long.csv")
    short_row = _csv(tmp_path, "u,i,r\n1,2,3\n4,5\n7,8,9\n", "short.csv")
    with pytest.raises(DataFormatError, match=re.escape(f"{long_row}, line 4: ")) as info:
        read_table(long_row, user_col="u", item_col="i")
    assert "fields: 4, the header has 3: '7,8,9,10'" in str(info.value)
    with pytest.raises(DataFormatError, match=re.escape(f"{short_row}, line 3: ")) as info:
        read_table(short_row, user_col="u", item_col="i")
    assert "fields: 2, the header has 3: '4,5'" in str(info.value)


def test_csv_quoted_separators_and_empty_fields_count_right(tmp_path):
    """A comma inside quotes is not a separator; an empty field is still a field."""
    path = _csv(tmp_path, 'u,i,title\n1,2,"Toy Story, 1995"\n3,4,\n5,6,"a ""b"", c"\n')
    df = read_table(path, user_col="u", item_col="i")
    assert df.values.tolist() == [[1, 2], [3, 4], [5, 6]]


def test_csv_blank_line_in_the_middle_is_a_field_count_error(tmp_path):
    """A blank line between rows is named; blank lines at the end are tolerated."""
    path = _csv(tmp_path, "u,i\n1,2\n\n3,4\n")
    with pytest.raises(DataFormatError, match=re.escape(f"{path}, line 3: ")):
        read_table(path, user_col="u", item_col="i")
    assert len(read_table(_csv(tmp_path, "u,i\n1,2\n3,4\n\n\n", "t.csv"), user_col="u",
                          item_col="i")) == 2  # fmt: skip


def test_tsv_and_sniffed_tables_check_field_counts_too(tmp_path):
    """The check does not depend on the separator: tab, and ';' sniffed from a .txt name."""
    tsv = _csv(tmp_path, "u\ti\n1\t2\n3\t4\t5\n", "x.tsv")
    txt = _csv(tmp_path, "u;i\n1;2\n3;4;5\n", "x.txt")
    for path in (tsv, txt):
        with pytest.raises(DataFormatError, match=re.escape(f"{path}, line 3: ")):
            read_table(path, user_col="u", item_col="i")
    ok = read_table(_csv(tmp_path, "u;i\n1;2\n3;4\n", "ok.txt"), user_col="u", item_col="i")
    assert ok.values.tolist() == [[1, 2], [3, 4]]


# --------------------------------------------------------- item 2: ids are decimal int64
@pytest.mark.parametrize(
    ("token", "problem"),
    [
        ("9223372036854775808", "'user' must fit in int64 (at most 9223372036854775807), got "
                                "9223372036854775808"),
        (str(10**20), "'user' must fit in int64 (at most 9223372036854775807), got "
                      "100000000000000000000"),
        ("1e3", "'user' must be an integer written in decimal digits, got 1e3"),
        ("1.0", "'user' must be an integer written in decimal digits, got 1.0"),
        ("0x1F", "missing or non-numeric 'user' field"),
    ],
)  # fmt: skip
def test_csv_ids_outside_int64_or_in_float_notation_are_refused(tmp_path, token, problem):
    """No wrap-around to -2**63, no 1e3 -> 1000: the token is quoted with its line."""
    path = _csv(tmp_path, f"u,i\n1,2\n{token},3\n")
    with pytest.raises(DataFormatError, match=re.escape(f"{path}, line 3: ")) as info:
        read_table(path, user_col="u", item_col="i")
    assert problem in str(info.value)


def test_csv_largest_int64_id_is_accepted(tmp_path):
    """2**63 - 1 itself is a valid id and round-trips exactly."""
    df = read_table(_csv(tmp_path, f"u,i\n{INT64_MAX},3\n0,{INT64_MAX}\n"), user_col="u",
                    item_col="i")  # fmt: skip
    assert df.values.tolist() == [[INT64_MAX, 3], [0, INT64_MAX]]


@pytest.mark.parametrize(
    ("reader", "line", "problem"),
    [
        (read_ml1m_ratings, "1e3::10::5::978300760", "'user' must be an integer written in "
                                                     "decimal digits, got 1e3"),
        (read_ml1m_ratings, "9223372036854775808::10::5::978300760", "'user' must fit in int64"),
        (read_ml1m_ratings, "2::10::5::1e9", "'timestamp' must be an integer written in decimal "
                                             "digits, got 1e9"),
        (read_ml100k, "1e3\t10\t5\t978300760", "'user' must be an integer written in decimal "
                                               "digits, got 1e3"),
        (read_ml100k, f"2\t{10**20}\t5\t978300760", "'item' must fit in int64"),
        (read_ml100k, "2\t10.0\t5\t978300760", "'item' must be an integer written in decimal "
                                               "digits, got 10.0"),
    ],
)  # fmt: skip
def test_rating_files_refuse_float_notation_and_overflow(tmp_path, reader, line, problem):
    """ratings.dat / u.data: '1e3' is not user 1000, and 2**63 does not wrap around."""
    sep = "::" if reader is read_ml1m_ratings else "\t"
    good = sep.join(["1", "10", "5", "978300760"])
    path = tmp_path / "ratings.dat"
    path.write_text(f"{good}\n{line}\n")
    with pytest.raises(DataFormatError, match=re.escape(f"{path}, line 2: ")) as info:
        reader(path)
    assert problem in str(info.value)


@pytest.mark.parametrize("big", ["9223372036854775808", str(10**20), "9" * 40])
def test_lightgcn_ids_outside_int64_are_refused_not_clamped(tmp_path, big):
    """NumPy would clamp 2**63 to 2**63 - 1 (or overflow); the reader names the line instead."""
    for text, line in ((f"0 1 2\n{big} 3\n", 2), (f"0 1 2\n1 2\n2 5 {big}\n", 3)):
        path = tmp_path / "train.txt"
        path.write_text(text)
        with pytest.raises(DataFormatError, match=re.escape(f"{path}, line {line}: ")) as info:
            read_lightgcn(path)
        assert f"ids must fit in int64 (at most {INT64_MAX}), got {big}" in str(info.value)


def test_lightgcn_largest_int64_id_and_leading_zeros_are_fine(tmp_path):
    """2**63 - 1 is kept exactly; leading zeros do not count against the range."""
    path = tmp_path / "train.txt"
    path.write_text(f"{INT64_MAX} 000000000000000000000001 2\n")
    assert read_lightgcn(path).values.tolist() == [[INT64_MAX, 1], [INT64_MAX, 2]]


# ----------------------------------------------------------- item 5: broken archives
def _zip_bytes(name: str, text: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name, text)
    return buf.getvalue()


def _corrupt_deflate(data: bytes, member: str) -> bytes:
    """Flip bytes inside the compressed stream, keeping the zip headers intact."""
    start = 30 + len(member)  # local file header + name (no extra field from zipfile)
    out = bytearray(data)
    for k in range(start + 10, start + 60):
        out[k] ^= 0xA5
    return bytes(out)


def test_bad_csv_zip_names_the_file_and_what_to_do(tmp_path):
    """A .csv.zip that is no zip archive: DataFormatError naming it, not BadZipFile."""
    path = tmp_path / "x.csv.zip"
    path.write_bytes(b"PK\x03\x04 this is not really a zip archive")
    with pytest.raises(DataFormatError, match=re.escape(f"{str(path)!r} is not a readable zip")):
        read_table(path, user_col="u", item_col="i")


def test_truncated_csv_gz_names_the_file_and_what_to_do(tmp_path):
    """A half-written .csv.gz: DataFormatError naming it, not EOFError."""
    data = gzip.compress(b"u,i\n" + b"".join(b"%d,%d\n" % (k, k + 1) for k in range(5000)))
    path = tmp_path / "x.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match=re.escape(f"{str(path)!r} is not a readable gzip")):
        read_table(path, user_col="u", item_col="i")


def test_csv_zip_bz2_and_xz_tables_still_read(tmp_path):
    """The compressions pandas inferred from the name keep working (detected by magic bytes)."""
    text = "u,i\n1,2\n3,4\n"
    (tmp_path / "x.csv.zip").write_bytes(_zip_bytes("x.csv", text))
    (tmp_path / "x.csv.bz2").write_bytes(bz2.compress(text.encode()))
    (tmp_path / "x.csv.xz").write_bytes(lzma.compress(text.encode()))
    (tmp_path / "x.csv.gz").write_bytes(gzip.compress(text.encode()))
    for name in ("x.csv.zip", "x.csv.bz2", "x.csv.xz", "x.csv.gz"):
        df = read_table(tmp_path / name, user_col="u", item_col="i")
        assert df.values.tolist() == [[1, 2], [3, 4]], name


def test_corrupt_ml100k_zip_is_a_data_format_error_with_the_fix(tmp_path):
    """Damaged compressed data (zlib.error / bad CRC) is wrapped, naming file and remedy."""
    rows = "".join(f"{u}\t{u % 7}\t3\t8812{u}\n" for u in range(3000))
    path = tmp_path / "ml-100k.zip"
    path.write_bytes(_corrupt_deflate(_zip_bytes("ml-100k/u.data", rows), "ml-100k/u.data"))
    with pytest.raises(DataFormatError) as info:
        read_ml100k(path)
    message = str(info.value)
    assert f"{str(path)!r} is not a readable zip archive" in message
    assert "Delete it and download it again" in message
    assert "download=True" in message


def test_lightgcn_reader_still_refuses_zip_archives(tmp_path):
    """LightGCN files are plain text; a zip is named, not guessed at."""
    path = tmp_path / "train.zip"
    path.write_bytes(_zip_bytes("train.txt", "0 1 2\n"))
    with pytest.raises(DataFormatError, match=re.escape("this reader expects a plain or .gz file")):
        read_lightgcn(path)


def test_int_columns_come_back_int64(tmp_path):
    """The strict checks do not change the well-formed result."""
    df = read_table(_csv(tmp_path, "u,i,r\n1,2,4.5\n3,4,1\n"), user_col="u", item_col="i",
                    rating_col="r")  # fmt: skip
    assert df.dtypes.tolist() == [np.int64, np.int64, np.float64]
    assert df["rating"].tolist() == [4.5, 1.0]
