"""The phantom's DICOM objects: MR, CT and PET as single-frame series, SPECT as one multi-frame NM Image object,
with UIDs derived from the seed; and the values a DICOM reader gets back from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    NuclearMedicineImageStorage,
    PositronEmissionTomographyImageStorage,
    generate_uid,
)

from hkafusion_monai.utils.tasks import DICOM_MODALITIES

from .anatomy import VERSION, Grid, Subject

__all__ = ["DICOM_MODALITY", "dicom_values", "patient_id", "phantom_uid", "write_dicom_series", "write_nm_series"]

_SOP_CLASSES = {
    "MRI": MRImageStorage,
    "CT": CTImageStorage,
    "PET": PositronEmissionTomographyImageStorage,
    "SPECT": NuclearMedicineImageStorage,
}
DICOM_MODALITY = {name: tag for tag, name in DICOM_MODALITIES.items()}  # "MRI" -> "MR", ...
_SERIES = {
    "MRI": (1, "T1 3D phantom"),
    "CT": (2, "CT head phantom"),
    "PET": (3, "FDG PET phantom"),
    "SPECT": (4, "HMPAO SPECT phantom"),
}
_STUDY_DATE, _STUDY_TIME = "20240102", "093000"


def phantom_uid(seed: int, *parts: object):
    """The UID of a phantom object named by ``parts`` (e.g. ``index, "MRI", "series"``): the same every run."""
    return generate_uid(entropy_srcs=["hkafusion-monai phantom", str(VERSION), str(seed), *map(str, parts)])


def patient_id(seed: int, index: int) -> str:
    """The Patient ID of subject ``index``."""
    return f"PHANTOM-{seed}-{index:03d}"


def _new_instance(subject: Subject, modality: str, seed: int, instance_uid: str) -> Dataset:
    """SOP Common, Patient, General Study, General Series, Frame of Reference and General Equipment of an
    instance of a phantom series."""
    number, description = _SERIES[modality]
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = _SOP_CLASSES[modality]
    ds.SOPInstanceUID = instance_uid
    # Patient
    ds.PatientName = f"Phantom^{subject.index:03d}"
    ds.PatientID = patient_id(seed, subject.index)
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    # General Study
    ds.StudyInstanceUID = phantom_uid(seed, subject.index, "study")
    ds.StudyDate, ds.StudyTime = _STUDY_DATE, _STUDY_TIME
    ds.ReferringPhysicianName = ""
    ds.StudyID = f"{subject.index + 1}"
    ds.AccessionNumber = ""
    ds.StudyDescription = "hkafusion-monai synthetic head phantom"
    # General Series
    ds.Modality = DICOM_MODALITY[modality]
    ds.SeriesInstanceUID = phantom_uid(seed, subject.index, modality, "series")
    ds.SeriesNumber = number
    ds.SeriesDescription = description
    ds.SeriesDate, ds.SeriesTime = _STUDY_DATE, _STUDY_TIME
    ds.PatientPosition = "HFS"
    # Frame of Reference
    ds.FrameOfReferenceUID = phantom_uid(seed, subject.index, "frame")
    ds.PositionReferenceIndicator = ""
    # General Equipment
    ds.Manufacturer = "hkafusion-monai"
    ds.ManufacturerModelName = "analytic phantom"
    ds.SoftwareVersions = f"phantom v{VERSION}"
    return ds


def _image_pixel(ds: Dataset, grid: Grid) -> None:
    """Image Pixel and the pixel spacing: one unsigned 16-bit grey sample per pixel, ``grid``'s rows and columns."""
    dr, dc, _ = grid.spacing
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = grid.shape[0], grid.shape[1]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelSpacing = [f"{dr:g}", f"{dc:g}"]


def _slope(values: np.ndarray) -> float:
    """The rescale slope of ``values`` stored as uint16: the maximum stored as 32767 (8 significant digits)."""
    return float(f"{max(float(np.clip(values, 0, None).max()), 1e-6) / 32767.0:.8g}")


def _stored(modality: str, values: np.ndarray) -> np.ndarray:
    """The uint16 values an MR slice (values as they are) or a CT slice (HU + 1024, 12 bits) stores."""
    if modality == "CT":
        stored: np.ndarray = np.clip(np.round(values) + 1024, 0, 4095)
    else:
        stored = np.clip(np.round(values), 0, 65535)
    return stored.astype(np.uint16)


