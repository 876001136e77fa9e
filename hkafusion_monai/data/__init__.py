"""Data tools: datalists of image pairs (``python -m hkafusion_monai.data.datalist``) and their loading,
and the synthetic phantom data set (``python -m hkafusion_monai.data.phantom``).

Imports are lazy so that running ``python -m hkafusion_monai.data.datalist`` does not import the module
twice.
"""

from __future__ import annotations

from hkafusion_monai.utils.lazy import lazy_exports

_HOMES = {
    "DatalistError": ".datalist_file",
    "load_fusion_datalist": ".datalist_file",
    "write_datalist": ".datalist_file",
    "datalist_from_dicom": ".dicom_datalist",
    "datalist_from_folders": ".folder_datalist",
    "datalist_from_splits": ".folder_datalist",
    "harvard_datalist": ".folder_datalist",
    "pair_folder": ".folder_datalist",
    "ensure_phantom": ".phantom",
    "write_phantom": ".phantom",
    "BUNDLE_FOLDER": ".roots",
    "SHARED_VARIABLE": ".roots",
    "bundle_root": ".roots",
    "dataset_datalist": ".roots",
    "harvard_root": ".roots",
    "reference_file": ".roots",
    "shared_root": ".roots",
}

__all__ = sorted(_HOMES)

__getattr__ = lazy_exports(__name__, _HOMES)
