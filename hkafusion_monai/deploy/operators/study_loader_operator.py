"""The study loader: the SDK's ``DICOMDataLoaderOperator`` over a safely listed study folder."""

from __future__ import annotations

import logging
from typing import Any

import monai.deploy.operators.dicom_data_loader_operator as sdk_loader
from monai.deploy.operators.dicom_data_loader_operator import DICOMDataLoaderOperator

from hkafusion_monai.io.dicom import read_dicom
from hkafusion_monai.io.study import study_files

__all__ = ["StudyLoaderOperator"]

logger = logging.getLogger("hkafusion_monai.deploy")


class StudyLoaderOperator(DICOMDataLoaderOperator):
    """The SDK's DICOM loader over :func:`~hkafusion_monai.io.study.study_files`: symbolic links followed,
    every folder read once (a link loop is skipped with a warning naming it, where the SDK's own listing
    would recurse until memory runs out), hidden and non-DICOM files left out.

    Files are read as the bundle reads them (:func:`~hkafusion_monai.io.dicom.read_dicom`): a bare dataset
    without the Part-10 preamble and file meta (older archives, CD exports) is read when it has the image and
    geometry tags, and refused by name when it does not. The SDK reads each file with its module's
    ``dcmread`` and drops one without the preamble with a warning (a slice silently lost), and has no option
    for it; that name points at ``read_dicom`` while this operator loads.

    Named output ``dicom_study_list``; see ``DICOMDataLoaderOperator``.
    """

    def _list_files(self, path, files: list[str]) -> None:
        found, skipped = study_files(path)
        for line in skipped:
            logger.warning(line)
        uids = ["SOPInstanceUID", "SeriesInstanceUID"]
        files.extend(str(f) for f in found if read_dicom(f, stop_before_pixels=True, specific_tags=uids) is not None)

    def _load_data(self, files: list[str]) -> Any:
        sdk_read = sdk_loader.dcmread
        sdk_loader.dcmread = read_dicom
        try:
            return super()._load_data(files)
        finally:
            sdk_loader.dcmread = sdk_read
