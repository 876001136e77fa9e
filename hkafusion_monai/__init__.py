"""HKAFusion for MONAI: hybrid-kernel attention fusion of MRI with CT, PET or SPECT.

Subpackages, bottom layer first (docs/architecture.md): ``utils``; ``io``; ``networks``, ``losses``,
``metrics``, ``transforms``; ``data``; ``engines``, ``handlers``; ``inference`` (the notebook API,
``from hkafusion_monai import load_fuser``); ``deploy``. The bundle configs in ``bundle/configs`` refer to them
by dotted path after one ``"$import hkafusion_monai"``: each subpackage is imported on first use, so
``import hkafusion_monai`` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.4.0"

#: the subpackages, imported on first attribute access (PEP 562)
SUBPACKAGES = (
    "data",
    "deploy",
    "engines",
    "handlers",
    "inference",
    "io",
    "losses",
    "metrics",
    "networks",
    "transforms",
    "utils",
)

__all__ = ["__version__", "load_fuser", *SUBPACKAGES]

if TYPE_CHECKING:
    from .inference import load_fuser


def __getattr__(name: str) -> Any:
    # lazy: ``import hkafusion_monai`` stays light; the notebook API pulls in the transforms on first use
    if name == "load_fuser":
        from .inference import load_fuser

        return load_fuser
    if name in SUBPACKAGES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
