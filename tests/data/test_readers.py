import gzip
import logging
import re
import zipfile

import numpy as np
import pandas as pd
import pytest

from ciess_env.data import read_lightgcn, read_ml1m_ratings, read_ml100k, read_table
from ciess_env.errors import DataFormatError, DataNotFoundError

ML1M_TEXT = "1::10::5::978300760\n1::20::3::978302109\n2::10::4::978301968\n3::30::1::978300275\n"
ML100K_TEXT = "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n"


def _write(path, text: str, *, gz: bool = False):
    data = text.encode("latin-1")
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def test_ml1m_plain_file_parses_all_columns(tmp_path):
    """A 4-line ratings.dat gives 4 int64 rows with the right values."""
    df = read_ml1m_ratings(_write(tmp_path / "ratings.dat", ML1M_TEXT))
    assert list(df.columns) == ["user", "item", "rating", "timestamp"]
    assert df.dtypes.tolist() == [np.int64] * 4
    assert df["user"].tolist() == [1, 1, 2, 3]
    assert df["item"].tolist() == [10, 20, 10, 30]
    assert df["rating"].tolist() == [5, 3, 4, 1]
    assert df["timestamp"].iloc[0] == 978300760


def test_ml1m_gzip_and_zip_forms_equal_the_plain_file(tmp_path):
    """ratings.dat.gz (any name) and ml-1m.zip (member ml-1m/ratings.dat) read the same."""
    plain = read_ml1m_ratings(_write(tmp_path / "ratings.dat", ML1M_TEXT))
    gz = read_ml1m_ratings(_write(tmp_path / "whatever.bin", ML1M_TEXT, gz=True))
    archive = tmp_path / "ml-1m.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ml-1m/movies.dat", "1::Toy Story (1995)::Animation\n")
        zf.writestr("ml-1m/ratings.dat", ML1M_TEXT)
    zipped = read_ml1m_ratings(archive)
    pd.testing.assert_frame_equal(plain, gz)
    pd.testing.assert_frame_equal(plain, zipped)


def test_ml1m_min_rating_keeps_only_high_ratings(tmp_path):
    """min_rating=4 keeps the two ratings ≥ 4."""
    df = read_ml1m_ratings(_write(tmp_path / "r.dat", ML1M_TEXT), min_rating=4)
    assert df["rating"].tolist() == [5, 4]


def test_ml1m_windows_line_endings_and_trailing_blank_lines_are_fine(tmp_path):
    """CRLF line ends and blank lines at the end of the file are accepted."""
    df = read_ml1m_ratings(_write(tmp_path / "r.dat", ML1M_TEXT.replace("\n", "\r\n") + "\r\n\n"))
    assert len(df) == 4


def test_duplicate_pairs_are_dropped_and_counted(tmp_path, caplog):
    """A repeated (user, item) pair is kept once (first occurrence) and logged."""
    text = ML1M_TEXT + "1::10::2::978300999\n"
    with caplog.at_level(logging.WARNING, logger="ciess_env.data.readers"):
        df = read_ml1m_ratings(_write(tmp_path / "r.dat", text))
    assert len(df) == 4
    assert df["rating"].iloc[0] == 5
    assert "dropped 1 duplicate (user, item) pairs" in caplog.text


def test_missing_file_names_the_path(tmp_path):
    """A missing file raises DataNotFoundError (also a FileNotFoundError) naming it."""
    path = tmp_path / "nope" / "ratings.dat"
    with pytest.raises(
        DataNotFoundError, match=re.escape(f"Data file {str(path)!r} does not exist.")
    ):
        read_ml1m_ratings(path)
    with pytest.raises(FileNotFoundError):
        read_lightgcn(path)


@pytest.mark.parametrize(
    ("bad_line", "problem"),
    [
        ("4::40::5", "missing or non-numeric 'timestamp' field: '4::40::5'"),
        ("4::40::5::9::9", "wrong number of fields"),
        ("4::abc::5::978300760", "missing or non-numeric 'item' field: '4::abc::5::978300760'"),
        ("4::-40::5::978300760", "'item' id must be non-negative, got -40"),
        ("4.5::40::5::978300760", "'user' must be an integer, got 4.5"),
        ("", "missing or non-numeric 'user' field"),
    ],
)
def test_malformed_ml1m_line_names_file_and_line(tmp_path, bad_line, problem):
    """A bad third line raises DataFormatError naming the file, line 3 and the problem."""
    lines = ML1M_TEXT.splitlines()
    text = "\n".join([*lines[:2], bad_line, *lines[2:]]) + "\n"
    path = _write(tmp_path / "ratings.dat", text)
    with pytest.raises(
        DataFormatError, match=re.escape(f"Malformed data in {path}, line 3: ")
    ) as info:
        read_ml1m_ratings(path)
    assert problem in str(info.value)


def test_empty_file_is_refused(tmp_path):
    """A file without any line raises DataFormatError saying it has no interactions."""
    path = _write(tmp_path / "ratings.dat", "\n")
    with pytest.raises(DataFormatError, match="contains no interactions"):
        read_ml1m_ratings(path)


def test_min_rating_that_removes_everything_is_refused(tmp_path):
    """min_rating above every rating raises DataFormatError."""
    with pytest.raises(DataFormatError, match=re.escape("has a rating ≥ 6")):
        read_ml1m_ratings(_write(tmp_path / "r.dat", ML1M_TEXT), min_rating=6)


