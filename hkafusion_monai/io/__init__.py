"""Writing fusion results (and, with the deploy issue, the DICOM derived series).

Imports are lazy: :mod:`hkafusion_monai.io.atomic` serves the command-line tools without importing MONAI.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["FusedImageWriterd", "as_bool", "atomic_write", "output_name", "write_nifti", "write_png"]


def __getattr__(name: str) -> Any:
    if name == "atomic_write":
        return importlib.import_module(".atomic", __name__).atomic_write
    if name in __all__:
        return getattr(importlib.import_module(".writers", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
