"""Finding and checking DICOM image series from their headers (pydicom only, no pixel data).

One home for the rules shared by the volume reader (:class:`~hkafusion_monai.transforms.FusionDicomReader`)
and the DICOM-study datalist (``python -m hkafusion_monai.data.datalist dicom``):

- :func:`scan_dicom` reads the headers of every DICOM file in a folder (optionally below it) and groups
  them by ``SeriesInstanceUID``; non-DICOM files, hidden files and DICOMDIR files are ignored.
- :func:`order_series` checks that a series is one regular volume (single-frame images of one size,
  pixel spacing and orientation, at distinct, evenly spaced positions along the slice normal) and
  returns its files in spatial order, or raises :class:`FusionInputError` naming the folder and problem.

Positions and directions are in the DICOM patient coordinate system (LPS, millimetres).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from .reader import FusionInputError

__all__ = [
    "DICOM_MODALITIES",
    "DicomSeries",
    "DicomSlice",
    "lps_affine",
    "order_series",
    "pick_series",
    "scan_dicom",
    "series_of",
]

# DICOM Modality tag -> the modality name of the datalists
DICOM_MODALITIES = {"MR": "MRI", "CT": "CT", "PT": "PET", "NM": "SPECT"}
_MEDIA_DIRECTORY_SOP = "1.2.840.10008.1.3.10"  # DICOMDIR
_HEADER_TAGS = [
    "SOPClassUID",
    "Modality",
    "PatientID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "FrameOfReferenceUID",
    "SeriesNumber",
    "SeriesDescription",
    "InstanceNumber",
    "ImageType",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "PixelSpacing",
    "SliceThickness",
    "SpacingBetweenSlices",
    "Rows",
    "Columns",
    "NumberOfFrames",
]
# tolerances: direction cosines, and slice spacing (relative, plus an absolute floor for rounded positions)
_ORIENT_ATOL = 1e-4
_SPACING_RTOL, _SPACING_ATOL = 0.02, 0.01


@dataclass
class DicomSlice:
    """The header fields of one DICOM image file that decide where its pixels lie."""

    path: Path
    instance_number: int | None
    position: np.ndarray | None  # ImagePositionPatient, (3,)
    orientation: np.ndarray | None  # ImageOrientationPatient, (6,): row direction, column direction
    pixel_spacing: np.ndarray | None  # (row spacing, column spacing)
    rows: int | None
    columns: int | None
    frames: int
    thickness: float | None


@dataclass
class DicomSeries:
    """One DICOM series: the UIDs and descriptive tags of its first file, and its slices (unordered)."""

    series_uid: str
    study_uid: str
    frame_of_reference_uid: str
    modality: str
    description: str
    series_number: int | None
    patient_id: str
    image_type: tuple[str, ...]
    slices: list[DicomSlice] = field(default_factory=list)

    @property
    def files(self) -> list[Path]:
        return [s.path for s in self.slices]

    @property
    def folders(self) -> list[Path]:
        """The folders holding the series' files, sorted."""
        return sorted({s.path.parent for s in self.slices})

    def summary(self) -> str:
        """One line naming the series, for error messages and candidate lists."""
        where = ", ".join(str(f) for f in self.folders)
        number = "" if self.series_number is None else f" #{self.series_number}"
        desc = f" {self.description!r}" if self.description else ""
        files = f"{len(self.slices)} file(s) in {where}"
        return f"{self.modality or '?'}{number}{desc}: {files} (SeriesInstanceUID {self.series_uid})"