def _save(ds: Dataset, path: Path) -> None:
    """Write ``ds`` to ``path`` as a DICOM file, explicit VR little endian (pydicom adds the rest of the file
    meta: the SOP class and instance UIDs and the implementation UID)."""
    ds.ensure_file_meta()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)


# ------------------------------------------------------------------------------- SPECT: one NM Image object


def write_nm_series(folder: Path, subject: Subject, grid: Grid, volume: np.ndarray, seed: int) -> None:
    """Write a SPECT ``volume`` (``(X, Y, Z)``, z ascending, counts) as one multi-frame **NM Image Storage**
    object, as SPECT systems export a reconstruction: ``ImageType`` ``ORIGINAL\\PRIMARY\\RECON TOMO\\EMISSION``,
    one frame per slice (``FrameIncrementPointer`` = Slice Vector), the first frame's position and the
    orientation in the Detector Information Sequence, ``SpacingBetweenSlices`` along the slice normal, counts
    stored as ``uint16`` with one ``RescaleSlope`` (``Units`` ``CNTS``).

    Modules: Patient, General Study, General Series, NM/PET Patient Orientation, Frame of Reference, General
    Equipment, General Image, Image Pixel, Multi-frame, NM Image Pixel, NM Multi-frame, NM Image, NM Isotope,
    NM Detector, NM TOMO Acquisition, NM Reconstruction, SOP Common. Explicit VR little endian.
    """
    folder.mkdir(parents=True, exist_ok=True)
    slope = _slope(volume)
    ds = _new_instance(subject, "SPECT", seed, phantom_uid(seed, subject.index, "SPECT", "instance"))
    del ds.PatientPosition  # NM: the NM/PET Patient Orientation module says it instead
    ds.Laterality = ""  # type 2C: a head is an unpaired body part, but dciodvfy cannot evaluate the condition
    # NM/PET Patient Orientation (type 2)
    ds.PatientOrientationCodeSequence = DicomSequence()
    ds.PatientGantryRelationshipCodeSequence = DicomSequence()
    _nm_image(ds, grid, volume)
    _image_pixel(ds, grid)  # NM Image Pixel
    ds.RealWorldValueMappingSequence = _counts_mapping(slope)
    _nm_isotope(ds)
    _nm_detector_and_reconstruction(ds, grid)
    # frames along +z: frame k is slice k of the volume, (rows, columns)
    stored = np.round(np.clip(volume, 0, None) / slope).astype(np.uint16)  # (X, Y, Z)
    ds.PixelData = np.ascontiguousarray(stored.transpose(2, 1, 0), dtype="<u2").tobytes()
    _save(ds, folder / "NM0001.dcm")


def _nm_image(ds: Dataset, grid: Grid, volume: np.ndarray) -> None:
    """General Image, NM Image, Multi-frame and NM Multi-frame: one frame per reconstructed slice."""
    n_slices = grid.shape[2]
    ds.InstanceNumber = 1
    ds.ContentDate, ds.ContentTime = _STUDY_DATE, _STUDY_TIME
    ds.AcquisitionDate, ds.AcquisitionTime = _STUDY_DATE, "101500"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "RECON TOMO", "EMISSION"]
    ds.ImageID = ""
    ds.LossyImageCompression = "00"
    ds.CountsAccumulated = int(np.round(np.clip(volume, 0, None).sum()))
    ds.NumberOfFrames = n_slices
    ds.FrameIncrementPointer = 0x00540080  # Slice Vector
    ds.SliceVector = list(range(1, n_slices + 1))
    ds.NumberOfSlices = n_slices
    ds.NumberOfEnergyWindows, ds.NumberOfDetectors, ds.NumberOfRotations = 1, 1, 1


def _counts_mapping(slope: float) -> DicomSequence:
    """counts = stored value * slope: NM has no Modality LUT, its real-world value mapping says it."""
    rwvm = Dataset()
    rwvm.RealWorldValueFirstValueMapped, rwvm.RealWorldValueLastValueMapped = 0, 65535
    rwvm.RealWorldValueIntercept, rwvm.RealWorldValueSlope = 0.0, slope
    rwvm.LUTExplanation, rwvm.LUTLabel = "counts", "CNTS"
    unit = Dataset()
    unit.CodeValue, unit.CodingSchemeDesignator, unit.CodeMeaning = "{counts}", "UCUM", "Counts"
    rwvm.MeasurementUnitsCodeSequence = DicomSequence([unit])
    return DicomSequence([rwvm])


