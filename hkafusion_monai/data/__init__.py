"""Data tools: datalists of image pairs (``python -m hkafusion_monai.data.datalist``) and their loading,
and the synthetic phantom data set (``python -m hkafusion_monai.data.phantom``).

The names are imported from the modules that hold them, never from the ``datalist`` command line, so that
``python -m hkafusion_monai.data.datalist`` runs that module once.
"""

from hkafusion_monai.data.datalist_file import DatalistError, load_fusion_datalist, write_datalist
from hkafusion_monai.data.dicom_datalist import datalist_from_dicom
from hkafusion_monai.data.folder_datalist import (
    datalist_from_folders,
    datalist_from_splits,
    datalist_from_subjects,
    harvard_datalist,
    pair_folder,
)
from hkafusion_monai.data.phantom import ensure_phantom, write_phantom
from hkafusion_monai.data.roots import (
    BUNDLE_FOLDER,
    SHARED_VARIABLE,
    bundle_root,
    dataset_datalist,
    harvard_root,
    reference_file,
    shared_root,
)

__all__ = [
    "BUNDLE_FOLDER",
    "SHARED_VARIABLE",
    "DatalistError",
    "bundle_root",
    "datalist_from_dicom",
    "datalist_from_folders",
    "datalist_from_splits",
    "datalist_from_subjects",
    "dataset_datalist",
    "ensure_phantom",
    "harvard_datalist",
    "harvard_root",
    "load_fusion_datalist",
    "pair_folder",
    "reference_file",
    "shared_root",
    "write_datalist",
    "write_phantom",
]
