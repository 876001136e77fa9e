"""The operators of the Deploy application, one per module as in the SDK's ``monai.deploy.operators``
(docs/deploy.md):

- :class:`StudyLoaderOperator`: the SDK's DICOM loader over a study folder listed safely;
- :class:`FusionSeriesSelectorOperator`: the SDK's series selector with the rules' ``MR`` and ``secondary``
  selections, and the pairs to fuse (:mod:`hkafusion_monai.deploy.planning`);
- :class:`FusionOperator`: each pair fused on its MR grid, and the hot-spot guard for PET and SPECT;
- :class:`DICOMFusedSeriesWriterOperator`: one derived series per pair, each checked after writing;
- :class:`DICOMSendOperator`: C-STORE of the written series to a DICOM destination.

Each module imports the MONAI Deploy SDK, and this package imports them all, as the SDK's own
``monai.deploy.operators`` does.
"""

from hkafusion_monai.deploy.operators.dicom_fused_series_writer_operator import (
    DICOMFusedSeriesWriterOperator,
    remove_partial_output,
    series_folder,
)
from hkafusion_monai.deploy.operators.dicom_send_operator import DICOMSendOperator
from hkafusion_monai.deploy.operators.fusion_operator import FusionOperator
from hkafusion_monai.deploy.operators.fusion_series_selector_operator import FusionSeriesSelectorOperator
from hkafusion_monai.deploy.operators.study_loader_operator import StudyLoaderOperator

__all__ = [
    "DICOMFusedSeriesWriterOperator",
    "DICOMSendOperator",
    "FusionOperator",
    "FusionSeriesSelectorOperator",
    "StudyLoaderOperator",
    "remove_partial_output",
    "series_folder",
]
