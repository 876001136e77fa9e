"""Which series of a study are volumes to fuse, and which MR series each CT, PET or SPECT series is fused with.

The one rule of the ``dicom`` datalist tool (:func:`hkafusion_monai.data.datalist.datalist_from_dicom`) and of
the Deploy application (:mod:`hkafusion_monai.deploy.planning`), so that both pair a study alike:

- **Not a volume**, by its type (:func:`not_a_volume`): a localizer (``ImageType`` holds ``LOCALIZER``), and an
  NM image other than a tomographic reconstruction (``ImageType`` value 3 is not ``RECON TOMO``: planar,
  whole-body, dynamic, gated, the raw projections beside a reconstruction).
- **One regular volume** (:func:`measure`): the bundle reader's :func:`~hkafusion_monai.io.dicom.order_series`
  checks, and the volume's images and coverage (rows x columns x slices, in mm^3).
- **The MR for a secondary series** (:func:`pair_series`), in this order of preference: one in the secondary's
  frame of reference; the one covering the largest volume; the one with more images; the lowest series number;
  the lowest SeriesInstanceUID. MR series equal to the chosen one in all but the last two are its ``tied``
  series: the datalist tool calls such a study ambiguous, where the Deploy application takes the chosen one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom

from hkafusion_monai.io.dicom import DicomSeries, multiframe_geometry, order_series

__all__ = ["SeriesPair", "VolumeSeries", "describe_series", "measure", "not_a_volume", "pair_series"]

#: ``ImageType`` value 3 of an NM image that is one reconstructed tomographic volume
RECON_TOMO = "RECON TOMO"


def not_a_volume(modality: str, image_type: Sequence[str]) -> str | None:
    """Why a series of ``modality`` and ``image_type`` (its first instance's ``ImageType``) is, by its type, no
    volume to fuse: a localizer, or an NM image other than a tomographic reconstruction; ``None`` otherwise."""
    values = [str(v).upper() for v in image_type or ()]
    shown = "\\".join(values)
    if "LOCALIZER" in values:
        return f"a localizer (ImageType {shown})"
    if str(modality).upper() == "NM" and (len(values) < 3 or values[2] != RECON_TOMO):
        return f"an NM image of ImageType {shown}, not a reconstructed tomographic volume ({RECON_TOMO})"
    return None


def describe_series(modality: str, number: object, description: str, count: str, uid: str) -> str:
    """``MR #1 'T1 3D phantom', 32 image(s), SeriesInstanceUID …``, ``count`` being ``32 image(s)``: a series as
    logs and error messages name it."""
    number = f" #{number}" if number is not None else ""
    desc = f" {description!r}" if description else ""
    return f"{modality}{number}{desc}, {count}, SeriesInstanceUID {uid}"


@dataclass
class VolumeSeries:
    """A series that forms one regular volume: its header summary, its files in spatial order, its number of
    images (slices, or frames of a multi-frame image) and the volume it covers."""

    header: DicomSeries
    files: list[Path]
    n_images: int
    extent_mm3: float

    @property
    def uid(self) -> str:
        return self.header.series_uid

    @property
    def frame_of_reference(self) -> str:
        return self.header.frame_of_reference_uid

    def describe(self) -> str:
        """``MR #1 'T1 3D phantom', 32 image(s), SeriesInstanceUID …`` (for logs and error messages)."""
        h = self.header
        return describe_series(h.modality, h.series_number, h.description, f"{self.n_images} image(s)", h.series_uid)


def measure(series: DicomSeries) -> VolumeSeries:
    """Check that ``series`` is one regular volume and measure it.

    Raises:
        FusionInputError: it is not one regular volume (from :func:`~hkafusion_monai.io.dicom.order_series`,
            naming the folder and the problem).
    """
    files, step = order_series(series)
    first = series.slices[0]
    if first.multiframe:
        geometry = multiframe_geometry(pydicom.dcmread(files[0], stop_before_pixels=True), files[0])
        n, spacing = len(geometry.order), geometry.pixel_spacing
    else:
        assert first.pixel_spacing is not None  # order_series: every slice has one
        n, spacing = len(files), first.pixel_spacing
    assert first.rows is not None  # series_of keeps the images with rows only
    in_plane = float(first.rows) * float(spacing[0]) * float(first.columns or 0) * float(spacing[1])
    return VolumeSeries(series, list(files), n, in_plane * n * float(np.linalg.norm(step)))


@dataclass
class SeriesPair:
    """A secondary series and the MR series it is fused with."""

    mri: VolumeSeries
    other: VolumeSeries
    same_frame: bool  # the two share a FrameOfReferenceUID
    tied: list[VolumeSeries] = field(default_factory=list)  # MR series as good as ``mri`` (``mri`` among them)


def _same_frame(mri: VolumeSeries, other: VolumeSeries) -> bool:
    return bool(mri.frame_of_reference) and mri.frame_of_reference == other.frame_of_reference


def _preference(mri: VolumeSeries, other: VolumeSeries) -> tuple:
    """Sort key of ``mri`` for ``other``: the rule's criteria in order (the first three decide, the last two
    break ties)."""
    number = mri.header.series_number if mri.header.series_number is not None else 1 << 30
    return (not _same_frame(mri, other), -mri.extent_mm3, -mri.n_images, number, mri.uid)


def pair_series(mris: Sequence[VolumeSeries], others: Sequence[VolumeSeries]) -> list[SeriesPair]:
    """One :class:`SeriesPair` per series of ``others`` (in their order), each with its MR series by the rule
    of the module docstring; none when ``mris`` is empty."""
    pairs = []
    for other in others:
        ranked = sorted(mris, key=lambda m: _preference(m, other))
        if not ranked:
            return []
        best = _preference(ranked[0], other)[:3]
        tied = [m for m in ranked if _preference(m, other)[:3] == best]
        pairs.append(SeriesPair(ranked[0], other, _same_frame(ranked[0], other), tied))
    return pairs
