"""The optional colour rendering of a derived series: one RGB Secondary Capture instance (highdicom's
``SCImage``) per derived MR instance, with its plane attributes, identity and references.
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from hkafusion_monai.io.dicom_references import image_reference

__all__ = ["patient_orientation", "sc_instance"]


def patient_orientation(ds: Dataset) -> tuple[str, str]:
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


def sc_instance(
    rgb: np.ndarray, mr: Dataset, index: int, uids: dict[str, str], description: str, series_number: int
) -> Dataset:
    """One RGB Secondary Capture instance (highdicom ``SCImage``) with the MR instance's plane attributes."""
    import highdicom

    row_spacing, column_spacing = mr.PixelSpacing  # DICOM's order: between rows, between columns
    row_direction, column_direction = patient_orientation(mr)
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
        manufacturer=mr.Manufacturer,
        patient_id=mr.PatientID or None,
        patient_name=mr.PatientName or None,
        patient_birth_date=mr.PatientBirthDate or None,
        patient_sex=mr.PatientSex or None,
        accession_number=mr.AccessionNumber or None,
        study_id=mr.StudyID or None,
        study_date=mr.StudyDate or None,
        study_time=mr.StudyTime or None,
        referring_physician_name=mr.ReferringPhysicianName or None,
        pixel_spacing=(float(row_spacing), float(column_spacing)),
        # highdicom takes one letter per direction; the full (oblique) letters are set below
        patient_orientation=(row_direction[0], column_direction[0]),
    )
    sc.PatientOrientation = list(patient_orientation(mr))
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
    sc.SourceImageSequence = DicomSequence([image_reference(mr), *mr.SourceImageSequence])
    sc.ReferencedSeriesSequence = mr.ReferencedSeriesSequence
    if "StudiesContainingOtherReferencedInstancesSequence" in mr:
        sc.StudiesContainingOtherReferencedInstancesSequence = mr.StudiesContainingOtherReferencedInstancesSequence
    return sc
