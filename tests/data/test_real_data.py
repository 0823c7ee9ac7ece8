"""Tests on the real data sets (run with CIESS_DATA_DIR=/work/shared/data or a folder like it)."""

import re

import numpy as np
import pytest

from ciess_env.data import load_dataset, read_ml1m_ratings
from ciess_env.errors import DatasetIntegrityError

pytestmark = pytest.mark.real_data

PARTIAL = "ml-1m/ratings.users0001-2999.PARTIAL.dat.gz"


def _check_split(data, n_users, n_items, n_interactions):
    assert (data.n_users, data.n_items, data.n_interactions) == (n_users, n_items, n_interactions)
    sizes = np.stack(
        [np.bincount(p.users, minlength=n_users) for p in (data.train, data.validation, data.test)],
        axis=1,
    )
    exact = sizes.sum(axis=1, keepdims=True) * np.array([[0.5, 0.25, 0.25]])
    assert (np.abs(sizes - exact) < 1).all()
    assert sizes[:, 0].min() >= 1


def test_ml1m_from_the_lightgcn_copy(real_data_dir):
    """ml-1m loads from ml-1m-lightgcn/ with 6,040 / 3,706 / 1,000,209 and MovieLens ids."""
    data = load_dataset("ml-1m", data_dir=real_data_dir)
    _check_split(data, 6_040, 3_706, 1_000_209)
    assert data.user_ids[[0, -1]].tolist() == [1, 6040]
    assert data.item_ids[[0, -1]].tolist() == [1, 3952]


def test_ml100k(real_data_dir):
    """ml-100k loads with 943 / 1,682 / 100,000."""
    _check_split(load_dataset("ml-100k", data_dir=real_data_dir), 943, 1_682, 100_000)


def test_yelp2018(real_data_dir):
    """yelp2018 (train ∪ test) loads with 31,668 / 38,048 / 1,561,406."""
    _check_split(load_dataset("yelp2018", data_dir=real_data_dir), 31_668, 38_048, 1_561_406)


def test_yelp2018_keep_test_keeps_the_lightgcn_test_split(real_data_dir):
    """keep_test=True keeps LightGCN's 324,147 test pairs and carves validation from train."""
    data = load_dataset("yelp2018", data_dir=real_data_dir, keep_test=True)
    assert len(data.test) == 324_147
    assert len(data.train) + len(data.validation) == 1_237_259


def test_partial_ml1m_ratings_parse(real_data_dir):
    """The partial ratings file parses to 487,650 ratings by 2,999 users of 3,615 items."""
    df = read_ml1m_ratings(real_data_dir / PARTIAL)
    assert len(df) == 487_650
    assert df["user"].nunique() == 2_999
    assert df["item"].nunique() == 3_615
    assert df["user"].agg(["min", "max"]).tolist() == [1, 2999]


def test_partial_ml1m_ratings_are_refused_as_ml1m(real_data_dir, tmp_path):
    """Placed as ml-1m/ratings.dat.gz, the partial file is refused with found vs expected counts."""
    (tmp_path / "ml-1m").mkdir()
    target = tmp_path / "ml-1m" / "ratings.dat.gz"
    target.symlink_to(real_data_dir / PARTIAL)
    expected = (
        f"ml-1m at {str(target)!r} is incomplete or corrupt: found 2,999 users / 3,615 items / "
        "487,650 interactions, expected 6,040 / 3,706 / 1,000,209."
    )
    with pytest.raises(DatasetIntegrityError, match=re.escape(expected)):
        load_dataset("ml-1m", data_dir=tmp_path)
