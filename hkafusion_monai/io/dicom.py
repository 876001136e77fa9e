"""Finding and checking DICOM image series from their headers (pydicom only, no pixel data).

One home for the rules shared by the volume reader (:class:`~hkafusion_monai.transforms.FusionDicomReader`),
the DICOM-study datalist (``python -m hkafusion_monai.data.datalist dicom``), the derived-series writer
(:mod:`hkafusion_monai.io.dicom_series`) and the Deploy application. It holds no transform: it reads headers,
so it lives in ``io``, which sits below ``transforms`` (docs/architecture.md).

- :func:`scan_dicom` reads the headers of every DICOM file in a folder (optionally below it) and groups
  them by ``SeriesInstanceUID``; non-DICOM files, hidden files and DICOMDIR files are ignored.
- :func:`order_series` checks that a series is one regular volume (single-frame images of one size,
  pixel spacing and orientation, at distinct, evenly spaced positions along the slice normal, or one
  multi-frame image) and returns its files in spatial order, or raises :class:`FusionInputError` naming the
  folder and problem.
- :func:`multiframe_geometry` places the frames of one multi-frame image: an NM reconstruction (NM Image
  Storage, ``RECON TOMO``: geometry in the Detector Information Sequence, frames along the slice vector) or
  an enhanced (and legacy converted enhanced) MR, CT or PET image (geometry and rescale per frame in the
  functional groups).

Positions and directions are in the DICOM patient coordinate system (LPS, millimetres).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from highdicom.spatial import create_affine_matrix_from_attributes
from pydicom.errors import InvalidDicomError
from pydicom.uid import (
    EnhancedCTImageStorage,
    EnhancedMRImageStorage,
    EnhancedPETImageStorage,
    LegacyConvertedEnhancedCTImageStorage,
    LegacyConvertedEnhancedMRImageStorage,
    LegacyConvertedEnhancedPETImageStorage,
    MediaStorageDirectoryStorage,
    NuclearMedicineImageStorage,
)

from hkafusion_monai.utils.errors import FusionInputError
from hkafusion_monai.utils.tasks import DICOM_MODALITIES

__all__ = [
    "DICOM_MODALITIES",
    "MULTIFRAME_SOP_CLASSES",
    "DicomSeries",
    "DicomSlice",
    "FrameGeometry",
    "frame_headers",
    "lps_affine",
    "multiframe_geometry",
    "order_series",
    "pick_series",
    "scan_dicom",
    "series_of",
    "spacing_contradiction",
]

_MEDIA_DIRECTORY_SOP = MediaStorageDirectoryStorage  # DICOMDIR
NM_IMAGE_STORAGE = NuclearMedicineImageStorage
#: the multi-frame image storage classes whose frames :func:`multiframe_geometry` places
MULTIFRAME_SOP_CLASSES = {
    NM_IMAGE_STORAGE: "NM Image",
    EnhancedMRImageStorage: "Enhanced MR Image",
    LegacyConvertedEnhancedMRImageStorage: "Legacy Converted Enhanced MR Image",
    EnhancedCTImageStorage: "Enhanced CT Image",
    LegacyConvertedEnhancedCTImageStorage: "Legacy Converted Enhanced CT Image",
    EnhancedPETImageStorage: "Enhanced PET Image",
    LegacyConvertedEnhancedPETImageStorage: "Legacy Converted Enhanced PET Image",
}
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
    sop_class_uid: str = ""

    @property
    def multiframe(self) -> bool:
        """A multi-frame image (several frames, or a multi-frame storage class), placed by
        :func:`multiframe_geometry`."""
        return self.frames > 1 or self.sop_class_uid in MULTIFRAME_SOP_CLASSES


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


def scan_dicom(
    root: str | Path | Sequence[str | Path], recursive: bool = False, errors: list[str] | None = None
) -> list[DicomSeries]:
    """The DICOM image series in a folder (or one file, or a list of files), from the headers only.

    Args:
        root: a folder, one DICOM file, or a list of DICOM files.
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
    if isinstance(root, (list, tuple)):
        paths: Iterable[Path] = [Path(p) for p in root]
        for path in paths:
            if not path.is_file():
                raise FileNotFoundError(f"{path}: missing file (no such file)")
    else:
        root = Path(root)
        if not root.exists():
            raise FileNotFoundError(f"{root}: missing file or folder (no such file or directory)")
        paths = _iter_files(root, recursive)

    def headers() -> Iterable[tuple[Path, pydicom.Dataset]]:
        for path in paths:
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
                sop_class_uid=str(ds.get("SOPClassUID", "")),
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
    multi = [s for s in slices if s.multiframe]
    if multi:
        if len(slices) > 1:
            raise FusionInputError(
                f"{where}: {len(multi)} multi-frame image(s) among {len(slices)} files of series "
                f"{series.series_uid}; one multi-frame image per series, or single-frame images, are supported"
            )
        path = multi[0].path
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError, EOFError, ValueError) as e:
            raise FusionInputError(f"{path}: DICOM header cannot be read; truncated or corrupt file ({e})") from e
        return [path], multiframe_geometry(header, path).affine[:3, 2].copy()
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
    order = _spatial_order(depth, where, [str(s.path) for s in slices], "slices")
    ordered = [slices[i] for i in order]
    step = (ordered[-1].position - ordered[0].position) / (len(ordered) - 1)
    return [s.path for s in ordered], step


