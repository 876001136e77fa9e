"""The fused volume as a derived DICOM series that viewers and PACS accept.

:func:`write_fused_series` writes one **MR Image Storage** instance per MRI slice, on the MRI's own grid:

- identity: the Patient and General Study modules are copied from the MRI; a new ``SeriesInstanceUID`` and
  new ``SOPInstanceUID`` s come from highdicom's UID generator (root ``1.2.826.0.1.3680043.10.511.``);
- ``ImageType`` ``DERIVED\\SECONDARY\\OTHER`` (the MR IOD requires a third value; none of its defined terms
  describes a fusion); ``SeriesDescription`` and ``DerivationDescription`` name HKAFusion
  and the model version; every instance references both source series (``ReferencedSeriesSequence``,
  Common Instance Reference module) and its MRI slice plus the nearest slice of the other series
  (``SourceImageSequence``);
- geometry: ``FrameOfReferenceUID``, ``ImagePositionPatient``, ``ImageOrientationPatient``, ``PixelSpacing``,
  ``SliceThickness`` (and ``SpacingBetweenSlices``) per slice, copied from the MRI slice it replaces;
- pixels: 16-bit unsigned ``MONOCHROME2``, ``round(65535 * clip(x, 0, 1))``, with no rescale (the MR IOD
  has none) and a full-range window;
- limits: :data:`RESEARCH_USE_COMMENT` in ``ImageComments``, followed by an optional note for the reader (the
  Deploy application's hot-spot guard: which hot spots of the PET/SPECT the fusion lost, and where), which
  ``SeriesDescription`` then flags too.

Why MR Image Storage: the result lives on the MRI's grid and in its frame of reference, and every viewer
places MR slices in 3-D from the Image Plane module. A Parametric Map would claim a quantity with units
(the fused intensity has none), and few clinical viewers display it. The optional colour rendering is a
separate **RGB Secondary Capture** series (highdicom's ``SCImage``, :mod:`~hkafusion_monai.io.dicom_colour`)
carrying the same plane attributes; :mod:`~hkafusion_monai.io.dicom_references` builds the references to the
sources.

pydicom builds the MR instances because highdicom has no single-frame MR constructor; highdicom builds the
Secondary Capture instances and the UIDs.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, SecondaryCaptureImageStorage

from hkafusion_monai.io.atomic import atomic_write_dir
from hkafusion_monai.io.dicom import frame_headers, order_series, pick_series, scan_dicom
from hkafusion_monai.io.dicom.scan import read_header
from hkafusion_monai.io.dicom_colour import sc_instance
from hkafusion_monai.io.dicom_references import common_references, slice_normal, source_images
from hkafusion_monai.utils.errors import HKAFusionError
from hkafusion_monai.utils.quantisation import to_uint16

__all__ = [
    "MR_IMAGE_STORAGE",
    "check_written_series",
    "RESEARCH_USE_COMMENT",
    "SECONDARY_CAPTURE_STORAGE",
    "fused_to_uint16",
    "new_uid",
    "write_fused_series",
    "write_fused_series_from_folders",
]

MR_IMAGE_STORAGE = MRImageStorage
SECONDARY_CAPTURE_STORAGE = SecondaryCaptureImageStorage
MANUFACTURER = "hkafusion-monai"

RESEARCH_USE_COMMENT = (
    "RESEARCH USE ONLY - NOT FOR DIAGNOSTIC USE. Fused image computed by HKAFusion from an MR series and a "
    "co-registered CT/PET/SPECT series; its intensities are not quantitative (no HU, no SUV). Trained on 2-D "
    "axial brain slices (Harvard Whole Brain Atlas); other anatomy, contrasts or devices are outside its "
    "validated domain."
)

_PATIENT = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge", "IssuerOfPatientID")
_STUDY = (
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
    "StudyDescription",
)
# type 2 attributes that must be present, empty when the MRI lacks them
_TYPE2_EMPTY = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)


def new_uid() -> str:
    """A new UID under highdicom's documented root (``1.2.826.0.1.3680043.10.511.``)."""
    import highdicom

    return str(highdicom.UID())


def fused_to_uint16(volume: np.ndarray) -> np.ndarray:
    """``round(65535 * clip(x, 0, 1))`` as uint16: the stored value of a fused intensity in [0, 1]
    (:func:`hkafusion_monai.utils.quantisation.to_uint16`).

    Raises:
        ValueError: the fused volume holds NaN or infinite values.
    """
    try:
        return to_uint16(volume)
    except ValueError:
        raise ValueError("the fused volume holds NaN or infinite values") from None


def _copy(src: Dataset, dst: Dataset, names: Sequence[str]) -> None:
    for name in names:
        if name in src:
            setattr(dst, name, src[name].value)


