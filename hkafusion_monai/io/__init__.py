"""Files in and out: the file formats by name (:mod:`~hkafusion_monai.io.formats`), reading and ordering DICOM
series from their headers (:mod:`~hkafusion_monai.io.dicom`), atomic writes (:mod:`~hkafusion_monai.io.atomic`),
writing fusion results (PNG, NIfTI, the derived DICOM series of
:mod:`hkafusion_monai.io.dicom_series`), listing a study folder safely (:mod:`~hkafusion_monai.io.study`),
the one rule that pairs a study's MR series with its CT, PET and SPECT series (:mod:`~hkafusion_monai.io.pairing`),
sending series to a PACS (:mod:`~hkafusion_monai.io.pacs`), and finding the bundle's run-time files in a
checkout or an installed wheel (:mod:`~hkafusion_monai.io.bundle`).

``io`` sits just above ``utils`` and below the transforms, whose loaders read DICOM headers through it; it
imports nothing of ours but ``utils``.
"""

from hkafusion_monai.io.atomic import (
    atomic_write,
    atomic_write_dir,
    check_output_folder,
    check_room,
    make_output_dir,
    storage_errors,
    storage_fault,
)
from hkafusion_monai.io.bundle import BUNDLE_RUNTIME_FILES, default_bundle_dir
from hkafusion_monai.io.dicom import (
    DicomSeries,
    DicomSlice,
    frame_headers,
    multiframe_geometry,
    order_series,
    pick_series,
    scan_dicom,
)
from hkafusion_monai.io.dicom_series import write_fused_series, write_fused_series_from_folders
from hkafusion_monai.io.formats import (
    DICOM_SUFFIXES,
    IMAGE_SUFFIXES,
    NIFTI_SUFFIXES,
    is_image_file,
    is_nifti,
    split_suffix,
)
from hkafusion_monai.io.pacs import DicomDestination, send_files
from hkafusion_monai.io.pairing import SeriesPair, VolumeSeries, describe_series, measure, not_a_volume, pair_series
from hkafusion_monai.io.study import study_files
from hkafusion_monai.utils.lazy import lazy_exports

#: lazy: io.writers loads torch and MONAI, and the torch-free tools (datalist, phantom) import io
_WRITERS = ("OUTPUT_FORMATS", "FusedImageWriterd", "output_name", "write_nifti", "write_png")

__all__ = [
    "BUNDLE_RUNTIME_FILES",
    "DICOM_SUFFIXES",
    "IMAGE_SUFFIXES",
    "NIFTI_SUFFIXES",
    "DicomDestination",
    "DicomSeries",
    "DicomSlice",
    "SeriesPair",
    "VolumeSeries",
    "atomic_write",
    "atomic_write_dir",
    "check_room",
    "check_output_folder",
    "default_bundle_dir",
    "describe_series",
    "frame_headers",
    "is_image_file",
    "is_nifti",
    "make_output_dir",
    "storage_errors",
    "storage_fault",
    "measure",
    "multiframe_geometry",
    "not_a_volume",
    "order_series",
    "pair_series",
    "pick_series",
    "scan_dicom",
    "send_files",
    "split_suffix",
    "study_files",
    "write_fused_series",
    "write_fused_series_from_folders",
    *_WRITERS,
]

__getattr__ = lazy_exports(__name__, dict.fromkeys(_WRITERS, ".writers"))