def _spatial_order(depth: np.ndarray, where: str | Path, names: Sequence[str], what: str) -> np.ndarray:
    """The order of positions ``depth`` (mm along the normal) from first to last; refuses two at one
    position and uneven spacing (naming the two neighbours by ``names``)."""
    order = np.argsort(depth, kind="stable")
    gaps = np.diff(depth[order])
    same = np.flatnonzero(gaps < _SPACING_ATOL)
    if same.size:
        i = int(same[0])
        raise FusionInputError(
            f"{where}: two {what} at the same position ({depth[order][i]:.3f} mm along the normal): "
            f"{names[order[i]]} and {names[order[i + 1]]} (a duplicate, or two acquisitions in one series)"
        )
    spacing = float(np.median(gaps)) if gaps.size else 0.0
    uneven = np.flatnonzero(np.abs(gaps - spacing) > _SPACING_RTOL * spacing + _SPACING_ATOL)
    if uneven.size:
        i = int(uneven[0])
        hint = f"; a {what[:-1]} may be missing" if gaps[i] > spacing else ""
        raise FusionInputError(
            f"{where}: uneven {what[:-1]} spacing: {gaps[i]:.4g} mm between {Path(names[order[i]]).name} and "
            f"{Path(names[order[i + 1]]).name} ({what} {i + 1} and {i + 2} of {len(depth)} by position) but "
            f"{spacing:.4g} mm elsewhere{hint}"
        )
    return order


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
    affine = create_affine_matrix_from_attributes(
        image_position=[float(v) for v in first.ImagePositionPatient],
        image_orientation=[float(v) for v in first.ImageOrientationPatient],
        pixel_spacing=[float(v) for v in first.PixelSpacing],
        spacing_between_slices=float(first.get("SliceThickness") or 1.0),
    )
    if len(slices) > 1:
        p0 = np.asarray(first.ImagePositionPatient, dtype=float)
        affine[:3, 2] = (np.asarray(last.ImagePositionPatient, dtype=float) - p0) / (len(slices) - 1)
    return affine


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


def _first_item(ds: pydicom.Dataset, keyword: str) -> pydicom.Dataset | None:
    seq = ds.get(keyword)
    return seq[0] if seq else None


def _functional(
    frame: pydicom.Dataset | None, shared: pydicom.Dataset | None, group: str, keyword: str
) -> object | None:
    """``keyword`` of functional group ``group``: the frame's own, else the shared one."""
    for owner in (frame, shared):
        item = _first_item(owner, group) if owner is not None else None
        if item is not None and keyword in item and item[keyword].value not in (None, ""):
            return item[keyword].value
    return None


def _vector(value: object, n: int, where: str | Path, name: str) -> np.ndarray:
    try:
        arr = np.asarray([float(v) for v in value], dtype=np.float64)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        arr = np.empty(0)
    if arr.shape != (n,) or not np.isfinite(arr).all():
        raise FusionInputError(f"{where}: no valid {name}; cannot place the frames in space")
    return arr


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


def _nm_geometry(ds: pydicom.Dataset, where: str | Path, n: int):
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
    slices = ds.get("SliceVector")
    numbers = _vector(slices, n, where, "SliceVector") if slices is not None else np.arange(1.0, n + 1)
    detector = _first_item(ds, "DetectorInformationSequence")
    iop = (detector.get("ImageOrientationPatient") if detector is not None else None) or ds.get("ImageOrientationPatient")
    ipp = (detector.get("ImagePositionPatient") if detector is not None else None) or ds.get("ImagePositionPatient")
    orientation = _vector(iop, 6, where, "ImageOrientationPatient (Detector Information Sequence)")
    origin = _vector(ipp, 3, where, "ImagePositionPatient (Detector Information Sequence)")
    spacing = _vector(ds.get("PixelSpacing"), 2, where, "PixelSpacing")
    thickness = ds.get("SliceThickness")
    between = ds.get("SpacingBetweenSlices") or thickness
    if n > 1 and (between in (None, "") or float(between) == 0.0):
        raise FusionInputError(f"{where}: no SpacingBetweenSlices or SliceThickness; cannot place the frames")
    normal = np.cross(orientation[:3], orientation[3:])
    # slice s of a RECON TOMO lies (s - 1) spacings from the first along the normal (a negative spacing
    # runs against it)
    positions = origin[None] + (numbers - 1.0)[:, None] * float(between or 1.0) * normal[None]
    # NM has no Modality LUT: its Real World Value Mapping gives the counts (or activity); some systems
    # write a Rescale Slope/Intercept instead (a Standard Extended SOP Class)
    slope, intercept, units = float(ds.get("RescaleSlope") or 1.0), float(ds.get("RescaleIntercept") or 0.0), ""
    mapping = _first_item(ds, "RealWorldValueMappingSequence")
    if mapping is not None:
        if "RealWorldValueSlope" not in mapping:
            raise FusionInputError(f"{where}: the Real World Value Mapping is a look-up table; only a linear one is read")
        slope = float(mapping.RealWorldValueSlope)
        intercept = float(mapping.get("RealWorldValueIntercept") or 0.0)
        unit = _first_item(mapping, "MeasurementUnitsCodeSequence")
        units = str(unit.get("CodeValue", "")) if unit is not None else str(mapping.get("LUTLabel", ""))
    units = units or str(ds.get("Units", "") or ds.get("RescaleType", "") or "")
    return positions, orientation, spacing, float(thickness) if thickness not in (None, "") else None, \
        np.full(n, slope), np.full(n, intercept), units


