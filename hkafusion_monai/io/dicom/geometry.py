"""Where a DICOM series' voxels lie: the slices (or frames) ordered along the slice normal, the step between
them, and the ``(4, 4)`` LPS affine; highdicom orders the stack and builds the affine.

- :func:`order_series` checks that a series is one regular volume (single-frame images of one size, pixel
  spacing and orientation, at distinct, evenly spaced positions along the slice normal, or one multi-frame
  image) and returns its files in spatial order.
- :func:`lps_affine` places a single-frame series, :func:`multiframe_geometry` the frames of one multi-frame
  image (an NM reconstruction, an enhanced MR, CT or PET image), :func:`frame_headers` gives one header per frame.

Positions and directions are in the DICOM patient coordinate system (LPS, millimetres).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from highdicom.spatial import create_affine_matrix_from_attributes, get_volume_positions

from hkafusion_monai.utils.errors import FusionInputError

from .checks import check_complete, check_slices, check_spacing
from .enhanced import enhanced_placement
from .nm import nm_placement
from .scan import NM_IMAGE_STORAGE, DicomSeries, read_header

__all__ = ["FrameGeometry", "frame_headers", "lps_affine", "multiframe_geometry", "order_series", "stack_order"]

# highdicom only sorts: check_spacing judges the gaps and names the slices, and a gantry-tilted stack is kept
_SORT_ONLY: dict[str, Any] = {"perpendicular_tol": 2.0, "allow_duplicate_positions": True}
_FRAME_GROUPS = ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence", "DetectorInformationSequence")


def stack_order(
    positions: np.ndarray,
    orientation: np.ndarray,
    where: str | Path,
    names: Sequence[str],
    what: str,
    thickness: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The order of slices (or frames) at ``positions`` from first to last along the slice normal
    (``ImageOrientationPatient`` row × column direction), and the LPS step from one to the next.

    highdicom's ``get_volume_positions`` sorts them; it answers a doubled or missing slice with ``None`` and no
    reason, so :func:`~hkafusion_monai.io.dicom.checks.check_spacing` judges the gaps and names the slices.
    A gantry-tilted stack is kept, stepping from the first to the last position as MONAI's ``PydicomReader``
    does, so highdicom's perpendicularity test is off.

    Returns:
        ``(order, step)``: indices into ``positions``, and ``(last - first) / (n - 1)`` (one slice: the normal
        times ``thickness``, or 1 mm).
    """
    positions = np.asarray(positions, dtype=np.float64)
    normal = np.cross(orientation[:3], orientation[3:])
    if len(positions) == 1:
        return np.zeros(1, dtype=int), normal * (thickness or 1.0)
    depth = positions @ normal
    # no gap differs from the mean gap by more than the stack's extent: highdicom's regularity test always passes
    atol = float(np.ptp(depth)) + 1.0
    _, index = get_volume_positions(
        positions,  # type: ignore[arg-type]  # highdicom takes arrays (it converts with np.array)
        orientation,  # type: ignore[arg-type]
        index_convention="RD",
        atol=atol,
        **_SORT_ONLY,
    )
    order = np.argsort(np.asarray(index), kind="stable")
    check_spacing(depth, order, where, names, what)
    return order, (positions[order[-1]] - positions[order[0]]) / (len(positions) - 1)


