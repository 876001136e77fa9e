"""The study loader: the SDK's ``DICOMDataLoaderOperator`` over a safely listed study folder."""

from __future__ import annotations

import logging

import pydicom
from monai.deploy.operators.dicom_data_loader_operator import DICOMDataLoaderOperator

from hkafusion_monai.io.study import study_files

__all__ = ["StudyLoaderOperator"]

logger = logging.getLogger("hkafusion_monai.deploy")


class StudyLoaderOperator(DICOMDataLoaderOperator):
    """The SDK's DICOM loader over :func:`~hkafusion_monai.io.study.study_files`: symbolic links followed,
    every folder read once (a link loop is skipped with a warning naming it, where the SDK's own listing
    would recurse until memory runs out), hidden and non-DICOM files left out.

    Named output ``dicom_study_list``; see ``DICOMDataLoaderOperator``.
    """

    def _list_files(self, path, files: list[str]) -> None:
        found, skipped = study_files(path)
        for line in skipped:
            logger.warning(line)
        files.extend(str(f) for f in found if pydicom.misc.is_dicom(f))
