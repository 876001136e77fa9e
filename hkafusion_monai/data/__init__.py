"""Data tools: datalists of image pairs (``python -m hkafusion_monai.data.datalist``) and their loading,
and the synthetic phantom data set (``python -m hkafusion_monai.data.phantom``).

Imports are lazy so that running ``python -m hkafusion_monai.data.datalist`` does not import the module
twice.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "SHARED_VARIABLE",
    "DatalistError",
    "datalist_from_dicom",
    "datalist_from_folders",
    "datalist_from_splits",
    "harvard_datalist",
    "harvard_root",
    "reference_file",
    "shared_root",
    "load_fusion_datalist",
    "pair_folder",
    "write_datalist",
    "write_phantom",
]


def __getattr__(name: str) -> Any:
    if name == "write_phantom":
        return getattr(importlib.import_module(".phantom", __name__), name)
    if name in ("SHARED_VARIABLE", "harvard_root", "reference_file", "shared_root"):
        return getattr(importlib.import_module(".roots", __name__), name)
    if name in __all__:
        return getattr(importlib.import_module(".datalist", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
