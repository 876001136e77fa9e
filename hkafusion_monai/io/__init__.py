"""Files in and out: the file formats by name (:mod:`~hkafusion_monai.io.formats`), reading and ordering DICOM
series from their headers (:mod:`~hkafusion_monai.io.dicom`), atomic writes (:mod:`~hkafusion_monai.io.atomic`),
writing fusion results (PNG, NIfTI, the derived DICOM series of
:mod:`hkafusion_monai.io.dicom_series`), listing a study folder safely (:mod:`~hkafusion_monai.io.study`),
the one rule that pairs a study's MR series with its CT, PET and SPECT series (:mod:`~hkafusion_monai.io.pairing`),
sending series to a PACS (:mod:`~hkafusion_monai.io.pacs`), and finding the bundle's run-time files in a
checkout or an installed wheel (:mod:`~hkafusion_monai.io.bundle`).

``io`` sits just above ``utils`` and below the transforms, whose loaders read DICOM headers through it; it
imports nothing of ours but ``utils``. Imports are lazy: :mod:`hkafusion_monai.io.atomic` serves the
command-line tools without importing MONAI.
"""

from __future__ import annotations

from hkafusion_monai.utils.lazy import lazy_exports

_HOMES = {
    "atomic_write": ".atomic",
    "atomic_write_dir": ".atomic",
    "check_output_folder": ".atomic",
    "make_output_dir": ".atomic",
    "BUNDLE_RUNTIME_FILES": ".bundle",
    "default_bundle_dir": ".bundle",
    "DicomSeries": ".dicom",
    "DicomSlice": ".dicom",
    "frame_headers": ".dicom",
    "multiframe_geometry": ".dicom",
    "order_series": ".dicom",
    "pick_series": ".dicom",
    "scan_dicom": ".dicom",
    "write_fused_series": ".dicom_series",
    "write_fused_series_from_folders": ".dicom_series",
    "DICOM_SUFFIXES": ".formats",
    "IMAGE_SUFFIXES": ".formats",
    "NIFTI_SUFFIXES": ".formats",
    "is_image_file": ".formats",
    "is_nifti": ".formats",
    "split_suffix": ".formats",
    "DicomDestination": ".pacs",
    "SeriesPair": ".pairing",
    "VolumeSeries": ".pairing",
    "describe_series": ".pairing",
    "measure": ".pairing",
    "not_a_volume": ".pairing",
    "pair_series": ".pairing",
    "send_files": ".pacs",
    "study_files": ".study",
    "OUTPUT_FORMATS": ".writers",
    "FusedImageWriterd": ".writers",
    "output_name": ".writers",
    "write_nifti": ".writers",
    "write_png": ".writers",
}

__all__ = sorted(_HOMES)

__getattr__ = lazy_exports(__name__, _HOMES)
