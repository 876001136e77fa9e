"""Where the frames of an enhanced (or legacy converted enhanced) MR, CT or PET image lie, and their rescale:
each frame's Per-frame Functional Groups, else the Shared ones.

The functional groups are read here, not by highdicom's ``Image.get_volume_geometry``: that answers a missing or
mixed value with ``None``, naming no frame, and tells which frame lies where only through ``get_volume``, which
decodes the pixels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydicom

from hkafusion_monai.utils.errors import FusionInputError

from .checks import check_frames_agree, vector
from .scan import first_item

__all__ = ["enhanced_placement"]


def _functional(frame: pydicom.Dataset | None, shared: pydicom.Dataset | None, group: str, keyword: str) -> Any:
    """``keyword`` of functional group ``group``: the frame's own, else the shared one (``None`` in neither)."""
    for owner in (frame, shared):
        item = first_item(owner, group) if owner is not None else None
        if item is not None and keyword in item and item[keyword].value not in (None, ""):
            return item[keyword].value
    return None


def _frame(ds: pydicom.Dataset, frame: pydicom.Dataset | None, shared: pydicom.Dataset | None, where, f: int):
    """``(position, orientation, pixel spacing, thickness, slope, intercept, rescale type)`` of frame ``f``."""

    def value(group: str, keyword: str) -> Any:
        return _functional(frame, shared, group, keyword)

    label = f"frame {f + 1}"
    position = vector(
        value("PlanePositionSequence", "ImagePositionPatient"),
        3,
        where,
        f"ImagePositionPatient of {label} (Plane Position Sequence)",
    )
    orientation = vector(
        value("PlaneOrientationSequence", "ImageOrientationPatient"),
        6,
        where,
        f"ImageOrientationPatient of {label} (Plane Orientation Sequence)",
    )
    spacing = vector(
        value("PixelMeasuresSequence", "PixelSpacing"), 2, where, f"PixelSpacing of {label} (Pixel Measures Sequence)"
    )
    thickness = value("PixelMeasuresSequence", "SliceThickness")
    slope = value("PixelValueTransformationSequence", "RescaleSlope")
    intercept = value("PixelValueTransformationSequence", "RescaleIntercept")
    return (
        position,
        orientation,
        spacing,
        float(thickness) if thickness is not None else None,
        float(slope if slope is not None else ds.get("RescaleSlope") or 1.0),
        float(intercept if intercept is not None else ds.get("RescaleIntercept") or 0.0),
        str(value("PixelValueTransformationSequence", "RescaleType") or ""),
    )


def enhanced_placement(ds: pydicom.Dataset, where: str | Path, n: int) -> tuple:
    """``(positions, orientation, pixel spacing, thickness, slopes, intercepts, units)`` of the ``n`` frames of
    an enhanced image, frame arrays in file order.

    Raises:
        FusionInputError: naming ``where`` and the problem: per-frame items for another number of frames, a
            frame without position, orientation or pixel spacing, frames of different orientations or spacings.
    """
    shared = first_item(ds, "SharedFunctionalGroupsSequence")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    if len(per_frame) not in (0, n):
        raise FusionInputError(
            f"{where}: {len(per_frame)} per-frame functional group items for {n} frames; corrupt multi-frame header"
        )
    frames = [_frame(ds, per_frame[f] if per_frame else None, shared, where, f) for f in range(n)]
    positions, orientations, spacings, thicknesses, slopes, intercepts, types = zip(*frames, strict=True)
    check_frames_agree(orientations, spacings, where)
    units = str(ds.get("Units", "") or next((t for t in types if t), "") or ds.get("RescaleType", "") or "")
    return (
        np.asarray(positions),
        orientations[0],
        spacings[0],
        thicknesses[0],
        np.asarray(slopes),
        np.asarray(intercepts),
        units,
    )