def _nm_isotope(ds: Dataset) -> None:
    """NM Isotope: the Tc-99m energy window and the HMPAO radiopharmaceutical."""
    window = Dataset()
    window_range = Dataset()
    window_range.EnergyWindowLowerLimit, window_range.EnergyWindowUpperLimit = "126", "154"
    window.EnergyWindowRangeSequence = DicomSequence([window_range])
    window.EnergyWindowName = "Tc99m"
    ds.EnergyWindowInformationSequence = DicomSequence([window])
    drug = Dataset()
    drug.Radiopharmaceutical = "Tc-99m HMPAO"
    drug.RadionuclideCodeSequence = DicomSequence()
    drug.RadiopharmaceuticalStartTime = "091000"
    drug.RadionuclideTotalDose = "740"
    ds.RadiopharmaceuticalInformationSequence = DicomSequence([drug])


def _nm_detector_and_reconstruction(ds: Dataset, grid: Grid) -> None:
    """NM Detector (the geometry of the reconstruction's first frame), NM TOMO Acquisition, NM Reconstruction."""
    x, y, z = grid.axes()
    dz = grid.spacing[2]
    detector = Dataset()
    detector.ImagePositionPatient = [f"{x[0]:.4f}", f"{y[0]:.4f}", f"{z[0]:.4f}"]
    detector.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    detector.FocalDistance = "0"
    detector.ZoomFactor = ["1", "1"]
    detector.CenterOfRotationOffset = "0"
    detector.CollimatorGridName = "LEHR"
    detector.CollimatorType = "PARA"
    ds.DetectorInformationSequence = DicomSequence([detector])
    rotation = Dataset()
    rotation.StartAngle, rotation.AngularStep, rotation.RotationDirection = "0", "3", "CW"
    rotation.ScanArc, rotation.ActualFrameDuration, rotation.NumberOfFramesInRotation = "360", 20000, 120
    rotation.TableTraverse, rotation.TableHeight = "0", "0"
    ds.RotationInformationSequence = DicomSequence([rotation])
    ds.TypeOfDetectorMotion = "STEP AND SHOOT"
    ds.SpacingBetweenSlices = f"{dz:g}"
    ds.SliceThickness = f"{dz:g}"
    ds.ReconstructionDiameter = f"{grid.shape[1] * grid.spacing[1]:g}"
    ds.ConvolutionKernel = "Butterworth"


# ------------------------------------------------------------------------ MR, CT, PET: single-frame series


def write_dicom_series(
    folder: Path, subject: Subject, modality: str, grid: Grid, volume: np.ndarray, seed: int
) -> None:
    """Write ``volume`` (``(X, Y, Z)``, z ascending, physical values) as one single-frame DICOM series.

    Modules: Patient, General Study, General Series, Frame of Reference, General Equipment, General
    Image, Image Plane, Image Pixel, the modality's image module (MR Image, CT Image, or PET Series,
    PET Isotope, NM/PET Patient Orientation and PET Image) and SOP Common. Explicit VR little endian.
    """
    folder.mkdir(parents=True, exist_ok=True)
    n_slices = grid.shape[2]
    order = range(n_slices - 1, -1, -1) if grid.descending else range(n_slices)
    image_module = _IMAGE_MODULES[modality]
    for instance, k in enumerate(order, start=1):
        ds = _new_instance(subject, modality, seed, phantom_uid(seed, subject.index, modality, "instance", k))
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        _image_plane(ds, grid, k, instance)
        _image_pixel(ds, grid)
        pixels = image_module(ds, grid, volume[:, :, k], instance).T  # (rows, columns)
        ds.PixelData = np.ascontiguousarray(pixels, dtype=np.uint16).tobytes()
        _save(ds, folder / f"IM{instance:04d}.dcm")