def _check_inputs(
    volume: np.ndarray, mri: Sequence[Dataset], other: Sequence[Dataset], colour: np.ndarray | None
) -> None:
    if not mri:
        raise ValueError("no MR datasets: the derived series needs the MR series it replaces")
    if not other:
        raise ValueError("no datasets of the other series: the derived series references both sources")
    if volume.ndim != 3:
        raise ValueError(f"the fused volume must be (slices, rows, columns), got shape {volume.shape}")
    if len(mri) != volume.shape[0]:
        raise ValueError(f"the fused volume has {volume.shape[0]} slices but the MR series has {len(mri)}")
    for i, ds in enumerate(mri):
        for name in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "FrameOfReferenceUID"):
            if name not in ds:
                raise ValueError(f"MR slice {i} ({ds.get('SOPInstanceUID', '?')}): no {name}; cannot place the slice")
        if (int(ds.Rows), int(ds.Columns)) != volume.shape[1:]:
            raise ValueError(
                f"MR slice {i}: {ds.Rows}x{ds.Columns} pixels but the fused slice is "
                f"{volume.shape[1]}x{volume.shape[2]} (rows x columns): the volume is not on the MR grid"
            )
    if colour is not None and (colour.shape != (*volume.shape, 3) or colour.dtype != np.uint8):
        raise ValueError(f"the colour rendering must be uint8 {(*volume.shape, 3)}, got {colour.dtype} {colour.shape}")


@dataclass
class _SeriesPlan:
    """What every instance of one derived series shares."""

    uids: dict  # "series", "instances", "version" (and "sc_series", "sc_instances" with a colour rendering)
    description: str
    derivation: str
    series_number: int
    references: DicomSequence  # ReferencedSeriesSequence
    other_studies: DicomSequence | None  # StudiesContainingOtherReferencedInstancesSequence
    normal: np.ndarray  # the MR's slice normal
    spacing_between: float | None
    now: datetime.datetime


def _plan(
    mri: Sequence[Dataset],
    other: Sequence[Dataset],
    model_version: str,
    series_description: str | None,
    series_number: int,
    colour: bool,
    description_note: str | None,
) -> _SeriesPlan:
    other_modality = str(other[0].get("Modality", "OT"))
    description = series_description or f"HKAFusion MR+{other_modality} (research use)"
    if description_note:
        description = f"{description[: max(0, 61 - len(description_note))]} - {description_note}"[:64]
    derivation = (
        f"HKAFusion {model_version}: fusion of MR series {mri[0].SeriesInstanceUID} with {other_modality} series "
        f"{other[0].SeriesInstanceUID}, resampled onto the MR grid; 16-bit, 65535 = fused intensity 1.0"
    )[:1024]
    uids = {"series": new_uid(), "instances": [new_uid() for _ in mri], "version": str(model_version)[:64]}
    if colour:
        uids["sc_series"] = new_uid()
        uids["sc_instances"] = [new_uid() for _ in mri]
    references, other_studies = common_references(mri, other)
    normal = slice_normal(mri[0])
    first, last = (np.asarray(ds.ImagePositionPatient, dtype=float) for ds in (mri[0], mri[-1]))
    spacing_between = float(abs((last - first) @ normal)) / (len(mri) - 1) if len(mri) > 1 else None
    return _SeriesPlan(
        uids,
        description,
        derivation,
        series_number,
        references,
        other_studies,
        normal,
        spacing_between,
        datetime.datetime.now(),
    )


def _mr_identity(ds: Dataset, src: Dataset, plan: _SeriesPlan) -> None:
    """The Patient, General Study, General Series, Frame of Reference and General Equipment modules."""
    for name in _TYPE2_EMPTY:
        setattr(ds, name, "")
    _copy(src, ds, _PATIENT + _STUDY)
    ds.Modality = "MR"
    ds.SeriesInstanceUID = plan.uids["series"]
    ds.SeriesNumber = plan.series_number
    ds.SeriesDescription = plan.description
    ds.SeriesDate, ds.SeriesTime = ds.InstanceCreationDate, ds.InstanceCreationTime
    ds.PatientPosition = src.get("PatientPosition", "")
    ds.Laterality = src.get("Laterality", "")  # type 2C: empty unless the MR names a side
    _copy(src, ds, ("BodyPartExamined",))
    # Frame of Reference: the MR's, since the pixels lie on its grid
    ds.FrameOfReferenceUID = src.FrameOfReferenceUID
    ds.PositionReferenceIndicator = src.get("PositionReferenceIndicator", "")
    ds.Manufacturer = MANUFACTURER
    ds.SoftwareVersions = plan.uids["version"]


