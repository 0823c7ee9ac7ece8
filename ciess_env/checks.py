"""Argument checks shared by every layer, so each bad argument fails at construction.

Each check names the argument, says what it must be and what it got, and how to fix it, and
raises the :mod:`ciess_env.errors` class that also is the matching builtin (``TypeError`` for
a wrong type, ``ValueError`` for a wrong value). Only :mod:`ciess_env.errors` is imported at
module level (torch is imported inside :func:`check_device`), so the data layer can use them.
"""

from __future__ import annotations

import numbers
import sys
from typing import Any

import numpy as np

from ciess_env.errors import InvalidArgumentError, InvalidTypeError

__all__ = ["check_device", "check_int", "check_real_array", "check_seed"]


def check_int(
    value: Any,
    name: str,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    allow_none: bool = False,
    hint: str = "",
) -> int | None:
    """Return ``value`` as an ``int`` if it is an integer in [minimum, maximum].

    ``True``/``False`` and floats (even ``2.0``) are refused: a bool size or a float seed is
    almost always a mistake that Python would otherwise let through as 1, 0 or a truncation.

    Args:
        value: The argument.
        name: Its name, for the message.
        minimum: Smallest allowed value.
        maximum: Largest allowed value.
        allow_none: Accept ``None`` (returned as is).
        hint: Appended to a range error (what the bound means, how to fix it).

    Raises:
        InvalidTypeError: Not an integer.
        InvalidArgumentError: Outside the range.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        kind = "an integer or None" if allow_none else "an integer"
        msg = f"`{name}` must be {kind}, got {value!r} ({type(value).__name__})."
        raise InvalidTypeError(msg)
    number = int(value)
    low = minimum is not None and number < minimum
    high = maximum is not None and number > maximum
    if low or high:
        if minimum is not None and maximum is not None:
            want = f"in [{minimum}, {maximum}]"
        else:
            want = f">= {minimum}" if minimum is not None else f"<= {maximum}"
        msg = f"`{name}` must be an integer {want}, got {number}." + (f" {hint}" if hint else "")
        raise InvalidArgumentError(msg)
    return number


def check_seed(value: Any, name: str, *, allow_none: bool = True) -> int | None:
    """A seed: a non-negative integer (numpy's rule), or ``None`` for fresh entropy."""
    return check_int(
        value, name, minimum=0, allow_none=allow_none,
        hint="Seeds are non-negative integers (numpy.random.default_rng's rule).",
    )  # fmt: skip


def check_device(device: Any, name: str = "device") -> Any:
    """Return ``torch.device(device)`` after checking that this machine can use it.

    ``"cuda"`` without CUDA would otherwise be accepted and fail later, deep in training; a
    misspelt device would fail inside torch.

    Raises:
        InvalidTypeError: Not a string or ``torch.device``.
        InvalidArgumentError: Unknown device, or one this machine does not have.
    """
    import torch

    if not isinstance(device, (str, torch.device)):
        msg = f"`{name}` must be a string such as 'cpu' or 'cuda', got {device!r}."
        raise InvalidTypeError(msg)
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as err:
        msg = f"`{name}` must be a torch device such as 'cpu', 'cuda' or 'cuda:1', got {device!r}."
        raise InvalidArgumentError(msg) from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            msg = (
                f"`{name}` is {str(device)!r}, but CUDA is not available on this machine "
                f"(torch.cuda.is_available() is False); use {name}='cpu'."
            )
            raise InvalidArgumentError(msg)
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            msg = f"`{name}` is {str(device)!r}, but this machine has {count} CUDA device(s)."
            raise InvalidArgumentError(msg)
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            msg = f"`{name}` is {str(device)!r}, but MPS is not available here; use 'cpu'."
            raise InvalidArgumentError(msg)
    elif dev.type != "cpu":
        msg = f"`{name}` must be 'cpu', 'cuda[:N]' or 'mps', got {str(device)!r}."
        raise InvalidArgumentError(msg)
    return dev


def check_real_array(value: Any, name: str, *, hint: str = "") -> np.ndarray:
    """Return ``value`` as a float64 array if it holds real numbers, refusing silent casts.

    numpy would turn ``True`` into 1.0, drop the imaginary part of a complex number (with a
    warning at most) and parse ``"0.5"``; torch refuses ``numpy()`` on a tensor that requires
    grad with its own traceback. Each of these is a clear error here instead.

    Raises:
        InvalidTypeError: Bool, complex, string or object entries, or a tensor that requires grad.
    """
    if "torch" in sys.modules:  # a tensor can only exist once torch is imported
        import torch

        if isinstance(value, torch.Tensor):
            if value.requires_grad:
                msg = (
                    f"`{name}` is a tensor that requires grad; pass `{name}.detach()` (the env "
                    "never backpropagates into the policy)."
                )
                raise InvalidTypeError(msg)
            value = value.cpu().numpy()
    if isinstance(value, (str, bytes)):
        msg = f"`{name}` must be an array of real numbers, got a string {value!r}."
        raise InvalidTypeError(msg)
    arr = np.asarray(value)
    if arr.dtype.kind not in "iuf":
        what = {"b": "bool", "c": "complex", "U": "string", "S": "bytes", "O": "object"}.get(
            arr.dtype.kind, str(arr.dtype)
        )
        msg = f"`{name}` must be an array of real numbers, got {what} entries (dtype {arr.dtype})."
        raise InvalidTypeError(msg + (f" {hint}" if hint else ""))
    return arr.astype(np.float64, copy=False)
