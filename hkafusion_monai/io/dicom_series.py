"""The fused volume as a derived DICOM series that viewers and PACS accept (the deploy issue).

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
separate **RGB Secondary Capture** series (highdicom's ``SCImage``) carrying the same plane attributes.

pydicom builds the MR instances because highdicom has no single-frame MR constructor; highdicom builds the
Secondary Capture instances and the UIDs.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, SecondaryCaptureImageStorage

from hkafusion_monai.io.atomic import atomic_write_dir
from hkafusion_monai.io.dicom import frame_headers, order_series, pick_series, scan_dicom
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
_TYPE2_EMPTY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                "ReferringPhysicianName", "StudyID", "AccessionNumber")


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


def _normal(ds: Dataset) -> np.ndarray:
    o = np.asarray(ds.ImageOrientationPatient, dtype=float)
    return np.cross(o[:3], o[3:])


def _copy(src: Dataset, dst: Dataset, names: Sequence[str]) -> None:
    for name in names:
        if name in src:
            setattr(dst, name, src[name].value)


def _series_reference(series: Sequence[Dataset]) -> Dataset:
    item = Dataset()
    item.SeriesInstanceUID = series[0].SeriesInstanceUID
    refs, seen = [], set()
    for ds in series:  # the frames of one multi-frame image are one instance
        if str(ds.SOPInstanceUID) in seen:
            continue
        seen.add(str(ds.SOPInstanceUID))
        ref = Dataset()
        ref.ReferencedSOPClassUID = ds.SOPClassUID
        ref.ReferencedSOPInstanceUID = ds.SOPInstanceUID
        refs.append(ref)
    item.ReferencedInstanceSequence = DicomSequence(refs)
    return item


def _image_reference(ds: Dataset) -> Dataset:
    """A reference to an image, or to one frame of a multi-frame image (a header from
    :func:`~hkafusion_monai.io.dicom.frame_headers`, which carries ``frame_number``)."""
    ref = Dataset()
    ref.ReferencedSOPClassUID = ds.SOPClassUID
    ref.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    frame = getattr(ds, "frame_number", None)
    if frame is not None:
        ref.ReferencedFrameNumber = int(frame)
    return ref


def _nearest(other: Sequence[Dataset], position: np.ndarray, normal: np.ndarray) -> Dataset | None:
    """The slice of ``other`` nearest to ``position`` along ``normal``, if the other series lies in the same
    frame of reference and is parallel (else no per-slice source can be named)."""
    best, best_d = None, np.inf
    for ds in other:
        if "ImagePositionPatient" not in ds or "ImageOrientationPatient" not in ds:
            return None
        if abs(abs(float(_normal(ds) @ normal)) - 1.0) > 1e-3:
            return None
        d = abs(float((np.asarray(ds.ImagePositionPatient, dtype=float) - position) @ normal))
        if d < best_d:
            best, best_d = ds, d
    return best


def _check_inputs(volume: np.ndarray, mri: Sequence[Dataset], colour: np.ndarray | None) -> None:
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


def _mr_instance(
    pixels: np.ndarray,
    src: Dataset,
    index: int,
    uids: dict[str, str],
    description: str,
    derivation: str,
    series_number: int,
    references: DicomSequence,
    sources: list[Dataset],
    spacing_between: float | None,
    now: datetime.datetime,
    comments: str = RESEARCH_USE_COMMENT,
) -> Dataset:
    sop_uid = uids["instances"][index]
    ds = Dataset()
    ds.ensure_file_meta()  # save_as(enforce_file_format=True) adds the SOP class and instance UIDs
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = src.get("SpecificCharacterSet", "ISO_IR 192")
    ds.SOPClassUID, ds.SOPInstanceUID = MR_IMAGE_STORAGE, sop_uid
    ds.InstanceCreationDate, ds.InstanceCreationTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    # Patient, General Study
    for name in _TYPE2_EMPTY:
        setattr(ds, name, "")
    _copy(src, ds, _PATIENT + _STUDY)
    # General Series
    ds.Modality = "MR"
    ds.SeriesInstanceUID = uids["series"]
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description
    ds.SeriesDate, ds.SeriesTime = ds.InstanceCreationDate, ds.InstanceCreationTime
    ds.PatientPosition = src.get("PatientPosition", "")
    ds.Laterality = src.get("Laterality", "")  # type 2C: empty unless the MR names a side
    _copy(src, ds, ("BodyPartExamined",))
    # Frame of Reference: the MR's, since the pixels lie on its grid
    ds.FrameOfReferenceUID = src.FrameOfReferenceUID
    ds.PositionReferenceIndicator = src.get("PositionReferenceIndicator", "")
    # General Equipment
    ds.Manufacturer = MANUFACTURER
    ds.SoftwareVersions = uids["version"]
    # General Image
    ds.InstanceNumber = index + 1
    ds.ContentDate, ds.ContentTime = ds.InstanceCreationDate, ds.InstanceCreationTime
    # value 3 is required for MR images; OTHER: none of the MR defined terms describes a fusion
    ds.ImageType = ["DERIVED", "SECONDARY", "OTHER"]
    ds.DerivationDescription = derivation
    ds.SourceImageSequence = DicomSequence(sources)
    ds.ImageComments = comments
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    # Image Plane, from the MR slice this one replaces
    ds.PixelSpacing = src.PixelSpacing
    ds.ImageOrientationPatient = src.ImageOrientationPatient
    ds.ImagePositionPatient = src.ImagePositionPatient
    ds.SliceThickness = src.get("SliceThickness", "")
    if "SliceLocation" in src:
        ds.SliceLocation = src.SliceLocation
    # Image Pixel
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
    if spacing_between is not None:
        ds.SpacingBetweenSlices = f"{spacing_between:.6g}"
    # VOI LUT: the full stored range
    ds.WindowCenter, ds.WindowWidth = "32767.5", "65536"
    # Common Instance Reference: both source series
    ds.ReferencedSeriesSequence = references
    return ds


def _sc_instance(
    rgb: np.ndarray, mr: Dataset, index: int, uids: dict[str, str], description: str, series_number: int
) -> Dataset:
    """One RGB Secondary Capture instance (highdicom ``SCImage``) with the MR instance's plane attributes."""
    import highdicom

    sc = highdicom.sc.SCImage(
        pixel_array=np.ascontiguousarray(rgb),
        photometric_interpretation="RGB",
        bits_allocated=8,
        coordinate_system="PATIENT",
        study_instance_uid=mr.StudyInstanceUID,
        series_instance_uid=uids["sc_series"],
        series_number=series_number,
        sop_instance_uid=uids["sc_instances"][index],
        instance_number=index + 1,
        manufacturer=MANUFACTURER,
        patient_id=mr.PatientID or None,
        patient_name=mr.PatientName or None,
        patient_birth_date=mr.PatientBirthDate or None,
        patient_sex=mr.PatientSex or None,
        accession_number=mr.AccessionNumber or None,
        study_id=mr.StudyID or None,
        study_date=mr.StudyDate or None,
        study_time=mr.StudyTime or None,
        referring_physician_name=mr.ReferringPhysicianName or None,
        pixel_spacing=tuple(float(v) for v in mr.PixelSpacing),
        # highdicom takes one letter per direction; the full (oblique) letters are set below
        patient_orientation=tuple(d[0] for d in _patient_orientation(mr)),
    )
    sc.PatientOrientation = list(_patient_orientation(mr))
    sc.SeriesDescription = description
    sc.ImageType = ["DERIVED", "SECONDARY"]
    sc.DerivationDescription = mr.DerivationDescription
    sc.SoftwareVersions = uids["version"]
    sc.ImageComments = mr.ImageComments
    sc.BurnedInAnnotation = "NO"
    sc.Laterality = mr.Laterality
    sc.FrameOfReferenceUID = mr.FrameOfReferenceUID
    sc.ImagePositionPatient = mr.ImagePositionPatient
    sc.ImageOrientationPatient = mr.ImageOrientationPatient
    sc.SliceThickness = mr.SliceThickness
    ref = _image_reference(mr)
    sc.SourceImageSequence = DicomSequence([ref, *mr.SourceImageSequence])
    sc.ReferencedSeriesSequence = mr.ReferencedSeriesSequence
    if "StudiesContainingOtherReferencedInstancesSequence" in mr:
        sc.StudiesContainingOtherReferencedInstancesSequence = mr.StudiesContainingOtherReferencedInstancesSequence
    return sc


