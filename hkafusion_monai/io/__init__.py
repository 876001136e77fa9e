"""Files in and out: writing fusion results (PNG, NIfTI, the derived DICOM series of
:mod:`hkafusion_monai.io.dicom_series`), listing a study folder safely (:mod:`~hkafusion_monai.io.study`),
sending series to a PACS (:mod:`~hkafusion_monai.io.pacs`), and finding the bundle's run-time files in a
checkout or an installed wheel (:mod:`~hkafusion_monai.io.bundle`).

Imports are lazy: :mod:`hkafusion_monai.io.atomic` serves the command-line tools without importing MONAI.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "OUTPUT_FORMATS",
    "DicomDestination",
    "FusedImageWriterd",
    "atomic_write",
    "default_bundle_dir",
    "output_name",
    "send_files",
    "study_files",
    "write_fused_series",
    "write_nifti",
    "write_png",
]


def __getattr__(name: str) -> Any:
    if name == "atomic_write":
        return importlib.import_module(".atomic", __name__).atomic_write
    lazy = {"DicomDestination": ".pacs", "send_files": ".pacs", "study_files": ".study", "default_bundle_dir": ".bundle"}
    if name in lazy:
        return getattr(importlib.import_module(lazy[name], __name__), name)
    if name == "write_fused_series":
        return importlib.import_module(".dicom_series", __name__).write_fused_series
    if name in __all__:
        return getattr(importlib.import_module(".writers", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
