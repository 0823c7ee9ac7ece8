"""One error contract: bad input raises a CIESSError that is also the matching builtin."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest

import agents
import ciess_env
from ciess_env.data import load_dataset, read_table
from ciess_env.data.interactions import InteractionData, Interactions
from ciess_env.data.split import check_ratios, split_per_user
from ciess_env.errors import (
    CallOrderError,
    CIESSError,
    InvalidArgumentError,
    InvalidTypeError,
    UnknownIdError,
)
from ciess_env.metrics import evaluate_scores
from ciess_env.recommenders import make_backbone

BUILTINS = {"ValueError", "TypeError", "RuntimeError", "KeyError", "IndexError", "LookupError"}


def _package_files() -> list[Path]:
    roots = [Path(ciess_env.__file__).parent, Path(agents.__file__).parent]
    return sorted(p for root in roots for p in root.rglob("*.py"))


def test_no_module_raises_a_bare_builtin_error():
    """Every `raise ValueError(...)`-style statement uses a CIESSError class instead."""
    top = Path(ciess_env.__file__).parent.parent
    offenders = []
    for path in _package_files():
        rel = path.relative_to(top).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and node.exc is not None:
                exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                if isinstance(exc, ast.Name) and exc.id in BUILTINS:
                    offenders.append(f"{rel}:{node.lineno} raises {exc.id}")
    assert offenders == []


def _tiny() -> InteractionData:
    pairs = Interactions.from_arrays(np.array([0, 1]), np.array([0, 1]))
    return InteractionData("t", 2, 2, pairs, pairs, pairs, np.arange(2), np.arange(2))


@pytest.mark.parametrize(
    ("call", "builtin", "cls", "text"),
    [
        (lambda: check_ratios((0.5, 0.5)), ValueError, InvalidArgumentError, "`ratios` must be"),
        (
            lambda: split_per_user(np.array([0.5]), np.array([1])),
            TypeError,
            InvalidTypeError,
            "`users` must hold integer indices",
        ),
        (
            lambda: load_dataset("ml-100k", foo=1),
            TypeError,
            InvalidTypeError,
            "unexpected keyword arguments ['foo']",
        ),
        (
            lambda: evaluate_scores(lambda u: None, _tiny(), "train"),
            ValueError,
            InvalidArgumentError,
            "split must be 'validation' or 'test'",
        ),
        (
            lambda: make_backbone("mf", _tiny(), d_max=4, d_min=5),
            ValueError,
            InvalidArgumentError,
            "d_min=5, d_max=4",
        ),
        (
            lambda: _tiny().user_index(np.array([7])),
            KeyError,
            UnknownIdError,
            "Unknown raw user id 7",
        ),
    ],
)
def test_bad_input_errors_are_ciess_errors_and_builtins(call, builtin, cls, text):
    """`except CIESSError` and `except ValueError` (etc.) both catch them; the text is plain."""
    with pytest.raises(cls) as info:
        call()
    assert isinstance(info.value, CIESSError)
    assert isinstance(info.value, builtin)
    assert text in str(info.value)
    assert not str(info.value).startswith(("'", '"'))  # no KeyError-style quoting


def test_read_table_argument_error_is_a_ciess_error(tmp_path):
    """Reader argument checks are part of the contract too."""
    (tmp_path / "x.csv").write_text("u,i\n1,2\n")
    with pytest.raises(InvalidArgumentError, match="must be different columns"):
        read_table(tmp_path / "x.csv", user_col="u", item_col="u")


def test_call_order_error_is_a_runtime_error():
    """Calls out of order (a result before learn) are RuntimeErrors and CIESSErrors."""
    assert issubclass(CallOrderError, RuntimeError)
    assert issubclass(CallOrderError, CIESSError)


@pytest.mark.parametrize(("seed", "cls"), [(-1, InvalidArgumentError), (1.5, InvalidTypeError)])
def test_split_seed_is_checked_before_numpy_sees_it(seed, cls):
    """split_seed=-1 / 1.5 used to end in a numpy traceback; now the argument is named."""
    with pytest.raises(cls, match=re.escape("`split_seed` must be an integer")):
        load_dataset("synthetic", split_seed=seed, n_users=30, n_items=20, mean_interactions=5)
    pairs = np.array([0, 0, 1]), np.array([0, 1, 1])
    with pytest.raises(cls, match=re.escape("`seed` must be an integer")):
        split_per_user(*pairs, seed=seed)
