"""BudgetLog never loses or bends data: dotted names, valid JSON, integer sizes only."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from ciess_env.budget_log import BudgetLog
from ciess_env.errors import InvalidArgumentError, InvalidTypeError


def _log(size: int) -> BudgetLog:
    log = BudgetLog(n_users=3, n_items=2, d_max=128)
    log.record(
        episode=0, step=1, user_sizes=np.full(3, size), item_sizes=np.full(2, size),
        sparsity=1 - size / 128, mean_quality=0.5,
    )  # fmt: skip
    return log


def test_dotted_names_do_not_collide(tmp_path):
    """save('run.seed0') and save('run.seed1') used to both write run.npz / run.json."""
    first = _log(8).save(tmp_path / "run.seed0")
    second = _log(16).save(tmp_path / "run.seed1")
    assert first == tmp_path / "run.seed0.npz"
    assert second == tmp_path / "run.seed1.npz"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "run.seed0.json", "run.seed0.npz", "run.seed1.json", "run.seed1.npz",
    ]  # fmt: skip
    assert int(BudgetLog.load(tmp_path / "run.seed0")[0].user_sizes[0]) == 8
    assert int(BudgetLog.load(tmp_path / "run.seed1.json")[0].user_sizes[0]) == 16
    assert int(BudgetLog.load(first)[0].user_sizes[0]) == 8


def test_json_sidecar_is_valid_json_without_bare_nan(tmp_path):
    """Unrecorded metrics are NaN in memory; the JSON says null (strict parsers accept it)."""
    _log(8).save(tmp_path / "log")
    text = (tmp_path / "log.json").read_text()

    def refuse(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")

    meta = json.loads(text, parse_constant=refuse)
    assert meta["entries"][0]["recall_20"] is None
    assert meta["entries"][0]["mean_quality"] == 0.5
    loaded = BudgetLog.load(tmp_path / "log")
    assert np.isnan(loaded[0].recall_20)  # the npz keeps the exact NaN


WHOLE = "`user_sizes` must be whole numbers, got "
INTS = "`user_sizes` must hold integers, got dtype "


@pytest.mark.parametrize(
    ("sizes", "cls", "text"),
    [
        (np.array([127.9, 8, 8]), InvalidArgumentError, WHOLE + "127.9"),
        (np.array([np.nan, 8, 8]), InvalidArgumentError, WHOLE + "nan"),
        (np.array([True, True, False]), InvalidTypeError, INTS + "bool"),
        (np.array(["8", "8", "8"]), InvalidTypeError, INTS + "<U1"),
    ],
)
def test_record_refuses_sizes_that_are_not_integers(sizes, cls, text):
    """127.9 used to be stored as 127; now it is an error naming the array."""
    log = BudgetLog(n_users=3, n_items=2, d_max=128)
    with pytest.raises(cls, match=re.escape(text)):
        log.record(episode=0, step=1, user_sizes=sizes, item_sizes=np.full(2, 8),
                   sparsity=0.9, mean_quality=0.5)  # fmt: skip
    log.record(episode=0, step=1, user_sizes=np.array([8.0, 9.0, 10.0]), item_sizes=np.full(2, 8),
               sparsity=0.9, mean_quality=0.5)  # fmt: skip
    assert log[0].user_sizes.tolist() == [8, 9, 10]
