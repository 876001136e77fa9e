"""Finding and checking DICOM image series from their headers (pydicom and highdicom, no pixel data).

One home for the rules shared by the volume reader (:class:`~hkafusion_monai.transforms.FusionDicomReader`),
the DICOM-study datalist (``python -m hkafusion_monai.data.datalist dicom``), the derived-series writer
(:mod:`hkafusion_monai.io.dicom_series`) and the Deploy application. It holds no transform: it reads headers,
so it lives in ``io``, which sits below ``transforms`` (docs/architecture.md). One module per concern:

- :mod:`~hkafusion_monai.io.dicom.scan`: finding DICOM files and grouping them into series (:func:`scan_dicom`,
  :func:`series_of`, :func:`pick_series`);
- :mod:`~hkafusion_monai.io.dicom.checks`: the checks that a series is one regular volume, each failure one
  line naming the file, and :func:`spacing_contradiction`;
- :mod:`~hkafusion_monai.io.dicom.geometry`: ordering and spacing (highdicom's ``get_volume_positions``) and the
  LPS affine (highdicom's): :func:`order_series`, :func:`lps_affine`, :func:`multiframe_geometry`,
  :func:`frame_headers`;
- :mod:`~hkafusion_monai.io.dicom.enhanced` and :mod:`~hkafusion_monai.io.dicom.nm`: where the frames of an
  enhanced MR, CT or PET image and of an NM reconstruction lie.
"""

from __future__ import annotations

from .checks import spacing_contradiction
from .geometry import FrameGeometry, frame_headers, lps_affine, multiframe_geometry, order_series
from .scan import MULTIFRAME_SOP_CLASSES, DicomSeries, DicomSlice, pick_series, read_dicom, scan_dicom, series_of

__all__ = [
    "MULTIFRAME_SOP_CLASSES",
    "DicomSeries",
    "DicomSlice",
    "FrameGeometry",
    "frame_headers",
    "lps_affine",
    "multiframe_geometry",
    "order_series",
    "pick_series",
    "read_dicom",
    "scan_dicom",
    "series_of",
    "spacing_contradiction",
]
