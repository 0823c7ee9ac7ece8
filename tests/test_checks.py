"""The shared argument checks: type, range, seed and device, with the argument named."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from ciess_env.checks import check_device, check_int, check_real_array, check_seed
from ciess_env.errors import InvalidArgumentError, InvalidTypeError


@pytest.mark.parametrize("value", [True, 1.5, 2.0, "3", None, 1j])
def test_check_int_refuses_non_integers_naming_the_argument(value):
    """Bools, floats (even 2.0), strings, complex and None (unless allowed) are TypeErrors."""
    with pytest.raises(InvalidTypeError, match=re.escape(f"`n` must be an integer, got {value!r}")):
        check_int(value, "n")


def test_check_int_range_and_numpy_integers():
    """NumPy integers pass as int; a value out of range is named with the bound and the hint."""
    assert check_int(np.int64(5), "n", minimum=1) == 5
    assert type(check_int(np.int32(5), "n")) is int
    assert check_int(None, "n", allow_none=True) is None
    with pytest.raises(
        InvalidArgumentError, match=re.escape("`n` must be an integer >= 1, got 0. why")
    ):
        check_int(0, "n", minimum=1, hint="why")
    with pytest.raises(
        InvalidArgumentError, match=re.escape("`n` must be an integer in [1, 3], got 4.")
    ):
        check_int(4, "n", minimum=1, maximum=3)


@pytest.mark.parametrize(("seed", "cls"), [(-1, InvalidArgumentError), (1.5, InvalidTypeError)])
def test_check_seed(seed, cls):
    """Negative or float seeds fail with the argument's name; None means fresh entropy."""
    with pytest.raises(cls, match="`split_seed` must be an integer"):
        check_seed(seed, "split_seed")
    assert check_seed(None, "split_seed") is None
    assert check_seed(2**70, "split_seed") == 2**70


def test_check_device_bogus_and_unavailable():
    """'bogus' names the argument; 'cuda' without CUDA says so and how to fix it."""
    assert check_device("cpu") == torch.device("cpu")
    with pytest.raises(
        InvalidArgumentError, match=re.escape("`device` must be a torch device such as 'cpu'")
    ):
        check_device("bogus")
    with pytest.raises(InvalidTypeError, match=re.escape("`device` must be a string")):
        check_device(3)
    if not torch.cuda.is_available():
        with pytest.raises(
            InvalidArgumentError, match=re.escape("but CUDA is not available on this machine")
        ):
            check_device("cuda")
    else:
        with pytest.raises(InvalidArgumentError, match="CUDA device"):
            check_device(f"cuda:{torch.cuda.device_count()}")


@pytest.mark.parametrize(
    ("value", "what"),
    [
        (np.array([True, False]), "got bool entries"),
        (np.array([0.5 + 1j, 0.0]), "got complex entries"),
        (np.array(["0.5", "1"]), "got string entries"),
        ("0.5", "got a string '0.5'"),
        ([object(), 1.0], "got object entries"),
    ],
)
def test_check_real_array_refuses_silent_casts(value, what):
    """Bool, complex, string and object arrays are not actions."""
    with pytest.raises(InvalidTypeError, match=re.escape(what)):
        check_real_array(value, "action")


def test_check_real_array_tensors():
    """A tensor that requires grad is refused with the fix; a plain tensor converts."""
    with pytest.raises(InvalidTypeError, match=re.escape("pass `action.detach()`")):
        check_real_array(torch.zeros(3, requires_grad=True), "action")
    out = check_real_array(torch.tensor([0.5, -1.0]), "action")
    assert out.dtype == np.float64
    assert out.tolist() == [0.5, -1.0]
    assert check_real_array(np.array([1, 2], dtype=np.int32), "action").tolist() == [1.0, 2.0]
