"""Writing fusion results: PNG, NIfTI, and the derived DICOM series (:mod:`hkafusion_monai.io.dicom_series`).

Imports are lazy: :mod:`hkafusion_monai.io.atomic` serves the command-line tools without importing MONAI.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "OUTPUT_FORMATS",
    "FusedImageWriterd",
    "atomic_write",
    "output_name",
    "write_fused_series",
    "write_nifti",
    "write_png",
]


def __getattr__(name: str) -> Any:
    if name == "atomic_write":
        return importlib.import_module(".atomic", __name__).atomic_write
    if name == "write_fused_series":
        return importlib.import_module(".dicom_series", __name__).write_fused_series
    if name in __all__:
        return getattr(importlib.import_module(".writers", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
