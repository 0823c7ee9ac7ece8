import gzip
import logging
import re
from pathlib import Path

import numpy as np
import platformdirs
import pytest

from ciess_env.data import (
    CANONICAL_STATS,
    DatasetStats,
    canonical_name,
    from_pairs,
    load_dataset,
    resolve_data_dir,
)
from ciess_env.errors import (
    DataNotFoundError,
    DatasetIntegrityError,
    UnknownNameError,
)


def _ml100k_rows(n_users: int = 6, n_items: int = 8) -> str:
    rows = [
        f"{u}\t{i}\t{1 + (u * i) % 5}\t8812509{u}{i}"
        for u in range(1, n_users + 1)
        for i in range(100, 100 + n_items)
    ]
    return "\n".join(rows) + "\n"


def _lightgcn_pair(root: Path, folder: str, *, gz: bool = False) -> None:
    """8 users × 10 items, 6 train and 2 test items each (user 0 has no test items)."""
    (root / folder).mkdir(parents=True)
    train = "\n".join(f"{u} " + " ".join(str((u + k) % 10) for k in range(6)) for u in range(8))
    test = "\n".join(
        f"{u}" + ("" if u == 0 else " " + " ".join(str((u + k) % 10) for k in (6, 7)))
        for u in range(8)
    )
    for name, text in (("train.txt", train), ("test.txt", test)):
        data = (text + "\n").encode()
        if gz:
            (root / folder / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (root / folder / name).write_bytes(data)


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("ML1M", "ml-1m"),
        ("movielens-1m", "ml-1m"),
        ("ml_100k", "ml-100k"),
        ("MovieLens 100K", "ml-100k"),
        ("Yelp", "yelp2018"),
        ("yelp-2018", "yelp2018"),
        ("Synthetic", "synthetic"),
    ],
)
def test_aliases_map_to_canonical_names(alias, canonical):
    """Case, dashes, underscores and spaces are ignored; common aliases are accepted."""
    assert canonical_name(alias) == canonical


def test_unknown_name_suggests_close_matches():
    """'ml-1n' is refused with the valid names and a suggestion of 'ml-1m'."""
    with pytest.raises(
        UnknownNameError,
        match=re.escape(
            "Unknown data set 'ml-1n'. Valid names: ml-100k, ml-1m, synthetic, yelp2018. "
            "Did you mean 'ml-1m'"
        ),
    ):
        load_dataset("ml-1n")


