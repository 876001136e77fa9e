"""Finding DICOM image files and grouping them into series, from their headers (pydicom, no pixel data).

- :func:`scan_dicom` reads the headers of every DICOM file in a folder (optionally below it) and groups them by
  ``SeriesInstanceUID``; non-DICOM files, hidden files and DICOMDIR files are ignored.
- :func:`read_dicom` reads one file, also a bare dataset without the Part-10 preamble and file meta (as older
  archives and some CD exports hold them), when it has the image and geometry tags a slice needs.
- :func:`series_of` groups headers that were read elsewhere (e.g. by MONAI Deploy's loader) the same way.
- :func:`pick_series` chooses the one series of a folder, or the one named by its UID.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
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

from hkafusion_monai.io.study import study_files
from hkafusion_monai.utils.errors import FusionInputError

__all__ = [
    "MULTIFRAME_SOP_CLASSES",
    "NM_IMAGE_STORAGE",
    "DicomSeries",
    "DicomSlice",
    "first_item",
    "pick_series",
    "read_dicom",
    "read_header",
    "scan_dicom",
    "series_of",
]

logger = logging.getLogger(__name__)

NM_IMAGE_STORAGE = NuclearMedicineImageStorage
#: the multi-frame image storage classes whose frames :func:`~hkafusion_monai.io.dicom.multiframe_geometry` places
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
    "NumberOfSlices",
    "ImagesInAcquisition",
]
#: the tags without which a bare dataset (no preamble) is not read as a slice: the image, and where it lies
BARE_REQUIRED_TAGS = (
    "SeriesInstanceUID",
    "Rows",
    "Columns",
    "BitsAllocated",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "PixelSpacing",
)
_UNREADABLE = (InvalidDicomError, OSError, EOFError, ValueError)


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
    #: the slices the series says it has (``NumberOfSlices``, else ``ImagesInAcquisition``), where a tag gives it
    expected: int | None = None

    @property
    def multiframe(self) -> bool:
        """A multi-frame image (several frames, or a multi-frame storage class), placed by
        :func:`~hkafusion_monai.io.dicom.multiframe_geometry`."""
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

    @property
    def where(self) -> str:
        """Where error messages about the series point: its one folder, else its UID."""
        folders = self.folders
        return str(folders[0]) if len(folders) == 1 else f"series {self.series_uid}"

    def summary(self) -> str:
        """One line naming the series, for error messages and candidate lists."""
        where = ", ".join(str(f) for f in self.folders)
        number = "" if self.series_number is None else f" #{self.series_number}"
        desc = f" {self.description!r}" if self.description else ""
        files = f"{len(self.slices)} file(s) in {where}"
        return f"{self.modality or '?'}{number}{desc}: {files} (SeriesInstanceUID {self.series_uid})"


def first_item(ds: pydicom.Dataset, keyword: str) -> pydicom.Dataset | None:
    """The first item of the sequence ``keyword`` of ``ds``, or None."""
    seq = ds.get(keyword)
    return seq[0] if seq else None


def _bare(path: str | Path, **kwargs: Any) -> pydicom.Dataset | None:
    """A file without the Part-10 preamble read as a bare dataset (pydicom's ``force=True``), with the file
    meta its encoding implies, so that its pixels decode; None when it is no DICOM dataset (a text or image
    file beside the series: no SOP or series UID).

    Raises:
        FusionInputError: a DICOM dataset without the image and geometry tags (:data:`BARE_REQUIRED_TAGS`),
            which cannot be told from a slice in the wrong place: named, and refused.
    """
    try:
        ds = pydicom.dcmread(path, force=True, **kwargs)
        uid = str(ds.get("SOPInstanceUID", "") or ds.get("SeriesInstanceUID", ""))
    except (*_UNREADABLE, KeyError, TypeError, AttributeError):
        return None
    if not uid or not all(part.isdigit() for part in uid.split(".")):
        return None
    wanted = [t for t in BARE_REQUIRED_TAGS if "specific_tags" not in kwargs or t in kwargs["specific_tags"]]
    missing = [t for t in wanted if ds.get(t) in (None, "")]
    if missing:
        raise FusionInputError(
            f"{path}: a DICOM dataset without the Part-10 preamble and without {', '.join(missing)}; refused, as "
            "its place in the series is unknown (add the file meta, e.g. dcmconv +F, or remove the file)"
        )
    implicit, little = ds.original_encoding
    if "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta.TransferSyntaxUID = (
            pydicom.uid.ImplicitVRLittleEndian
            if implicit
            else (pydicom.uid.ExplicitVRLittleEndian if little else pydicom.uid.ExplicitVRBigEndian)
        )
    return ds


def read_dicom(path: str | Path, **kwargs: Any) -> pydicom.Dataset | None:
    """One DICOM file (``pydicom.dcmread(path, **kwargs)``): a Part-10 file, or a bare dataset without the
    preamble and file meta that has the image and geometry tags; None for a file that is not DICOM at all.

    Raises:
        FusionInputError: a bare DICOM dataset without those tags (named); pydicom's errors for a corrupt
            Part-10 file.
    """
    if pydicom.misc.is_dicom(path):
        return pydicom.dcmread(path, **kwargs)
    return _bare(path, **kwargs)


def read_header(path: str | Path) -> pydicom.Dataset:
    """The whole header of one DICOM file (no pixel data), also of a bare dataset (:func:`read_dicom`).

    Raises:
        FusionInputError: the header cannot be read (truncated or corrupt file), naming the file.
    """
    try:
        ds = read_dicom(path, stop_before_pixels=True)
    except _UNREADABLE as e:
        raise FusionInputError(f"{path}: DICOM header cannot be read; truncated or corrupt file ({e})") from e
    if ds is None:
        raise FusionInputError(f"{path}: not a DICOM file")
    return ds


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


def _iter_files(root: Path, recursive: bool) -> Iterable[Path]:
    """The files of ``root`` (with ``recursive``, also of its sub-folders), by the one folder walker
    :func:`hkafusion_monai.io.study.study_files`: a symbolic link that leads out of ``root``, or back into a
    folder already read, is skipped and logged, as the datalist tool and the Deploy application skip it."""
    if root.is_file():
        yield root
        return
    files, skipped = study_files(root)
    for line in skipped:
        logger.warning(line)
    for path in files:
        if (recursive or path.parent == root) and path.name.upper() != "DICOMDIR":
            yield path


def _paths(root: str | os.PathLike | Sequence[str | os.PathLike], recursive: bool) -> Iterable[Path]:
    if not isinstance(root, (str, os.PathLike)):  # a list of files
        paths = [Path(p) for p in root]
        for path in paths:
            if not path.is_file():
                raise FileNotFoundError(f"{path}: missing file (no such file)")
        return paths
    folder = Path(root)
    if not folder.exists():
        raise FileNotFoundError(f"{folder}: missing file or folder (no such file or directory)")
    return _iter_files(folder, recursive)


def _headers(paths: Iterable[Path], errors: list[str] | None) -> Iterable[tuple[Path, pydicom.Dataset]]:
    for path in paths:
        try:
            found = read_dicom(path, stop_before_pixels=True, specific_tags=_HEADER_TAGS)
            if found is None:
                continue
            ds = found
        except (*_UNREADABLE, KeyError) as e:
            problem = (
                str(e)
                if isinstance(e, FusionInputError)
                else (f"{path}: DICOM header cannot be read; truncated or corrupt file ({e})")
            )
            if errors is None:
                raise FusionInputError(problem) from e
            errors.append(problem)
            continue
        yield path, ds


def scan_dicom(
    root: str | os.PathLike | Sequence[str | os.PathLike], recursive: bool = False, errors: list[str] | None = None
) -> list[DicomSeries]:
    """The DICOM image series in a folder (or one file, or a list of files), from the headers only.

    Args:
        root: a folder, one DICOM file, or a list of DICOM files.
        recursive: also walk sub-folders.
        errors: if given, unreadable files are reported here (one line each) and skipped, not raised.

    Returns:
        The series, sorted by study, modality, series number and UID. Files that are not DICOM (neither a
        Part-10 file nor a bare dataset with the image and geometry tags, :func:`read_dicom`), hidden files,
        DICOMDIR files and files without pixel rows/columns (reports, presentation states, ...) are left out.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        FusionInputError: a DICOM file whose header cannot be read (truncated or corrupt), named.
    """
    return series_of(_headers(_paths(root, recursive), errors))


def _new_series(uid: str, ds: pydicom.Dataset) -> DicomSeries:
    return DicomSeries(
        series_uid=uid,
        study_uid=str(ds.get("StudyInstanceUID", "")),
        frame_of_reference_uid=str(ds.get("FrameOfReferenceUID", "")),
        modality=str(ds.get("Modality", "")).upper(),
        description=str(ds.get("SeriesDescription", "")),
        series_number=_int(ds, "SeriesNumber"),
        patient_id=str(ds.get("PatientID", "")),
        image_type=tuple(str(v).upper() for v in (ds.get("ImageType") or ())),
    )


def _slice(path: Path, ds: pydicom.Dataset) -> DicomSlice:
    thickness = ds.get("SliceThickness")
    return DicomSlice(
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
        expected=_int(ds, "NumberOfSlices") or _int(ds, "ImagesInAcquisition"),
    )


def series_of(datasets: Iterable[tuple[str | Path, pydicom.Dataset]]) -> list[DicomSeries]:
    """Group already-read ``(path, dataset)`` pairs into series (the grouping :func:`scan_dicom` applies),
    e.g. the instances a MONAI Deploy ``DICOMDataLoaderOperator`` has read, for
    :func:`~hkafusion_monai.io.dicom.order_series`.

    Returns:
        The series, sorted by study, modality, series number and UID; DICOMDIR files and datasets without
        pixel rows/columns are left out.
    """
    series: dict[str, DicomSeries] = {}
    for path, ds in datasets:
        path = Path(path)
        if str(ds.get("SOPClassUID", "")) == MediaStorageDirectoryStorage or ds.get("Rows") is None:
            continue
        uid = str(ds.get("SeriesInstanceUID", "")) or f"<no SeriesInstanceUID: {path}>"
        if uid not in series:
            series[uid] = _new_series(uid, ds)
        series[uid].slices.append(_slice(path, ds))
    return sorted(
        series.values(),
        key=lambda s: (s.study_uid, s.modality, s.series_number if s.series_number is not None else -1, s.series_uid),
    )


def pick_series(
    candidates: Sequence[DicomSeries], where: str | os.PathLike, series_uid: str | None = None
) -> DicomSeries:
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