def _mr_image(ds: Dataset, src: Dataset, pixels: np.ndarray, plan: _SeriesPlan) -> None:
    """The Image Plane (from the MR slice this one replaces), Image Pixel, MR Image and VOI LUT modules."""
    ds.PixelSpacing = src.PixelSpacing
    ds.ImageOrientationPatient = src.ImageOrientationPatient
    ds.ImagePositionPatient = src.ImagePositionPatient
    ds.SliceThickness = src.get("SliceThickness", "")
    if "SliceLocation" in src:
        ds.SliceLocation = src.SliceLocation
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<u2").tobytes()
    # MR Image: not an acquisition, so research mode and the acquisition parameters empty (type 2)
    ds.ScanningSequence = "RM"
    ds.SequenceVariant = "NONE"
    for name in ("ScanOptions", "MRAcquisitionType", "RepetitionTime", "EchoTime", "EchoTrainLength"):
        setattr(ds, name, "")
    if plan.spacing_between is not None:
        ds.SpacingBetweenSlices = f"{plan.spacing_between:.6g}"
    ds.WindowCenter, ds.WindowWidth = "32767.5", "65536"  # the full stored range


def _mr_instance(
    plan: _SeriesPlan, pixels: np.ndarray, src: Dataset, index: int, sources: list[Dataset], comments: str
) -> Dataset:
    sop_uid = plan.uids["instances"][index]
    ds = Dataset()
    ds.ensure_file_meta()  # save_as(enforce_file_format=True) adds the SOP class and instance UIDs
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = src.get("SpecificCharacterSet", "ISO_IR 192")
    ds.SOPClassUID, ds.SOPInstanceUID = MR_IMAGE_STORAGE, sop_uid
    ds.InstanceCreationDate, ds.InstanceCreationTime = plan.now.strftime("%Y%m%d"), plan.now.strftime("%H%M%S")
    _mr_identity(ds, src, plan)
    # General Image
    ds.InstanceNumber = index + 1
    ds.ContentDate, ds.ContentTime = ds.InstanceCreationDate, ds.InstanceCreationTime
    # value 3 is required for MR images; OTHER: none of the MR defined terms describes a fusion
    ds.ImageType = ["DERIVED", "SECONDARY", "OTHER"]
    ds.DerivationDescription = plan.derivation
    ds.SourceImageSequence = DicomSequence(sources)
    ds.ImageComments = comments
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    _mr_image(ds, src, pixels, plan)
    # Common Instance Reference: both source series
    ds.ReferencedSeriesSequence = plan.references
    if plan.other_studies is not None:
        ds.StudiesContainingOtherReferencedInstancesSequence = plan.other_studies
    return ds


def write_fused_series(
    volume: np.ndarray,
    mri: Sequence[Dataset],
    other: Sequence[Dataset],
    out_dir: str | os.PathLike,
    model_version: str = "unknown",
    series_description: str | None = None,
    series_number: int = 9001,
    colour: np.ndarray | None = None,
    overwrite: bool = False,
    note: str | None = None,
    slice_notes: Mapping[int, str] | None = None,
    description_note: str | None = None,
) -> dict[str, list[Path]]:
    """Write a fused volume on the MRI's grid as a derived MR series (and, optionally, an RGB SC series).

    Args:
        volume: the fused intensities in [0, 1], ``(slices, rows, columns)``: slice ``k`` replaces ``mri[k]``
            (row and column as in its pixel array).
        mri: the MRI's datasets (headers suffice), one per slice, in the order of ``volume``.
        other: the CT/PET/SPECT series' datasets (headers), for the references.
        out_dir: the folder to create; one file per instance, ``MR_<instance>.dcm`` (and ``SC_<instance>.dcm``).
        model_version: the bundle/model version, for the descriptions.
        series_description: default ``"HKAFusion MR+<modality> (research use)"``.
        series_number: the new series' number (the SC series takes the next).
        colour: optional uint8 ``(slices, rows, columns, 3)`` colour rendering, written as a second series.
        overwrite: replace an existing ``out_dir``.
        note: a note for the reader, added to every instance's ``ImageComments`` after
            :data:`RESEARCH_USE_COMMENT`.
        slice_notes: a further note for some instances, by slice index (from 0).
        description_note: appended to ``SeriesDescription`` (``"<description> - <note>"``, the description
            shortened so that the whole fits its 64 characters), where a series list shows it.

    Returns:
        ``{"mr": [paths], "sc": [paths]}``.

    Raises:
        ValueError: the volume does not match the MR grid, holds NaN, or a slice lacks geometry.
        FileExistsError: ``out_dir`` exists and not ``overwrite``; nothing is written.
    """
    volume = np.asarray(volume)
    _check_inputs(volume, mri, other, colour)
    pixels = fused_to_uint16(volume)
    plan = _plan(mri, other, model_version, series_description, series_number, colour is not None, description_note)
    written: dict[str, list[str]] = {"mr": [], "sc": []}

    def write(tmp: str) -> None:
        for k, src in enumerate(mri):
            comments = " ".join(c for c in (RESEARCH_USE_COMMENT, note, (slice_notes or {}).get(k)) if c)
            ds = _mr_instance(plan, pixels[k], src, k, source_images(src, other, plan.normal), comments[:10240])
            written["mr"].append(_save(ds, tmp, f"MR_{k + 1:04d}.dcm"))
            if colour is not None:
                sc = sc_instance(colour[k], ds, k, plan.uids, plan.description + " colour", series_number + 1)
                written["sc"].append(_save(sc, tmp, f"SC_{k + 1:04d}.dcm"))

    out = atomic_write_dir(out_dir, write, overwrite)
    return {kind: [out / name for name in names] for kind, names in written.items()}


