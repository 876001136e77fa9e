"""Data tools: datalists of image pairs (``python -m hkafusion_monai.data.datalist``) and their loading.

Imports are lazy so that running ``python -m hkafusion_monai.data.datalist`` does not import the module
twice.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "DatalistError",
    "datalist_from_folders",
    "datalist_from_splits",
    "load_fusion_datalist",
    "pair_folder",
    "write_datalist",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module(".datalist", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
