"""Hand freed heap memory back to the operating system between env steps.

Every step builds, trains and evaluates a fresh model, so it allocates and frees a few hundred
megabytes of short-lived buffers (activations, gradients, score blocks). glibc keeps freed
blocks in its heap for reuse; which of them it can return depends on fragmentation, so the
resident size of a long search drifts up and down by 10-20 % without any leak
(benchmarks/results/active_width.md). :func:`release_free_memory` asks the allocator to
return what is free (``malloc_trim``), which keeps the resident size flat, equal to what is
live, so real growth shows. Elsewhere (macOS, musl, Windows) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

__all__ = ["release_free_memory"]


@functools.cache
def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Return the heap's free memory to the OS (glibc ``malloc_trim(0)``); cheap, safe anytime.

    Returns:
        Whether the allocator supports it (False: nothing was done).
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
