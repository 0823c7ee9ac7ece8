"""Lazy package exports (PEP 562), so that ``import ciess_env`` stays cheap.

Registering the env ids reads the backbone and data set specs; with eager package
``__init__`` files that would import torch, pandas and every model class first.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str,
    exports: Mapping[str, str],
    namespace: dict[str, Any],
    *,
    computed: Mapping[str, Callable[[], Any]] | None = None,
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package`` loading ``name`` from ``exports[name]``.

    The package's one lazy-export mechanism (every ``__init__`` of ``ciess_env`` and ``agents``
    uses it).

    Args:
        package: The package's ``__name__`` (for the error message).
        exports: Public name → the module that defines it.
        namespace: The package's ``globals()``; loaded names are cached there.
        computed: Public name → a function computing it on each access, not cached (the
            root package's ``__version__``, read from the installed metadata).
    """
    computed = dict(computed or {})

    def __getattr__(name: str) -> Any:
        if name in computed:
            return computed[name]()
        if name not in exports:
            msg = f"module {package!r} has no attribute {name!r}"
            raise AttributeError(msg)
        value = getattr(importlib.import_module(exports[name]), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports) | set(computed))

    return __getattr__, __dir__
