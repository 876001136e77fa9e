"""Where the frames of an NM reconstruction (NM Image Storage, ``ImageType`` value 3 ``RECON TOMO``) lie, and
how their stored counts become intensities.

NM frame placement is ours: highdicom cannot place NM frames, whose geometry lies in the Detector Information
Sequence and the ``SliceVector``, not in the Image Plane module or the functional groups that it reads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom

from hkafusion_monai.utils.errors import FusionInputError

from .checks import vector
from .scan import first_item

__all__ = ["nm_placement"]

#: NM frame vectors that, with more than one distinct value, make the frames several volumes
_NM_OTHER_VECTORS = (
    ("EnergyWindowVector", "energy windows"),
    ("DetectorVector", "detectors"),
    ("PhaseVector", "phases"),
    ("RotationVector", "rotations"),
    ("RRIntervalVector", "R-R intervals"),
    ("TimeSlotVector", "time slots"),
    ("TimeSliceVector", "time slices"),
    ("AngularViewVector", "angular views"),
)


def _check_one_volume(ds: pydicom.Dataset, where: str | Path, n: int) -> None:
    """A reconstructed tomographic volume of one energy window, detector, phase, rotation, ..."""
    image_type = [str(v).upper() for v in (ds.get("ImageType") or ())]
    kind = image_type[2] if len(image_type) > 2 else ""
    if kind != "RECON TOMO":
        shown = "\\".join(image_type) or "(none)"
        raise FusionInputError(
            f"{where}: NM image of ImageType {shown}; only reconstructed tomographic volumes (ImageType value 3 "
            "RECON TOMO) can be fused, not planar, whole-body, gated or projection images"
        )
    for keyword, what in _NM_OTHER_VECTORS:
        values = ds.get(keyword)
        if values is not None and len({int(v) for v in values}) > 1:
            raise FusionInputError(
                f"{where}: the {n} frames hold {len(set(values))} {what} ({keyword}); one volume is expected "
                "(export one reconstruction per file)"
            )


def _positions(ds: pydicom.Dataset, where: str | Path, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(positions, orientation, pixel spacing)``: frame ``f`` lies ``SliceVector[f] - 1`` spacings from the
    first along the normal (a negative spacing runs against it)."""
    slices = ds.get("SliceVector")
    numbers = vector(slices, n, where, "SliceVector") if slices is not None else np.arange(1.0, n + 1)
    detector = first_item(ds, "DetectorInformationSequence") or pydicom.Dataset()

    def plane(keyword: str, n_values: int) -> np.ndarray:
        value = detector.get(keyword) or ds.get(keyword)
        return vector(value, n_values, where, f"{keyword} (Detector Information Sequence)")

    orientation, origin = plane("ImageOrientationPatient", 6), plane("ImagePositionPatient", 3)
    spacing = vector(ds.get("PixelSpacing"), 2, where, "PixelSpacing")
    between = ds.get("SpacingBetweenSlices") or ds.get("SliceThickness")
    if n > 1 and (between in (None, "") or float(between) == 0.0):
        raise FusionInputError(f"{where}: no SpacingBetweenSlices or SliceThickness; cannot place the frames")
    normal = np.cross(orientation[:3], orientation[3:])
    positions = origin[None] + (numbers - 1.0)[:, None] * float(between or 1.0) * normal[None]
    return positions, orientation, spacing


def _rescale(ds: pydicom.Dataset, where: str | Path) -> tuple[float, float, str]:
    """``(slope, intercept, units)``: NM has no Modality LUT; its Real World Value Mapping gives the counts (or
    activity), and some systems write a Rescale Slope/Intercept instead (a Standard Extended SOP Class)."""
    slope, intercept, units = float(ds.get("RescaleSlope") or 1.0), float(ds.get("RescaleIntercept") or 0.0), ""
    mapping = first_item(ds, "RealWorldValueMappingSequence")
    if mapping is not None:
        if "RealWorldValueSlope" not in mapping:
            raise FusionInputError(
                f"{where}: the Real World Value Mapping is a look-up table; only a linear one is read"
            )
        slope = float(mapping.RealWorldValueSlope)
        intercept = float(mapping.get("RealWorldValueIntercept") or 0.0)
        unit = first_item(mapping, "MeasurementUnitsCodeSequence")
        units = str(unit.get("CodeValue", "")) if unit is not None else str(mapping.get("LUTLabel", ""))
    return slope, intercept, units or str(ds.get("Units", "") or ds.get("RescaleType", "") or "")


def nm_placement(ds: pydicom.Dataset, where: str | Path, n: int) -> tuple:
    """``(positions, orientation, pixel spacing, thickness, slopes, intercepts, units)`` of the ``n`` frames of an
    NM reconstruction, frame arrays in file order.

    Raises:
        FusionInputError: naming ``where`` and the problem: not a reconstructed volume, several windows or
            phases, missing geometry, a look-up-table value mapping.
    """
    _check_one_volume(ds, where, n)
    positions, orientation, spacing = _positions(ds, where, n)
    slope, intercept, units = _rescale(ds, where)
    thickness = ds.get("SliceThickness")
    thickness = float(thickness) if thickness not in (None, "") else None
    return positions, orientation, spacing, thickness, np.full(n, slope), np.full(n, intercept), units