def _patient_orientation(ds: Dataset) -> tuple[str, str]:
    """The row and column directions as patient-orientation letters (e.g. ``("L", "P")``)."""
    o = np.asarray(ds.ImageOrientationPatient, dtype=float)

    def letters(v: np.ndarray) -> str:
        names = (("L", "R"), ("P", "A"), ("H", "F"))  # +x, +y, +z of LPS and their opposites
        order = np.argsort(-np.abs(v))
        out = ""
        for axis in order:
            if abs(v[axis]) > 1e-3:
                out += names[axis][0] if v[axis] > 0 else names[axis][1]
        return out[:3]

    return letters(o[:3]), letters(o[3:])


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
    if not mri:
        raise ValueError("no MR datasets: the derived series needs the MR series it replaces")
    if not other:
        raise ValueError("no datasets of the other series: the derived series references both sources")
    _check_inputs(volume, mri, colour)
    pixels = fused_to_uint16(volume)
    other_modality = str(other[0].get("Modality", "OT"))
    description = series_description or f"HKAFusion MR+{other_modality} (research use)"
    if description_note:
        description = f"{description[: max(0, 61 - len(description_note))]} - {description_note}"[:64]
    derivation = (
        f"HKAFusion {model_version}: fusion of MR series {mri[0].SeriesInstanceUID} with {other_modality} series "
        f"{other[0].SeriesInstanceUID}, resampled onto the MR grid; 16-bit, 65535 = fused intensity 1.0"
    )[:1024]
    uids = {
        "series": new_uid(),
        "instances": [new_uid() for _ in mri],
        "version": str(model_version)[:64],
    }
    if colour is not None:
        uids["sc_series"] = new_uid()
        uids["sc_instances"] = [new_uid() for _ in mri]
    references = DicomSequence([_series_reference(mri)])
    other_study = str(other[0].get("StudyInstanceUID", ""))
    if other_study and other_study != str(mri[0].StudyInstanceUID):
        # Common Instance Reference: series of another study go under that study's item
        study = Dataset()
        study.StudyInstanceUID = other_study
        study.ReferencedSeriesSequence = DicomSequence([_series_reference(other)])
        other_studies = DicomSequence([study])
    else:
        references.append(_series_reference(other))
        other_studies = None
    positions = [np.asarray(ds.ImagePositionPatient, dtype=float) for ds in mri]
    normal = _normal(mri[0])
    spacing_between = float(abs((positions[-1] - positions[0]) @ normal)) / (len(mri) - 1) if len(mri) > 1 else None
    now = datetime.datetime.now()
    written: dict[str, list[str]] = {"mr": [], "sc": []}

    def write(tmp: str) -> None:
        for k, src in enumerate(mri):
            sources = [_image_reference(src)]
            near = _nearest(other, positions[k], normal) if other[0].get("FrameOfReferenceUID") == src.FrameOfReferenceUID else None
            if near is not None:
                sources.append(_image_reference(near))
            comments = " ".join(c for c in (RESEARCH_USE_COMMENT, note, (slice_notes or {}).get(k)) if c)
            ds = _mr_instance(
                pixels[k], src, k, uids, description, derivation, series_number, references, sources,
                spacing_between, now, comments[:10240],
            )
            if other_studies is not None:
                ds.StudiesContainingOtherReferencedInstancesSequence = other_studies
            name = f"MR_{k + 1:04d}.dcm"
            ds.save_as(os.path.join(tmp, name), enforce_file_format=True)
            written["mr"].append(name)
            if colour is not None:
                sc = _sc_instance(colour[k], ds, k, uids, description + " colour", series_number + 1)
                name = f"SC_{k + 1:04d}.dcm"
                sc.save_as(os.path.join(tmp, name), enforce_file_format=True)
                written["sc"].append(name)

    out = atomic_write_dir(out_dir, write, overwrite)
    return {kind: [out / name for name in names] for kind, names in written.items()}


def check_written_series(files: Sequence[str | os.PathLike], mri: Sequence[Dataset]) -> None:
    """Read a written derived series back and check it against the MR headers it was written for: one
    instance per MR slice, MR Image Storage, one new series, DERIVED, the MR's patient, study and frame of
    reference, each slice at its MR slice's position and orientation, and pixels of the MR's size.

    Raises:
        HKAFusionError: naming the file and the first difference (a writer fault: nothing should be sent).
    """
    from hkafusion_monai.utils.errors import HKAFusionError

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
    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
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
