"""The operators of the Deploy application, one per module as in the SDK's ``monai.deploy.operators``
(docs/deploy.md):

- :class:`StudyLoaderOperator`: the SDK's DICOM loader over a study folder listed safely;
- :class:`FusionSeriesSelectorOperator`: the SDK's series selector with the rules' ``MR`` and ``secondary``
  selections, and the pairs to fuse (:mod:`hkafusion_monai.deploy.planning`);
- :class:`FusionOperator`: each pair fused on its MR grid, and the hot-spot guard for PET and SPECT;
- :class:`DICOMFusedSeriesWriterOperator`: one derived series per pair, each checked after writing;
- :class:`DICOMSendOperator`: C-STORE of the written series to a DICOM destination.

Each module imports the MONAI Deploy SDK; this package imports one only when one of its names is first used.
"""

from __future__ import annotations

from hkafusion_monai.utils.lazy import lazy_exports

_HOMES = {
    "DICOMFusedSeriesWriterOperator": ".dicom_fused_series_writer_operator",
    "remove_partial_output": ".dicom_fused_series_writer_operator",
    "series_folder": ".dicom_fused_series_writer_operator",
    "DICOMSendOperator": ".dicom_send_operator",
    "FusionOperator": ".fusion_operator",
    "FusionSeriesSelectorOperator": ".fusion_series_selector_operator",
    "StudyLoaderOperator": ".study_loader_operator",
}

__all__ = sorted(_HOMES)

__getattr__ = lazy_exports(__name__, _HOMES)
