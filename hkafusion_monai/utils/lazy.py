"""Lazy package exports (PEP 562): a package names where each of its exports lives, and a module is imported
only when one of its names is first used, so that light command-line tools do not import MONAI or torch."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports ``homes[name]`` (a relative module such as
    ``".writers"``) on first use of ``name``.

    Example::

        __getattr__ = lazy_exports(__name__, {"atomic_write": ".atomic", "write_png": ".writers"})
    """

    def __getattr__(name: str) -> Any:
        if name in homes:
            return getattr(importlib.import_module(homes[name], package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
