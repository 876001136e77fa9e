"""The references a derived instance carries to its sources: both source series, every instance listed (the
Common Instance Reference module; a series of another study under that study's item), and the images it was
made from (``SourceImageSequence``: the MR slice it replaces and the nearest slice of the other series).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

__all__ = ["common_references", "image_reference", "slice_normal", "source_images"]


def slice_normal(ds: Dataset) -> np.ndarray:
    """The slice normal of an image: its row direction × its column direction (LPS)."""
    o = np.asarray(ds.ImageOrientationPatient, dtype=float)
    return np.cross(o[:3], o[3:])


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


def common_references(mri: Sequence[Dataset], other: Sequence[Dataset]) -> tuple[DicomSequence, DicomSequence | None]:
    """``(ReferencedSeriesSequence, StudiesContainingOtherReferencedInstancesSequence)`` of every derived
    instance: both series in the first, unless the other series belongs to another study, which the second then
    names (else None)."""
    references = DicomSequence([_series_reference(mri)])
    other_study = str(other[0].get("StudyInstanceUID", ""))
    if other_study and other_study != str(mri[0].StudyInstanceUID):
        study = Dataset()
        study.StudyInstanceUID = other_study
        study.ReferencedSeriesSequence = DicomSequence([_series_reference(other)])
        return references, DicomSequence([study])
    references.append(_series_reference(other))
    return references, None


def image_reference(ds: Dataset) -> Dataset:
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
    """The slice of ``other`` nearest to ``position`` along ``normal``, if the other series is parallel (else
    no per-slice source can be named)."""
    best, best_d = None, np.inf
    for ds in other:
        if "ImagePositionPatient" not in ds or "ImageOrientationPatient" not in ds:
            return None
        if abs(abs(float(slice_normal(ds) @ normal)) - 1.0) > 1e-3:
            return None
        d = abs(float((np.asarray(ds.ImagePositionPatient, dtype=float) - position) @ normal))
        if d < best_d:
            best, best_d = ds, d
    return best


def source_images(src: Dataset, other: Sequence[Dataset], normal: np.ndarray) -> list[Dataset]:
    """The ``SourceImageSequence`` items of the instance that replaces MR slice ``src``: that slice, and the slice
    of ``other`` nearest to it along the MR's ``normal`` when both lie in one frame of reference."""
    sources = [image_reference(src)]
    if other[0].get("FrameOfReferenceUID") == src.FrameOfReferenceUID:
        near = _nearest(other, np.asarray(src.ImagePositionPatient, dtype=float), normal)
        if near is not None:
            sources.append(image_reference(near))
    return sources