def _affine(origin: np.ndarray, orientation: np.ndarray, pixel_spacing: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Voxel ``(column, row, k)`` to LPS: highdicom's in-plane affine (DICOM PS3.3 C.7.6.2.1-1), ``step`` per k."""
    affine = create_affine_matrix_from_attributes(
        image_position=[float(v) for v in origin],
        image_orientation=[float(v) for v in orientation],
        pixel_spacing=[float(v) for v in pixel_spacing],
    )
    affine[:3, 2] = step
    return affine


def order_series(series: DicomSeries) -> tuple[list[Path], np.ndarray]:
    """Check that a series is one regular volume and return its files in spatial order.

    Slices are ordered by their position along the slice normal (the cross product of the row and column
    directions), not by ``InstanceNumber``, which scanners do not always number in space. Headers suffice:
    highdicom's ``get_volume_from_series`` would decode every slice, which the reader does itself, to name a
    corrupt file and refuse a blank slice.

    Args:
        series: from :func:`~hkafusion_monai.io.dicom.scan_dicom`.

    Returns:
        ``(files, step)``: the files from the first to the last slice along the normal, and the LPS vector from
        one slice's ``ImagePositionPatient`` to the next (for one slice: the normal times ``SliceThickness``,
        or 1 mm).

    Raises:
        FusionInputError: naming the folder and the problem: multi-frame files, missing geometry tags, slices of
            different sizes, pixel spacings or orientations (e.g. a localizer), two slices at one position,
            uneven slice spacing (a missing slice), fewer slices than the series' tags give, or a gap in its
            instance numbers (a lost end slice).
    """
    where, slices = series.where, series.slices
    if not slices:
        raise FusionInputError(f"{where}: no DICOM image files")
    multi = [s for s in slices if s.multiframe]
    if multi:
        if len(slices) > 1:
            raise FusionInputError(
                f"{where}: {len(multi)} multi-frame image(s) among {len(slices)} files of series "
                f"{series.series_uid}; one multi-frame image per series, or single-frame images, are supported"
            )
        path = multi[0].path
        return [path], multiframe_geometry(read_header(path), path).affine[:3, 2].copy()
    check_slices(series)
    positions = np.array([s.position for s in slices])
    names = [str(s.path) for s in slices]
    orientation = slices[0].orientation
    assert orientation is not None  # check_slices: every slice has one
    order, step = stack_order(positions, orientation, where, names, "slices", slices[0].thickness)
    check_complete(series)  # after the spacing: a slice lost inside the stack is named there, by position
    return [slices[i].path for i in order], step


def lps_affine(slices: Sequence[pydicom.Dataset]) -> np.ndarray:
    """The ``(4, 4)`` LPS affine of a volume of single-frame slices in spatial order: voxel
    ``(column, row, slice)`` to millimetres (ITK's index order).

    The in-plane part is highdicom's (``create_affine_matrix_from_attributes``, DICOM PS3.3 C.7.6.2.1-1): column
    ``i`` steps along the row direction (``ImageOrientationPatient[:3]``) by the column spacing, row ``j`` along
    the column direction by the row spacing, from the first ``ImagePositionPatient``. Slice ``k`` steps from the
    first to the last ``ImagePositionPatient`` (as MONAI's ``PydicomReader`` places it; one slice: the normal
    times ``SliceThickness``, or 1 mm).
    """
    if not slices:
        raise ValueError("lps_affine: no slices")
    first, last = slices[0], slices[-1]
    orientation = np.asarray(first.ImageOrientationPatient, dtype=float)
    p0 = np.asarray(first.ImagePositionPatient, dtype=float)
    if len(slices) > 1:
        step = (np.asarray(last.ImagePositionPatient, dtype=float) - p0) / (len(slices) - 1)
    else:
        step = np.cross(orientation[:3], orientation[3:]) * float(first.get("SliceThickness") or 1.0)
    return _affine(p0, orientation, np.asarray(first.PixelSpacing, dtype=float), step)


@dataclass
class FrameGeometry:
    """Where the frames of one multi-frame image lie, and how their stored values become intensities.

    Frame arrays are indexed in file order (frame 1 first); :attr:`order` lists them from the first to the
    last position along the slice normal, and :attr:`affine` maps voxel ``(column, row, k)`` (``k`` indexing
    :attr:`order`) to LPS millimetres, as :func:`lps_affine` does for single-frame series.
    """

    order: np.ndarray  # (frames,) frame indices, 0-based, in spatial order
    affine: np.ndarray  # (4, 4) LPS
    positions: np.ndarray  # (frames, 3) ImagePositionPatient of each frame, file order
    orientation: np.ndarray  # (6,) ImageOrientationPatient
    pixel_spacing: np.ndarray  # (row spacing, column spacing)
    thickness: float | None
    slopes: np.ndarray  # (frames,) rescale slope of each frame, file order
    intercepts: np.ndarray  # (frames,)
    units: str  # Units (NM, PET), else RescaleType, else ""


def multiframe_geometry(ds: pydicom.Dataset, where: str | Path = "") -> FrameGeometry:
    """Place the frames of one multi-frame image (its header suffices) and read their rescale.

    - **NM** (NM Image Storage): a reconstructed tomographic volume (``ImageType`` value 3 ``RECON TOMO``),
      one energy window, detector, phase and rotation. The first frame's ``ImagePositionPatient`` and the
      ``ImageOrientationPatient`` come from the Detector Information Sequence (else the top level), frame
      ``f`` lies ``SliceVector[f] - 1`` times ``SpacingBetweenSlices`` (else ``SliceThickness``) along the
      slice normal. Intensities: the linear Real World Value Mapping (slope, intercept, units such as
      ``{counts}`` or ``Bq/ml``), else a ``RescaleSlope``/``RescaleIntercept`` that some systems write.
    - **Enhanced and legacy converted enhanced MR, CT and PET**: position, orientation, pixel spacing and
      rescale of every frame from its Per-frame Functional Groups, else the Shared ones.

    Raises:
        FusionInputError: naming ``where`` and the problem: not a reconstructed volume, several windows or
            phases, missing geometry, frames of different orientations or spacings, two frames at one
            position, uneven spacing.
    """
    where = where or getattr(ds, "filename", None) or "multi-frame image"
    n = int(ds.get("NumberOfFrames") or 1)
    if str(ds.get("SOPClassUID", "")) == NM_IMAGE_STORAGE or str(ds.get("Modality", "")).upper() == "NM":
        placement = nm_placement(ds, where, n)
    elif "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds:
        placement = enhanced_placement(ds, where, n)
    else:
        raise FusionInputError(
            f"{where}: multi-frame {ds.get('Modality', '')} image ({n} frames) of a kind that cannot be placed in "
            f"space (SOP class {ds.get('SOPClassUID', '?')}); NM RECON TOMO and enhanced MR/CT/PET images are read"
        )
    positions, orientation, spacing, thickness, slopes, intercepts, units = placement
    names = [f"frame {f + 1}" for f in range(n)]
    order, step = stack_order(positions, orientation, where, names, "frames", thickness)
    return FrameGeometry(
        order=np.asarray(order),
        affine=_affine(positions[order[0]], orientation, spacing, step),
        positions=positions,
        orientation=orientation,
        pixel_spacing=spacing,
        thickness=thickness,
        slopes=slopes,
        intercepts=intercepts,
        units=units,
    )


def frame_headers(ds: pydicom.Dataset, geometry: FrameGeometry | None = None) -> list[pydicom.Dataset]:
    """One single-frame header per frame of a multi-frame image, in spatial order (``geometry.order``): the
    top-level attributes (no pixel data, no functional groups) plus the frame's ``ImagePositionPatient``,
    ``ImageOrientationPatient``, ``PixelSpacing`` and ``SliceThickness``, and ``frame_number`` (1-based, a
    Python attribute) for references to the frame. What the derived-series writer needs from a source."""
    geometry = geometry or multiframe_geometry(ds)
    base = pydicom.Dataset()
    for element in ds:
        if element.keyword not in ("PixelData", "FloatPixelData", "DoubleFloatPixelData", *_FRAME_GROUPS):
            base.add(element)
    headers = []
    for f in geometry.order:
        h = pydicom.Dataset()
        h.update(base)
        h.ImagePositionPatient = [f"{v:.6g}" for v in geometry.positions[f]]
        h.ImageOrientationPatient = [f"{v:.8g}" for v in geometry.orientation]
        h.PixelSpacing = [f"{v:.8g}" for v in geometry.pixel_spacing]
        if geometry.thickness is not None:
            h.SliceThickness = f"{geometry.thickness:.8g}"
        h.frame_number = int(f) + 1
        headers.append(h)
    return headers
