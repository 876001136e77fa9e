"""The fusion: each pair's two volumes, read by the bundle's own DICOM reader, fused on the MR grid by
:meth:`~hkafusion_monai.inference.Fuser.fuse_volumes` (the bundle's one preprocessing contract); for PET and SPECT,
the hot-spot guard (:func:`hkafusion_monai.metrics.checks.hot_spot_guard`), one log line per pair."""

from __future__ import annotations

from typing import Any

import numpy as np
import pydicom
from monai.deploy.core import Fragment, Operator, OperatorSpec

from hkafusion_monai.deploy.fused import FusedPair, log_hot_spots
from hkafusion_monai.deploy.planning import FusionPair
from hkafusion_monai.io.dicom import frame_headers, multiframe_geometry
from hkafusion_monai.io.dicom.scan import read_header
from hkafusion_monai.io.pairing import VolumeSeries
from hkafusion_monai.metrics.checks import HOT_SPOT_MIN_KEPT, hot_spot_guard
from hkafusion_monai.transforms.volume import LoadFusionVolumed
from hkafusion_monai.utils.colour import colour_rendering
from hkafusion_monai.utils.errors import FusionInputError, HKAFusionError, RefusedPairError

__all__ = ["FusionOperator"]


def _headers(selected: VolumeSeries) -> list[pydicom.Dataset]:
    """Per-slice headers in spatial order (one per frame of a multi-frame image)."""
    datasets: list[pydicom.Dataset] = [read_header(f) for f in selected.files]  # also a bare dataset
    if selected.header.slices[0].multiframe:
        return frame_headers(datasets[0], multiframe_geometry(datasets[0], selected.files[0]))
    return datasets


class FusionOperator(Operator):
    """Fuse each pair on its MR grid, with the bundle's reader and preprocessing contract.

    Named input ``pairs`` (from the ``FusionSeriesSelectorOperator``); named output ``fused``: a list of
    :class:`~hkafusion_monai.deploy.fused.FusedPair`, in the order of the pairs. Each volume is read from the
    series' files by ``LoadFusionVolumed`` (the reader of the bundle's inference and evaluation: single-frame
    series, NM SPECT and enhanced multi-frame images), so Deploy fuses what they fuse.

    Args:
        fragment: the application.
        fuser: a :class:`hkafusion_monai.inference.Fuser`, or :class:`~hkafusion_monai.inference.TaskFusers`
            (a model per task).
        colour_series: also render PET/SPECT in colour (``colour_rendering``) for an RGB series.
        allow_patient_mismatch: passed to :meth:`Fuser.fuse_volumes` (the selector has refused mismatches
            unless the rules allow them).
        check_outputs: called with the pairs before any work (the writer's
            ``DICOMFusedSeriesWriterOperator.check_targets``), so that an existing output fails first.
        hot_spot_min_kept: the hot-spot guard's fraction (the rules' ``fusion.hot_spot_min_kept``): a PET/SPECT
            hot spot keeping less of its contrast in the fusion is lost, logged, and noted in the series.
    """

    def __init__(
        self,
        fragment: Fragment,
        *args,
        fuser: Any,
        colour_series: bool = False,
        allow_patient_mismatch: bool = False,
        check_outputs: Any = None,
        hot_spot_min_kept: float = HOT_SPOT_MIN_KEPT,
        **kwargs,
    ) -> None:
        self.hot_spot_min_kept = float(hot_spot_min_kept)
        self.check_outputs = check_outputs
        self.fuser = fuser
        self.colour_series = colour_series
        self.allow_patient_mismatch = allow_patient_mismatch
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        spec.input("pairs")
        spec.output("fused")

    def compute(self, op_input, op_output, context) -> None:
        op_output.emit(self.fuse(op_input.receive("pairs")), "fused")

    def fuse(self, pairs: list[FusionPair]) -> list[FusedPair]:
        """Fuse every pair (see the class docstring)."""
        if self.check_outputs is not None:
            self.check_outputs(pairs)
        load = LoadFusionVolumed(["v"], allow_blank=True)
        cache: dict[str, Any] = {}

        def volume(s: VolumeSeries):
            if s.uid not in cache:
                cache[s.uid] = load({"v": [str(f) for f in s.files]})["v"]
            return cache[s.uid]

        return [self._fuse_pair(p, volume(p.mri), volume(p.other)) for p in pairs]

    def _fuse_pair(self, p: FusionPair, mri: Any, other: Any) -> FusedPair:
        names = f"MR series {p.mri.describe()} and {p.other.header.modality} series {p.other.describe()}"
        kwargs = {"allow_patient_mismatch": True} if self.allow_patient_mismatch else {}
        try:
            fused, other_on_mri, mri_scaled = self.fuser.fuse_volumes(
                mri, other, modality=p.modality, register=p.register, return_other=True, return_mri=True, **kwargs
            )
        except HKAFusionError as e:  # refused pair, overlap: name both series
            raise type(e)(f"{names}: {e}") from e
        except (ValueError, RuntimeError) as e:
            what = "cannot be registered" if p.register else "cannot be fused"
            detail = " ".join(str(e).split())[:300]
            raise RefusedPairError(f"{names}: {what} ({detail})") from e
        array = fused.as_tensor()[0].numpy().transpose(2, 1, 0)
        other_array = other_on_mri.as_tensor()[0].numpy().transpose(2, 1, 0)
        colour = None
        if self.colour_series and p.modality in ("PET", "SPECT"):
            colour = colour_rendering(array, other_array)
        mri_headers = _headers(p.mri)
        if len(mri_headers) != array.shape[0]:
            raise FusionInputError(f"MR series {p.mri.uid}: {len(mri_headers)} slices but a {array.shape} volume")
        result = FusedPair(
            p,
            np.ascontiguousarray(array, dtype=np.float32),
            mri_headers,
            _headers(p.other),
            colour,
            min_kept=self.hot_spot_min_kept,
        )
        if p.modality in ("PET", "SPECT"):
            # (slices, rows, columns) -> (rows, columns, slices): position (row, column, k) lies on mri[k]
            result.hot_spots = hot_spot_guard(
                array.transpose(1, 2, 0),
                other_array.transpose(1, 2, 0),
                min_kept=self.hot_spot_min_kept,
                max_value=1.0,
                mri=mri_scaled.as_tensor()[0].numpy().transpose(1, 0, 2),
            )
            log_hot_spots(result)
        return result