def _floats(ds: pydicom.Dataset, name: str, n: int) -> np.ndarray | None:
    value = ds.get(name)
    if value is None:
        return None
    try:
        arr = np.asarray([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return arr if arr.shape == (n,) and np.isfinite(arr).all() else None


def _int(ds: pydicom.Dataset, name: str) -> int | None:
    value = ds.get(name)
    try:
        return None if value in (None, "") else int(value)
    except (TypeError, ValueError):
        return None


def _is_candidate(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.name.upper() != "DICOMDIR"


def _iter_files(root: Path, recursive: bool) -> Iterable[Path]:
    if root.is_file():
        yield root
        return
    if recursive:
        for folder, dirs, names in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(names):
                if _is_candidate(Path(folder) / name):
                    yield Path(folder) / name
    else:
        yield from sorted(p for p in root.iterdir() if _is_candidate(p))


def scan_dicom(root: str | Path, recursive: bool = False, errors: list[str] | None = None) -> list[DicomSeries]:
    """The DICOM image series in a folder (or one file), from the headers only.

    Args:
        root: a folder, or one DICOM file.
        recursive: also walk sub-folders.
        errors: if given, unreadable files are reported here (one line each) and skipped, not raised.

    Returns:
        The series, sorted by study, modality, series number and UID. Files that are not DICOM (no
        ``DICM`` preamble), hidden files, DICOMDIR files and files without pixel rows/columns (reports,
        presentation states, ...) are left out.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        FusionInputError: a DICOM file whose header cannot be read (truncated or corrupt), named.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root}: missing file or folder (no such file or directory)")

    def headers() -> Iterable[tuple[Path, pydicom.Dataset]]:
        for path in _iter_files(root, recursive):
            try:
                if not pydicom.misc.is_dicom(path):
                    continue
                ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_HEADER_TAGS)
            except (InvalidDicomError, OSError, EOFError, ValueError, KeyError) as e:
                problem = f"{path}: DICOM header cannot be read; truncated or corrupt file ({e})"
                if errors is None:
                    raise FusionInputError(problem) from e
                errors.append(problem)
                continue
            yield path, ds

    return series_of(headers())


def series_of(datasets: Iterable[tuple[str | Path, pydicom.Dataset]]) -> list[DicomSeries]:
    """Group already-read ``(path, dataset)`` pairs into series (the grouping :func:`scan_dicom` applies),
    e.g. the instances a MONAI Deploy ``DICOMDataLoaderOperator`` has read, for :func:`order_series`.

    Returns:
        The series, sorted by study, modality, series number and UID; DICOMDIR files and datasets without
        pixel rows/columns are left out.
    """
    series: dict[str, DicomSeries] = {}
    for path, ds in datasets:
        path = Path(path)
        if str(ds.get("SOPClassUID", "")) == _MEDIA_DIRECTORY_SOP or ds.get("Rows") is None:
            continue
        uid = str(ds.get("SeriesInstanceUID", "")) or f"<no SeriesInstanceUID: {path}>"
        if uid not in series:
            series[uid] = DicomSeries(
                series_uid=uid,
                study_uid=str(ds.get("StudyInstanceUID", "")),
                frame_of_reference_uid=str(ds.get("FrameOfReferenceUID", "")),
                modality=str(ds.get("Modality", "")).upper(),
                description=str(ds.get("SeriesDescription", "")),
                series_number=_int(ds, "SeriesNumber"),
                patient_id=str(ds.get("PatientID", "")),
                image_type=tuple(str(v).upper() for v in (ds.get("ImageType") or ())),
            )
        thickness = ds.get("SliceThickness")
        series[uid].slices.append(
            DicomSlice(
                path=path,
                instance_number=_int(ds, "InstanceNumber"),
                position=_floats(ds, "ImagePositionPatient", 3),
                orientation=_floats(ds, "ImageOrientationPatient", 6),
                pixel_spacing=_floats(ds, "PixelSpacing", 2),
                rows=_int(ds, "Rows"),
                columns=_int(ds, "Columns"),
                frames=_int(ds, "NumberOfFrames") or 1,
                thickness=float(thickness) if thickness not in (None, "") else None,
            )
        )
    return sorted(
        series.values(),
        key=lambda s: (s.study_uid, s.modality, s.series_number if s.series_number is not None else -1, s.series_uid),
    )


def _where(series: DicomSeries) -> str:
    folders = series.folders
    return str(folders[0]) if len(folders) == 1 else f"series {series.series_uid}"


def order_series(series: DicomSeries) -> tuple[list[Path], np.ndarray]:
    """Check that a series is one regular volume and return its files in spatial order.

    Slices are ordered by their position along the slice normal (the cross product of the row and
    column directions), not by ``InstanceNumber``, which scanners do not always number in space.

    Args:
        series: from :func:`scan_dicom`.

    Returns:
        ``(files, step)``: the files from the first to the last slice along the normal, and the LPS
        vector from one slice's ``ImagePositionPatient`` to the next (for one slice: the normal times
        ``SliceThickness``, or 1 mm without it).

    Raises:
        FusionInputError: naming the folder and the problem: multi-frame files, missing geometry tags,
            slices of different sizes, pixel spacings or orientations (e.g. a localizer), two slices at
            one position, or uneven slice spacing (a missing slice).
    """
    where, slices = _where(series), series.slices
    if not slices:
        raise FusionInputError(f"{where}: no DICOM image files")
    multi = [s for s in slices if s.frames > 1]
    if multi:
        raise FusionInputError(
            f"{multi[0].path}: multi-frame DICOM ({multi[0].frames} frames) is not supported; "
            "use a series of single-frame images, or convert the volume to NIfTI"
        )
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
        if not np.allclose(s.orientation, first.orientation, atol=_ORIENT_ATOL):
            raise FusionInputError(
                f"{where}: slices with different orientations (ImageOrientationPatient): {first.path} has "
                f"{np.round(first.orientation, 4).tolist()} but {s.path} has {np.round(s.orientation, 4).tolist()}; "
                "not one volume (a localizer or a multi-planar series?)"
            )
    normal = np.cross(first.orientation[:3], first.orientation[3:])
    if len(slices) == 1:
        return [first.path], normal * (first.thickness or 1.0)
    depth = np.array([float(s.position @ normal) for s in slices])
    order = np.argsort(depth, kind="stable")
    ordered = [slices[i] for i in order]
    gaps = np.diff(depth[order])
    same = np.flatnonzero(gaps < _SPACING_ATOL)
    if same.size:
        i = int(same[0])
        raise FusionInputError(
            f"{where}: two slices at the same position ({depth[order][i]:.3f} mm along the normal): "
            f"{ordered[i].path} and {ordered[i + 1].path} (a duplicate, or two acquisitions in one series)"
        )
    spacing = float(np.median(gaps))
    uneven = np.flatnonzero(np.abs(gaps - spacing) > _SPACING_RTOL * spacing + _SPACING_ATOL)
    if uneven.size:
        i = int(uneven[0])
        hint = "; a slice may be missing" if gaps[i] > spacing else ""
        raise FusionInputError(
            f"{where}: uneven slice spacing: {gaps[i]:.4g} mm between {ordered[i].path.name} and "
            f"{ordered[i + 1].path.name} (slices {i + 1} and {i + 2} of {len(slices)} by position) but "
            f"{spacing:.4g} mm elsewhere{hint}"
        )
    step = (ordered[-1].position - ordered[0].position) / (len(ordered) - 1)
    return [s.path for s in ordered], step


def lps_affine(slices: Sequence[pydicom.Dataset]) -> np.ndarray:
    """The ``(4, 4)`` LPS affine of a volume of single-frame slices in spatial order: voxel
    ``(column, row, slice)`` to millimetres (ITK's index order).

    Column ``i`` steps along the row direction (``ImageOrientationPatient[:3]``) by the column spacing
    (``PixelSpacing[1]``), row ``j`` along the column direction by the row spacing (``PixelSpacing[0]``),
    slice ``k`` from the first to the last ``ImagePositionPatient`` (one slice: the normal times
    ``SliceThickness``, or 1 mm).
    """
    if not slices:
        raise ValueError("lps_affine: no slices")
    first, last = slices[0], slices[-1]
    o = np.asarray(first.ImageOrientationPatient, dtype=float)
    row_spacing, col_spacing = (float(v) for v in first.PixelSpacing)
    p0 = np.asarray(first.ImagePositionPatient, dtype=float)
    if len(slices) > 1:
        step = (np.asarray(last.ImagePositionPatient, dtype=float) - p0) / (len(slices) - 1)
    else:
        step = np.cross(o[:3], o[3:]) * float(first.get("SliceThickness") or 1.0)
    affine = np.eye(4)
    affine[:3, 0] = o[:3] * col_spacing
    affine[:3, 1] = o[3:] * row_spacing
    affine[:3, 2] = step
    affine[:3, 3] = p0
    return affine


def pick_series(candidates: Sequence[DicomSeries], where: str | Path, series_uid: str | None = None) -> DicomSeries:
    """The one series of ``candidates`` (or the one with ``series_uid``); otherwise an error listing them."""
    if series_uid:
        hits = [s for s in candidates if s.series_uid == series_uid]
        if not hits:
            listed = "\n  ".join(s.summary() for s in candidates) or "(none)"
            raise FusionInputError(f"{where}: no DICOM series with SeriesInstanceUID {series_uid}; found:\n  {listed}")
        return hits[0]
    if not candidates:
        raise FusionInputError(f"{where}: no DICOM image series found (no readable DICOM image files)")
    if len(candidates) > 1:
        listed = "\n  ".join(s.summary() for s in candidates)
        raise FusionInputError(
            f"{where}: {len(candidates)} DICOM series found, expected one; put each series in its own folder "
            f"or name one with '<key>_series_uid' in the datalist item. Candidates:\n  {listed}"
        )
    return candidates[0]
