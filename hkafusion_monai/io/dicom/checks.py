"""The checks that a DICOM series or multi-frame image is one regular volume, each failure one line naming the
file (or frame) and the problem, and the warning for a ``PixelSpacing`` that contradicts the
``ReconstructionDiameter``.

highdicom's series geometry (``get_volume_positions``, ``get_volume_from_series``) answers a mixed, doubled or
missing slice with ``None`` or a message that names no file, so these checks are ours.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom

from hkafusion_monai.utils.errors import FusionInputError

from .scan import DicomSeries

__all__ = [
    "check_complete",
    "check_frames_agree",
    "check_slices",
    "check_spacing",
    "spacing_contradiction",
    "vector",
]

# tolerances: direction cosines, and slice spacing (relative, plus an absolute floor for rounded positions)
ORIENT_ATOL = 1e-4
SPACING_RTOL, SPACING_ATOL = 0.02, 0.01


def vector(value: Any, n: int, where: str | Path, name: str) -> np.ndarray:
    """``value`` as ``n`` finite floats, else an error naming ``where`` and the attribute ``name``."""
    try:
        arr = np.asarray([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        arr = np.empty(0)
    if arr.shape != (n,) or not np.isfinite(arr).all():
        raise FusionInputError(f"{where}: no valid {name}; cannot place the frames in space")
    return arr


def check_slices(series: DicomSeries) -> None:
    """Every single-frame slice of ``series`` has a position, orientation, pixel spacing and size, and all
    agree on the last three.

    Raises:
        FusionInputError: naming the first file without a tag, or the two files that differ (a localizer among
            axial slices, a multi-planar series).
    """
    where, slices = series.where, series.slices
    for tag, attr in (
        ("ImagePositionPatient", "position"),
        ("ImageOrientationPatient", "orientation"),
        ("PixelSpacing", "pixel_spacing"),
        ("Rows", "rows"),
    ):
        missing = [s.path for s in slices if getattr(s, attr) is None]
        if missing:
            raise FusionInputError(
                f"{missing[0]}: no valid {tag}; cannot place the slice in space "
                f"({len(missing)} of {len(slices)} file(s) in {where})"
            )
    first = slices[0]
    for s in slices[1:]:
        # every slice has them (checked above)
        assert s.pixel_spacing is not None and first.pixel_spacing is not None
        assert s.orientation is not None and first.orientation is not None
        if (s.rows, s.columns) != (first.rows, first.columns):
            raise FusionInputError(
                f"{where}: slices of different sizes: {first.path} is {first.rows}x{first.columns} but "
                f"{s.path} is {s.rows}x{s.columns} (rows x columns)"
            )
        if not np.allclose(s.pixel_spacing, first.pixel_spacing, rtol=1e-4, atol=1e-6):
            raise FusionInputError(
                f"{where}: slices with different pixel spacings: {first.path} has {first.pixel_spacing.tolist()} "
                f"but {s.path} has {s.pixel_spacing.tolist()}"
            )
        if not np.allclose(s.orientation, first.orientation, atol=ORIENT_ATOL):
            raise FusionInputError(
                f"{where}: slices with different orientations (ImageOrientationPatient): {first.path} has "
                f"{np.round(first.orientation, 4).tolist()} but {s.path} has {np.round(s.orientation, 4).tolist()}; "
                "not one volume (a localizer or a multi-planar series?)"
            )


def check_complete(series: DicomSeries) -> None:
    """The series holds every slice it says it has, where its tags say it: no more slices than files in its
    ``NumberOfSlices`` (PET, NM) or ``ImagesInAcquisition``, and no gap in its instance numbers
    (``InstanceNumber``). An end slice that was lost leaves the spacing even, so :func:`check_spacing` cannot
    see it.

    Raises:
        FusionInputError: naming the folder, the slices it has and the ones it lacks: a series that lost a file
            would be fused as a shorter volume.
    """
    where, slices = series.where, series.slices
    lost = "a series that lost a file would be fused as a shorter volume; restore the file(s) or export again"
    expected = {s.expected for s in slices if s.expected}
    if len(expected) == 1 and (n := expected.pop()) > len(slices):
        raise FusionInputError(
            f"{where}: {len(slices)} slice file(s), but the series has {n} (NumberOfSlices or ImagesInAcquisition): "
            f"{n - len(slices)} missing; {lost}"
        )
    numbers = [s.instance_number for s in slices]
    if len(numbers) > 1 and None not in numbers and len(set(numbers)) == len(numbers):
        present = {int(n) for n in numbers if n is not None}
        gaps = sorted(set(range(min(present), max(present) + 1)) - present)
        if gaps:
            shown = ", ".join(str(g) for g in gaps[:5]) + (", ..." if len(gaps) > 5 else "")
            raise FusionInputError(
                f"{where}: InstanceNumber {shown} missing among {min(present)}..{max(present)} "
                f"({len(slices)} file(s)); {lost}"
            )


def check_frames_agree(orientations: Sequence[np.ndarray], spacings: Sequence[np.ndarray], where: str | Path) -> None:
    """The frames of one multi-frame image share one orientation and one pixel spacing."""
    for name, values, tol in (("orientations", orientations, ORIENT_ATOL), ("pixel spacings", spacings, 1e-4)):
        bad = [i for i, v in enumerate(values) if not np.allclose(v, values[0], atol=tol, rtol=1e-4)]
        if bad:
            raise FusionInputError(
                f"{where}: frames with different {name}: frame 1 has {np.round(values[0], 4).tolist()} but frame "
                f"{bad[0] + 1} has {np.round(values[bad[0]], 4).tolist()}; not one volume"
            )


def check_spacing(depth: np.ndarray, order: np.ndarray, where: str | Path, names: Sequence[str], what: str) -> None:
    """Slices (or frames) at positions ``depth`` (mm along the normal), taken in ``order``, are evenly spaced:
    no two at one position, and every gap within 2 % (plus 0.01 mm) of the median gap.

    Args:
        depth: each slice's position along the slice normal, in the order of ``names``.
        order: the slices from first to last along the normal.
        where: the folder or file, for the message.
        names: each slice's file (or frame), for the message.
        what: ``"slices"`` or ``"frames"``.

    Raises:
        FusionInputError: naming the two neighbours at one position, or the two around an uneven gap (a
            missing slice when the gap is wider).
    """
    gaps = np.diff(depth[order])
    same = np.flatnonzero(gaps < SPACING_ATOL)
    if same.size:
        i = int(same[0])
        raise FusionInputError(
            f"{where}: two {what} at the same position ({depth[order][i]:.3f} mm along the normal): "
            f"{names[order[i]]} and {names[order[i + 1]]} (a duplicate, or two acquisitions in one series)"
        )
    spacing = float(np.median(gaps)) if gaps.size else 0.0
    uneven = np.flatnonzero(np.abs(gaps - spacing) > SPACING_RTOL * spacing + SPACING_ATOL)
    if uneven.size:
        i = int(uneven[0])
        hint = f"; a {what[:-1]} may be missing" if gaps[i] > spacing else ""
        raise FusionInputError(
            f"{where}: uneven {what[:-1]} spacing: {gaps[i]:.4g} mm between {Path(names[order[i]]).name} and "
            f"{Path(names[order[i + 1]]).name} ({what} {i + 1} and {i + 2} of {len(depth)} by position) but "
            f"{spacing:.4g} mm elsewhere{hint}"
        )


def spacing_contradiction(ds: pydicom.Dataset, where: str | Path = "", rtol: float = 0.02) -> str | None:
    """Why a slice's ``PixelSpacing`` contradicts its ``ReconstructionDiameter`` (the reconstructed field of
    view of a PET or CT image: ``PixelSpacing`` should be the diameter over ``Rows`` and ``Columns``), or
    ``None`` when they agree within ``rtol`` or either is absent. A contradiction is a warning, not a
    refusal: the reader places the volume by ``PixelSpacing``, and the message names both values."""
    try:
        diameter = float(ds.get("ReconstructionDiameter") or 0.0)
        spacing = [float(v) for v in ds.get("PixelSpacing") or ()]
        rows, columns = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    except (TypeError, ValueError):
        return None
    if diameter <= 0 or len(spacing) != 2 or rows <= 0 or columns <= 0:
        return None
    expected = (diameter / rows, diameter / columns)  # (row spacing, column spacing)
    if all(abs(s - e) <= rtol * e for s, e in zip(spacing, expected, strict=True)):
        return None
    return (
        f"{where or ds.get('filename', 'DICOM image')}: PixelSpacing {spacing[0]:g}\\{spacing[1]:g} mm contradicts "
        f"ReconstructionDiameter {diameter:g} mm / Rows {rows} = {expected[0]:.4g} mm; the volume is placed by "
        "PixelSpacing, so it may be misplaced: check the series' geometry"
    )