def test_corrupt_gzip_and_zip_without_member_are_refused(tmp_path):
    """A truncated .gz and a zip lacking ratings.dat raise DataFormatError naming the file."""
    good = gzip.compress(ML1M_TEXT.encode() * 100)
    path = tmp_path / "ratings.dat.gz"
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataFormatError, match="not a readable gzip file"):
        read_ml1m_ratings(path)
    archive = tmp_path / "ml-1m.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ml-1m/users.dat", "1::F::1::10::48067\n")
    with pytest.raises(DataFormatError, match=re.escape("has no member 'ratings.dat'")):
        read_ml1m_ratings(archive)


def test_ml100k_plain_and_zip(tmp_path):
    """u.data and ml-100k.zip (member ml-100k/u.data) parse to the same 3 rows."""
    plain = read_ml100k(_write(tmp_path / "u.data", ML100K_TEXT))
    archive = tmp_path / "ml-100k.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ml-100k/u.data", ML100K_TEXT)
        zf.writestr("ml-100k/u1.base", "1\t1\t1\t1\n")
    zipped = read_ml100k(archive)
    pd.testing.assert_frame_equal(plain, zipped)
    assert plain["user"].tolist() == [196, 186, 22]
    assert plain["item"].tolist() == [242, 302, 377]


def test_ml100k_bad_line_names_line(tmp_path):
    """A space-separated line in the tab-separated file is reported with its number."""
    path = _write(tmp_path / "u.data", ML100K_TEXT + "1 2 3 4\n")
    with pytest.raises(DataFormatError, match=re.escape(f"{path}, line 4")):
        read_ml100k(path)


def test_lightgcn_ragged_lines_plain_and_gz(tmp_path):
    """Lines of different lengths, a user without items and blank lines all parse."""
    text = "0 5 3 9\n1 3\n\n2\n3 1 2 3 4 5 6 7 8 9 10\n"
    for path in (
        _write(tmp_path / "train.txt", text),
        _write(tmp_path / "t.txt.gz", text, gz=True),
    ):
        df = read_lightgcn(path)
        assert df["user"].tolist() == [0, 0, 0, 1] + [3] * 10
        assert df["item"].tolist() == [5, 3, 9, 3, *range(1, 11)]
        assert df.dtypes.tolist() == [np.int64, np.int64]


def test_lightgcn_without_trailing_newline_and_with_tabs(tmp_path):
    """Tabs and a missing final newline are tolerated."""
    df = read_lightgcn(_write(tmp_path / "t.txt", "7\t1 2\n8 3"))
    assert df.values.tolist() == [[7, 1], [7, 2], [8, 3]]


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("0 1 2\n1 2 x\n", 2, "got 'x'"),
        ("0 1 2\n1 2\n2 -3\n", 3, "ids must be non-negative, got a '-'"),
        ("0 1 2\n1 2.5\n", 2, "got '.'"),
    ],
)
def test_lightgcn_bad_character_names_line(tmp_path, text, line, problem):
    """A non-digit character raises DataFormatError with file, line number and the character."""
    path = _write(tmp_path / "train.txt", text)
    with pytest.raises(DataFormatError, match=re.escape(f"{path}, line {line}: ")) as info:
        read_lightgcn(path)
    assert problem in str(info.value)


def test_lightgcn_file_with_only_users_is_empty(tmp_path):
    """Users without any item give no pair, which is refused as empty data."""
    with pytest.raises(DataFormatError, match="contains no interactions"):
        read_lightgcn(_write(tmp_path / "test.txt", "0\n1\n"))


def test_read_table_csv_tsv_and_parquet(tmp_path):
    """CSV, TSV and Parquet with named columns give the same validated frame."""
    frame = pd.DataFrame({"uid": [3, 1, 2, 1], "iid": [7, 8, 9, 8], "stars": [4.5, 2.0, 5.0, 1.0]})
    frame.to_csv(tmp_path / "x.csv", index=False)
    frame.to_csv(tmp_path / "x.tsv", sep="\t", index=False)
    frame.to_parquet(tmp_path / "x.parquet")
    frames = [
        read_table(tmp_path / name, user_col="uid", item_col="iid", rating_col="stars")
        for name in ("x.csv", "x.tsv", "x.parquet")
    ]
    for df in frames:
        pd.testing.assert_frame_equal(df, frames[0])
    assert frames[0]["user"].tolist() == [3, 1, 2]  # (1, 8) twice: deduplicated
    assert frames[0]["rating"].tolist() == [4.5, 2.0, 5.0]
    high = read_table(
        tmp_path / "x.csv", user_col="uid", item_col="iid", rating_col="stars", min_rating=4
    )
    assert high["item"].tolist() == [7, 9]


def test_read_table_errors_name_column_and_line(tmp_path):
    """A missing column and a non-integer id are reported with the column / line."""
    (tmp_path / "x.csv").write_text("uid,iid\n1,2\n3,4.5\n")
    (tmp_path / "y.csv").write_text("uid,iid\n1,2\n3,4\n")
    with pytest.raises(
        DataFormatError, match=re.escape("has no column 'user'; its columns are uid, iid")
    ):
        read_table(tmp_path / "x.csv", user_col="user", item_col="iid")
    with pytest.raises(
        DataFormatError, match=re.escape("line 3: 'item' must be an integer, got 4.5")
    ):
        read_table(tmp_path / "x.csv", user_col="uid", item_col="iid")
    with pytest.raises(ValueError, match=re.escape("`min_rating` needs ratings")):
        read_table(tmp_path / "y.csv", user_col="uid", item_col="iid", min_rating=3)
    with pytest.raises(ValueError, match=re.escape("must be different columns, got 'uid', 'uid'")):
        read_table(tmp_path / "y.csv", user_col="uid", item_col="uid")