def _save(ds: Dataset, folder: str, name: str) -> str:
    ds.save_as(os.path.join(folder, name), enforce_file_format=True)
    return name


def check_written_series(files: Sequence[str | os.PathLike], mri: Sequence[Dataset]) -> None:
    """Read a written derived series back and check it against the MR headers it was written for: one
    instance per MR slice, MR Image Storage, one new series, DERIVED, the MR's patient, study and frame of
    reference, each slice at its MR slice's position and orientation, and pixels of the MR's size.

    Raises:
        HKAFusionError: naming the file and the first difference (a writer fault: nothing should be sent).
    """
    if len(files) != len(mri):
        raise HKAFusionError(f"{len(files)} written instance(s) for {len(mri)} MR slices")
    series = set()
    for path, src in zip(files, mri, strict=True):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        problems = []
        if ds.SOPClassUID != MR_IMAGE_STORAGE or ds.file_meta.MediaStorageSOPInstanceUID != ds.SOPInstanceUID:
            problems.append("SOP class or instance UID")
        if list(ds.ImageType)[:1] != ["DERIVED"]:
            problems.append("ImageType")
        for name in ("PatientID", "StudyInstanceUID", "FrameOfReferenceUID"):
            if str(ds.get(name, "")) != str(src.get(name, "")):
                problems.append(name)
        for name in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
            if not np.allclose(np.asarray(ds[name].value, float), np.asarray(src[name].value, float), atol=1e-4):
                problems.append(name)
        if (int(ds.Rows), int(ds.Columns)) != (int(src.Rows), int(src.Columns)):
            problems.append("Rows/Columns")
        if ds.SeriesInstanceUID == src.SeriesInstanceUID:
            problems.append("SeriesInstanceUID (the MR's own)")
        if problems:
            raise HKAFusionError(f"{path}: the written instance does not match its MR slice: {', '.join(problems)}")
        series.add(ds.SeriesInstanceUID)
    if len(series) != 1:
        raise HKAFusionError(f"{Path(files[0]).parent}: {len(series)} series UIDs in one written series")


def _series_headers(folder: str | os.PathLike, role: str, series_uid: str | None = None) -> list[Dataset]:
    """The headers of the series the reader fused, in its order (the reader's own series choice rules); one
    per frame, in spatial order, for a multi-frame image."""
    series = pick_series(scan_dicom(folder), folder, series_uid)
    files, _ = order_series(series)
    headers: list[Dataset] = [read_header(f) for f in files]  # also a bare dataset (no Part-10 preamble)
    return frame_headers(headers[0]) if series.slices[0].multiframe else headers


def write_fused_series_from_folders(
    volume: np.ndarray,
    mri_folder: str | os.PathLike,
    other_folder: str | os.PathLike,
    out_dir: str | os.PathLike,
    model_version: str = "unknown",
    overwrite: bool = False,
    mri_series_uid: str | None = None,
    other_series_uid: str | None = None,
) -> dict[str, list[Path]]:
    """:func:`write_fused_series` for a volume fused from two DICOM series folders by the bundle's reader.

    Args:
        volume: ``(X, Y, Z)`` = (columns, rows, slices in spatial order), the axes of
            :class:`~hkafusion_monai.transforms.LoadFusionVolumed` on the MRI folder (``FusionPostprocessd``
            restores them).
        mri_folder: the MR series folder the volume was fused from (its headers are re-read, in the same order).
        other_folder: the CT/PET/SPECT series folder.
        out_dir: the series folder to create.
        model_version: recorded in the series.
        overwrite: replace an existing ``out_dir``.
        mri_series_uid: the series the reader chose in ``mri_folder`` (a datalist's ``mri_series_uid``), when
            the folder holds several.
        other_series_uid: the same for ``other_folder``.
    """
    mri = _series_headers(mri_folder, "MR", mri_series_uid)
    other = _series_headers(other_folder, "CT/PET/SPECT", other_series_uid)
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise ValueError(f"expected an (X, Y, Z) volume for {out_dir}, got shape {volume.shape}")
    return write_fused_series(volume.transpose(2, 1, 0), mri, other, out_dir, model_version, overwrite=overwrite)