def test_data_dir_resolution_order(tmp_path, monkeypatch):
    """data_dir= beats $CIESS_DATA_DIR, which beats the platformdirs user cache."""
    monkeypatch.setenv("CIESS_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv("CIESS_DATA_DIR")
    assert resolve_data_dir() == Path(platformdirs.user_cache_dir("ciess-env")) / "data"


def test_missing_data_names_every_path_url_and_fix(tmp_path):
    """DataNotFoundError lists all candidate paths, the download URL, data_dir and download=True."""
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("ml-1m", data_dir=tmp_path)
    message = str(info.value)
    for rel in (
        "ml-1m/ratings.dat",
        "ml-1m/ratings.dat.gz",
        "ml-1m.zip",
        "ml-1m-lightgcn/train.txt",
        "ml-1m-lightgcn/train.txt.gz",
        "ml-1m-lightgcn/test.txt",
        "ml-1m-lightgcn/test.txt.gz",
    ):
        assert str(tmp_path / rel) in message
    assert "https://files.grouplens.org/datasets/movielens/ml-1m.zip" in message
    assert "download=True" in message
    assert "pass data_dir=... or set CIESS_DATA_DIR" in message
    assert "(from the data_dir= argument)" in message


def test_env_var_is_used_and_named_in_errors(tmp_path, monkeypatch):
    """With $CIESS_DATA_DIR set and no data_dir=, the env folder is searched and named."""
    monkeypatch.setenv("CIESS_DATA_DIR", str(tmp_path))
    with pytest.raises(
        DataNotFoundError, match=re.escape(f"not found in {str(tmp_path)!r} (from $CIESS_DATA_DIR)")
    ):
        load_dataset("yelp2018")


def test_truncated_copy_is_refused_with_counts_and_path(tmp_path):
    """A u.data with 48 ratings is refused as ml-100k, naming found and expected counts."""
    (tmp_path / "ml-100k").mkdir()
    path = tmp_path / "ml-100k" / "u.data"
    path.write_text(_ml100k_rows())
    expected = (
        f"ml-100k at {str(path)!r} is incomplete or corrupt: found 6 users / 8 items / "
        "48 interactions, expected 943 / 1,682 / 100,000."
    )
    with pytest.raises(DatasetIntegrityError, match=re.escape(expected)):
        load_dataset("ml-100k", data_dir=tmp_path)


def test_named_data_set_loads_indexes_and_splits(tmp_path, monkeypatch):
    """A complete (per the patched stats) ml-100k is indexed by sorted raw id and split 50/25/25."""
    monkeypatch.setitem(CANONICAL_STATS, "ml-100k", DatasetStats(6, 8, 48))
    (tmp_path / "ml-100k").mkdir()
    (tmp_path / "ml-100k" / "u.data").write_text(_ml100k_rows())
    data = load_dataset("ML-100K", data_dir=tmp_path)
    assert data.name == "ml-100k"
    assert data.user_ids.tolist() == [1, 2, 3, 4, 5, 6]
    assert data.item_ids.tolist() == list(range(100, 108))
    assert (len(data.train), len(data.validation), len(data.test)) == (24, 12, 12)
    assert np.bincount(data.train.users).tolist() == [4] * 6
    again = load_dataset("ml-100k", data_dir=tmp_path)
    assert np.array_equal(again.train.items, data.train.items)
    other = load_dataset("ml-100k", data_dir=tmp_path, split_seed=7)
    assert not np.array_equal(other.train.items, data.train.items)


def test_min_rating_filters_before_indexing(tmp_path, monkeypatch):
    """min_rating=4 keeps only pairs rated ≥ 4, counted against the unfiltered stats."""
    monkeypatch.setitem(CANONICAL_STATS, "ml-100k", DatasetStats(6, 8, 48))
    (tmp_path / "ml-100k").mkdir()
    (tmp_path / "ml-100k" / "u.data").write_text(_ml100k_rows())
    data = load_dataset("ml-100k", data_dir=tmp_path, min_rating=4)
    n_high = sum(1 + (u * i) % 5 >= 4 for u in range(1, 7) for i in range(100, 108))
    assert data.n_interactions == n_high


def test_lightgcn_pair_resplit_and_keep_test(tmp_path, monkeypatch):
    """A yelp2018 pair is re-split from the union by default, or keeps its test with keep_test."""
    monkeypatch.setitem(CANONICAL_STATS, "yelp2018", DatasetStats(8, 10, 62))
    _lightgcn_pair(tmp_path, "yelp2018", gz=True)
    resplit = load_dataset("yelp2018", data_dir=tmp_path)
    assert resplit.n_interactions == 62
    assert np.bincount(resplit.test.users).tolist() == [1] + [2] * 7  # 6 → 3/2/1, 8 → 4/2/2
    kept = load_dataset("yelp2018", data_dir=tmp_path, keep_test=True)
    assert len(kept.test) == 14
    assert 0 not in kept.test.users
    assert np.bincount(kept.validation.users).tolist() == [2] * 8  # 6 train → 4 + 2
    assert np.bincount(kept.train.users).tolist() == [4] * 8


def test_ml1m_lightgcn_copy_gets_movielens_ids(tmp_path, monkeypatch):
    """The ML-1M LightGCN copy (ids − 1) is shifted back to MovieLens ids (1-based)."""
    monkeypatch.setitem(CANONICAL_STATS, "ml-1m", DatasetStats(8, 10, 62))
    _lightgcn_pair(tmp_path, "ml-1m-lightgcn")
    data = load_dataset("ml-1m", data_dir=tmp_path)
    assert data.user_ids.tolist() == list(range(1, 9))
    assert data.item_ids.tolist() == list(range(1, 11))


def test_bad_ratings_file_falls_back_to_a_complete_copy(tmp_path, monkeypatch, caplog):
    """A truncated ml-1m/ratings.dat is skipped (logged) when a complete LightGCN copy exists."""
    monkeypatch.setitem(CANONICAL_STATS, "ml-1m", DatasetStats(8, 10, 62))
    _lightgcn_pair(tmp_path, "ml-1m-lightgcn")
    (tmp_path / "ml-1m").mkdir()
    (tmp_path / "ml-1m" / "ratings.dat").write_text("1::1::5::1\n2::2::4::2\n")
    with caplog.at_level(logging.WARNING, logger="ciess_env.data.datasets"):
        data = load_dataset("ml-1m", data_dir=tmp_path)
    assert data.n_interactions == 62
    assert "found 2 users / 2 items / 2 interactions, expected 8 / 10 / 62" in caplog.text


def test_partial_file_name_is_not_picked_up(tmp_path):
    """A ratings file under another name (e.g. the PARTIAL one) is never used as ml-1m."""
    (tmp_path / "ml-1m").mkdir()
    (tmp_path / "ml-1m" / "ratings.users0001-2999.PARTIAL.dat.gz").write_bytes(
        gzip.compress(b"1::1::5::1\n")
    )
    with pytest.raises(DataNotFoundError, match="Data set 'ml-1m' not found"):
        load_dataset("ml-1m", data_dir=tmp_path)


def test_options_the_source_cannot_honour_are_refused(tmp_path, monkeypatch):
    """min_rating on a LightGCN copy and keep_test on a ratings file raise ValueError."""
    monkeypatch.setitem(CANONICAL_STATS, "yelp2018", DatasetStats(8, 10, 62))
    monkeypatch.setitem(CANONICAL_STATS, "ml-100k", DatasetStats(6, 8, 48))
    _lightgcn_pair(tmp_path, "yelp2018")
    (tmp_path / "ml-100k").mkdir()
    (tmp_path / "ml-100k" / "u.data").write_text(_ml100k_rows())
    with pytest.raises(
        ValueError, match=re.escape("`min_rating` needs rating values, but yelp2018 was read from")
    ):
        load_dataset("yelp2018", data_dir=tmp_path, min_rating=4)
    with pytest.raises(
        ValueError, match=re.escape("`keep_test=True` needs a given train/test split, but ml-100k")
    ):
        load_dataset("ml-100k", data_dir=tmp_path, keep_test=True)


def test_synthetic_through_load_dataset(tmp_path):
    """load_dataset('synthetic', **kwargs) forwards to make_synthetic with ratios and split_seed."""
    data = load_dataset(
        "synthetic", n_users=50, n_items=30, mean_interactions=8, ratios=(0.6, 0.2, 0.2)
    )
    assert (data.name, data.n_users, data.n_items) == ("synthetic", 50, 30)
    assert len(data.train) / data.n_interactions == pytest.approx(0.6, abs=0.05)
    with pytest.raises(
        TypeError,
        match=re.escape("load_dataset('ml-1m') got unexpected keyword arguments ['n_users']"),
    ):
        load_dataset("ml-1m", data_dir=tmp_path, n_users=5)
    with pytest.raises(ValueError, match=re.escape("`min_rating` must be None for 'synthetic'")):
        load_dataset("synthetic", min_rating=3)


def test_invalid_ratios_are_refused_before_any_io(tmp_path):
    """Bad ratios fail fast, even when the data are missing."""
    with pytest.raises(ValueError, match=re.escape("`ratios` must sum to 1")):
        load_dataset("ml-1m", data_dir=tmp_path, ratios=(0.5, 0.5, 0.5))


def test_from_pairs_accepts_string_ids():
    """from_pairs indexes any sortable raw ids, e.g. strings, in sorted order."""
    data = from_pairs(np.array(["b", "a", "b", "c"]), np.array(["x", "y", "y", "x"]), name="t")
    assert data.user_ids.tolist() == ["a", "b", "c"]
    assert data.item_ids.tolist() == ["x", "y"]
    assert data.n_interactions == 4
