"""Lazy package exports (PEP 562), the one exception to the package's eager exports (docs/architecture.md,
"Exports"): a package names where each lazy export lives, and that module is imported only when the name is first
used, for the exports whose module would load torch, MONAI or the Deploy SDK into an importer that must not load
them."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports ``homes[name]`` (a relative module such as
    ``".writers"``) on first use of ``name`` and returns that module's ``name``, or the module itself when it is
    the one named (``{"data": ".data"}``: a subpackage imported on first use).

    Example::

        __getattr__ = lazy_exports(__name__, {"write_png": ".writers", "data": ".data"})
    """

    def __getattr__(name: str) -> Any:
        if name in homes:
            module = importlib.import_module(homes[name], package)
            return module if homes[name] == f".{name}" else getattr(module, name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