def _enhanced_geometry(ds: pydicom.Dataset, where: str | Path, n: int):
    shared = _first_item(ds, "SharedFunctionalGroupsSequence")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    if len(per_frame) not in (0, n):
        raise FusionInputError(
            f"{where}: {len(per_frame)} per-frame functional group items for {n} frames; corrupt multi-frame header"
        )
    positions, orientations, spacings, thicknesses, slopes, intercepts = [], [], [], [], [], []
    units = ""
    for f in range(n):
        frame = per_frame[f] if per_frame else None
        label = f"frame {f + 1}"
        positions.append(
            _vector(_functional(frame, shared, "PlanePositionSequence", "ImagePositionPatient"), 3, where,
                    f"ImagePositionPatient of {label} (Plane Position Sequence)")
        )
        orientations.append(
            _vector(_functional(frame, shared, "PlaneOrientationSequence", "ImageOrientationPatient"), 6, where,
                    f"ImageOrientationPatient of {label} (Plane Orientation Sequence)")
        )
        spacings.append(
            _vector(_functional(frame, shared, "PixelMeasuresSequence", "PixelSpacing"), 2, where,
                    f"PixelSpacing of {label} (Pixel Measures Sequence)")
        )
        thickness = _functional(frame, shared, "PixelMeasuresSequence", "SliceThickness")
        thicknesses.append(float(thickness) if thickness is not None else None)
        slope = _functional(frame, shared, "PixelValueTransformationSequence", "RescaleSlope")
        intercept = _functional(frame, shared, "PixelValueTransformationSequence", "RescaleIntercept")
        slopes.append(float(slope if slope is not None else ds.get("RescaleSlope") or 1.0))
        intercepts.append(float(intercept if intercept is not None else ds.get("RescaleIntercept") or 0.0))
        units = units or str(_functional(frame, shared, "PixelValueTransformationSequence", "RescaleType") or "")
    for name, values, tol in (("orientations", orientations, _ORIENT_ATOL), ("pixel spacings", spacings, 1e-4)):
        bad = [i for i, v in enumerate(values) if not np.allclose(v, values[0], atol=tol, rtol=1e-4)]
        if bad:
            raise FusionInputError(
                f"{where}: frames with different {name}: frame 1 has {np.round(values[0], 4).tolist()} but frame "
                f"{bad[0] + 1} has {np.round(values[bad[0]], 4).tolist()}; not one volume"
            )
    units = str(ds.get("Units", "") or units or ds.get("RescaleType", "") or "")
    return np.asarray(positions), orientations[0], spacings[0], thicknesses[0], np.asarray(slopes), \
        np.asarray(intercepts), units


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
        positions, orientation, spacing, thickness, slopes, intercepts, units = _nm_geometry(ds, where, n)
    elif "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds:
        positions, orientation, spacing, thickness, slopes, intercepts, units = _enhanced_geometry(ds, where, n)
    else:
        raise FusionInputError(
            f"{where}: multi-frame {ds.get('Modality', '')} image ({n} frames) of a kind that cannot be placed in "
            f"space (SOP class {ds.get('SOPClassUID', '?')}); NM RECON TOMO and enhanced MR/CT/PET images are read"
        )
    normal = np.cross(orientation[:3], orientation[3:])
    if n > 1:
        order = _spatial_order(positions @ normal, where, [f"frame {f + 1}" for f in range(n)], "frames")
        step = (positions[order[-1]] - positions[order[0]]) / (n - 1)
    else:
        order, step = np.zeros(1, dtype=int), normal * (thickness or 1.0)
    affine = np.eye(4)
    affine[:3, 0] = orientation[:3] * spacing[1]
    affine[:3, 1] = orientation[3:] * spacing[0]
    affine[:3, 2] = step
    affine[:3, 3] = positions[order[0]]
    return FrameGeometry(
        order=np.asarray(order), affine=affine, positions=positions, orientation=orientation,
        pixel_spacing=spacing, thickness=thickness, slopes=slopes, intercepts=intercepts, units=units,
    )


_FRAME_GROUPS = ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence", "DetectorInformationSequence")


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
