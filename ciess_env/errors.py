"""Exception hierarchy of ciess-env.

Every error a user can trigger at a public boundary derives from :class:`CIESSError`, and also
from the built-in exception a caller would naturally catch (``ValueError``, ``TypeError``,
``FileNotFoundError``), so both ``except CIESSError`` and ``except ValueError`` work, and the
``ciess`` CLI can print any of them as one line. Messages follow one style: "`x` must be ...,
got ...", then how to fix it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "CIESSError",
    "CacheWriteWarning",
    "CallOrderError",
    "DataFormatError",
    "DataNotFoundError",
    "DatasetError",
    "DatasetIntegrityError",
    "InvalidArgumentError",
    "InvalidIndexError",
    "InvalidTypeError",
    "NonFiniteError",
    "UnknownIdError",
    "UnknownNameError",
    "suggest",
]


class CIESSError(Exception):
    """Base class of every error raised by ciess-env."""


class DatasetError(CIESSError, ValueError):
    """A data set could not be read, parsed or validated."""


class DataNotFoundError(DatasetError, FileNotFoundError):
    """A data file is missing; the message says where to put it or how to download it."""


class DataFormatError(DatasetError):
    """A data file exists but is malformed; the message names the file and the line."""


class DatasetIntegrityError(DatasetError):
    """A named data set parsed, but its counts differ from the canonical ones (truncated copy)."""


class InvalidArgumentError(CIESSError, ValueError):
    """An argument has a value outside what it accepts (range, choice, combination)."""


class InvalidTypeError(CIESSError, TypeError):
    """An argument has the wrong type (a string where a number goes, a bool as a size, ...)."""


class InvalidIndexError(CIESSError, IndexError):
    """An index (e.g. of a sub-environment) lies outside the valid range."""


class CallOrderError(CIESSError, RuntimeError):
    """A method was called out of order (``step`` before ``reset``, a result before ``learn``)."""


class UnknownIdError(CIESSError, KeyError):
    """A raw user or item id that the data set does not hold."""

    def __str__(self) -> str:  # KeyError's own str() wraps the message in quotes
        return str(self.args[0]) if self.args else ""


class NonFiniteError(CIESSError, ValueError):
    """A score or loss that must be finite is NaN or infinite (usually: the model diverged)."""


class UnknownNameError(CIESSError, ValueError):
    """An unknown name (data set, backbone, agent, ...); the message suggests close ones."""


class CacheWriteWarning(UserWarning):
    """A cache file could not be written; the result is kept in memory, only reuse is lost."""


def suggest(name: str, choices: Iterable[str], *, what: str) -> UnknownNameError:
    """Build an :class:`UnknownNameError` for ``name`` that lists ``choices`` and the closest match.

    Args:
        name: The name the user gave.
        choices: The valid names.
        what: What kind of name it is, e.g. ``"data set"`` or ``"backbone"``.

    Returns:
        The exception, to be raised by the caller (``raise suggest(...)``).
    """
    choices = sorted(choices)
    lowered = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.5)
    msg = f"Unknown {what} {name!r}. Valid names: {', '.join(choices)}."
    if close:
        msg += " Did you mean " + " or ".join(repr(lowered[c]) for c in close) + "?"
    return UnknownNameError(msg)
