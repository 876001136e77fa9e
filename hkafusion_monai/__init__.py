"""HKAFusion for MONAI: hybrid-kernel attention fusion of MRI with CT, PET or SPECT.

Subpackages, bottom layer first (docs/architecture.md): ``utils``; ``io``; ``networks``, ``losses``,
``metrics``, ``transforms``; ``data``; ``engines``, ``handlers``; ``inference`` (the notebook API,
``from hkafusion_monai import load_fuser``); ``deploy``. The bundle configs in ``bundle/configs`` refer to them
by dotted path after one ``"$import hkafusion_monai"``: each subpackage is imported on first use, so
``import hkafusion_monai`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hkafusion_monai.utils.lazy import lazy_exports

__version__ = "0.6.2"

#: the subpackages, each imported on first attribute access
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

# lazy: the subpackages and load_fuser load torch and MONAI (seconds); ``import hkafusion_monai`` loads neither
__getattr__ = lazy_exports(__name__, {"load_fuser": ".inference"} | {name: f".{name}" for name in SUBPACKAGES})