def _image_plane(ds: Dataset, grid: Grid, k: int, instance: int) -> None:
    """General Image and Image Plane of slice ``k`` (z ascending), the series' instance ``instance``: rows run
    along +y (posterior), columns along +x (patient left)."""
    x, y, z = grid.axes()
    ds.InstanceNumber = instance
    ds.ContentDate, ds.ContentTime = _STUDY_DATE, _STUDY_TIME
    ds.AcquisitionNumber = 1
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [f"{x[0]:.4f}", f"{y[0]:.4f}", f"{z[k]:.4f}"]
    ds.SliceThickness = f"{grid.spacing[2]:g}"
    ds.SliceLocation = f"{z[k]:.4f}"


def _mr_image(ds: Dataset, grid: Grid, plane: np.ndarray, instance: int) -> np.ndarray:
    """MR Image; returns the stored values of ``plane`` (``(X, Y)``)."""
    ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions = "GR", "SP", ""
    ds.MRAcquisitionType = "3D"
    ds.RepetitionTime, ds.EchoTime, ds.EchoTrainLength = "8.1", "3.7", 1
    ds.MagneticFieldStrength = "3"
    ds.SpacingBetweenSlices = f"{grid.spacing[2]:g}"
    return _stored("MRI", plane)


def _ct_image(ds: Dataset, grid: Grid, plane: np.ndarray, instance: int) -> np.ndarray:
    """CT Image (HU = stored value - 1024, 12 bits stored); returns the stored values of ``plane``."""
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "-1024", "1", "HU"
    ds.BitsStored, ds.HighBit = 12, 11
    ds.KVP = "120"
    return _stored("CT", plane)


def _pet_image(ds: Dataset, grid: Grid, plane: np.ndarray, instance: int) -> np.ndarray:
    """PET Series, PET Isotope, NM/PET Patient Orientation and PET Image (Bq/ml, one rescale slope per slice);
    returns the stored values of ``plane``."""
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.Units, ds.CountsSource, ds.SeriesType = "BQML", "EMISSION", ["STATIC", "IMAGE"]
    ds.NumberOfSlices, ds.ImageIndex = grid.shape[2], instance
    ds.CorrectedImage = ["ATTN", "DECY", "SCAT"]
    ds.DecayCorrection, ds.DecayFactor = "START", "1"
    ds.FrameReferenceTime, ds.ActualFrameDuration = "0", 600000
    ds.AcquisitionDate, ds.AcquisitionTime = _STUDY_DATE, "100000"
    ds.RandomsCorrectionMethod, ds.AttenuationCorrectionMethod = "DLYD", "CT"
    ds.ReconstructionMethod = "OSEM"
    ds.PatientOrientationCodeSequence = DicomSequence()
    ds.PatientGantryRelationshipCodeSequence = DicomSequence()
    isotope = Dataset()
    isotope.Radiopharmaceutical = "Fluorodeoxyglucose F^18^"
    isotope.RadiopharmaceuticalStartTime = "090000"
    isotope.RadionuclideTotalDose = "200000000"
    isotope.RadionuclideHalfLife = "6586.2"
    ds.RadiopharmaceuticalInformationSequence = DicomSequence([isotope])
    slope = _slope(plane)
    ds.RescaleIntercept, ds.RescaleSlope = "0", f"{slope:.8g}"
    stored: np.ndarray = np.round(np.clip(plane, 0, None) / slope)
    return stored.astype(np.uint16)


_IMAGE_MODULES = {"MRI": _mr_image, "CT": _ct_image, "PET": _pet_image}


def dicom_values(modality: str, volume: np.ndarray) -> np.ndarray:
    """The values a DICOM reader gets back from :func:`write_dicom_series` or, for SPECT, :func:`write_nm_series`
    (after quantisation)."""
    if modality == "CT":
        return _stored("CT", volume).astype(np.float32) - 1024
    if modality == "MRI":
        return _stored("MRI", volume).astype(np.float32)
    planes = np.clip(volume, 0, None)
    slopes: float | np.ndarray
    if modality == "SPECT":  # one multi-frame NM object: one slope for the volume
        slopes = _slope(volume)
    else:
        slopes = np.array([_slope(planes[:, :, k]) for k in range(planes.shape[2])])
    values: np.ndarray = np.round(planes / slopes) * slopes
    return values.astype(np.float32)
