"""HKAFusion for MONAI: hybrid-kernel attention fusion of MRI with CT, PET or SPECT.

Subpackages (leaves first): ``networks``, ``losses``, ``metrics``, ``transforms``,
``handlers``, ``engines``, ``io``, ``data``; ``inference`` holds the notebook API
(``from hkafusion_monai import load_fuser``). The bundle configs in ``bundle/configs``
refer to them by dotted path.
"""

from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

__all__ = ["__version__", "load_fuser"]

if TYPE_CHECKING:
    from .inference import load_fuser


def __getattr__(name: str) -> Any:
    # lazy: ``import hkafusion_monai`` stays light; the notebook API pulls in the transforms on first use
    if name == "load_fuser":
        from .inference import load_fuser

        return load_fuser
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
