"""MONAI ``CumulativeIterationMetric`` classes for the eight fusion metrics of the paper (section IV-A).

Each class takes ``y_pred`` = the fused image (B, 1, H, W) and ``y`` = the sources (B, 2, H, W), channel 0 =
I_A (MRI), channel 1 = I_B (CT/PET/SPECT grey), all in [0, 1] as the network sees them, quantises them with
:func:`~hkafusion_monai.metrics.functional.quantise` (``round(255 * clip(x, 0, 1))``) and scores them with
the functions of :mod:`hkafusion_monai.metrics.functional` (reference conventions, see docs/metrics.md).
Lists of channel-first tensors are accepted too, as by every MONAI metric.
"""

from __future__ import annotations

from typing import Any

import torch
from monai.metrics import CumulativeIterationMetric
from monai.metrics.utils import do_metric_reduction
from monai.utils import MetricReduction

from hkafusion_monai.metrics.functional import METRIC_FUNCTIONS, check_fusion_inputs, quantise

__all__ = [
    "FusionMetric",
    "MutualInformationMetric",
    "SpatialFrequencyMetric",
    "VIFMetric",
    "AverageGradientMetric",
    "QabfMetric",
    "QcvMetric",
    "CorrelationCoefficientMetric",
    "FusionSSIMMetric",
    "FUSION_METRIC_CLASSES",
]


class FusionMetric(CumulativeIterationMetric):
    """Base class: one of the eight fusion metrics, per sample, accumulated over iterations.

    Subclasses only set :attr:`metric_name`, a key of
    :data:`~hkafusion_monai.metrics.functional.METRIC_FUNCTIONS`.

    Args:
        reduction: how :meth:`aggregate` reduces the buffer of per-sample values (B, 1), as for MONAI's
            regression metrics: ``"mean"`` (default), ``"sum"``, ``"none"``, ...
        get_not_nans: whether :meth:`aggregate` also returns the count of not-NaN values.

    Example::

        metric = QabfMetric()
        for batch in loader:
            metric(y_pred=net(batch["image"]), y=batch["image"])   # fused (B,1,H,W), sources (B,2,H,W)
        qabf = metric.aggregate().item()
    """

    metric_name: str = ""

    def __init__(self, reduction: MetricReduction | str = MetricReduction.MEAN, get_not_nans: bool = False) -> None:
        super().__init__()
        if self.metric_name not in METRIC_FUNCTIONS:
            raise TypeError(f"{type(self).__name__}.metric_name must be one of {list(METRIC_FUNCTIONS)}.")
        self.reduction = reduction
        self.get_not_nans = get_not_nans

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
        """Per-sample value, shape (B, 1), float64, on the inputs' device.

        Args:
            y_pred: fused images (B, 1, H, W) in [0, 1].
            y: source images (B, 2, H, W) in [0, 1].

        Raises:
            ValueError: for a wrong shape or channel count, mismatched sizes, or NaN/inf values.
        """
        if y is None:
            raise ValueError(f"{type(self).__name__} needs y = the (B, 2, H, W) source images.")
        check_fusion_inputs(y_pred, y)
        fused, sources = quantise(y_pred).to(torch.float64), quantise(y).to(torch.float64)
        fn = METRIC_FUNCTIONS[self.metric_name]
        return fn.__wrapped__(fused, sources).unsqueeze(1)  # inputs validated and quantised above

    def aggregate(
        self, reduction: MetricReduction | str | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Reduce the accumulated per-sample values.

        Args:
            reduction: overrides ``self.reduction`` when given.
        """
        data = self.get_buffer()
        if not isinstance(data, torch.Tensor):
            raise ValueError("the data to aggregate must be a PyTorch Tensor.")
        f, not_nans = do_metric_reduction(data, reduction or self.reduction)
        return (f, not_nans) if self.get_not_nans else f


class MutualInformationMetric(FusionMetric):
    """MI(F, A) + MI(F, B) in nats; see :func:`~hkafusion_monai.metrics.functional.mutual_information`."""

    metric_name = "MI"


class SpatialFrequencyMetric(FusionMetric):
    """Spatial frequency of F; see :func:`~hkafusion_monai.metrics.functional.spatial_frequency`."""

    metric_name = "SF"


class VIFMetric(FusionMetric):
    """VIF(A, F) + VIF(B, F); see :func:`~hkafusion_monai.metrics.functional.visual_information_fidelity`."""

    metric_name = "VIF"


class AverageGradientMetric(FusionMetric):
    """Average gradient of F; see :func:`~hkafusion_monai.metrics.functional.average_gradient`."""

    metric_name = "AG"


class QabfMetric(FusionMetric):
    """Xydeas-Petrovic Q^{AB/F}; see :func:`~hkafusion_monai.metrics.functional.qabf`."""

    metric_name = "Qabf"


class QcvMetric(FusionMetric):
    """Chen-Varshney Q_CV (lower is better); see :func:`~hkafusion_monai.metrics.functional.qcv`."""

    metric_name = "Qcv"


class CorrelationCoefficientMetric(FusionMetric):
    """(r(A, F) + r(B, F)) / 2; see :func:`~hkafusion_monai.metrics.functional.correlation_coefficient`."""

    metric_name = "CC"


class FusionSSIMMetric(FusionMetric):
    """SSIM(F, A) + SSIM(F, B), reference convention; see :func:`~hkafusion_monai.metrics.functional.fusion_ssim`."""

    metric_name = "SSIM"


#: metric name (``compute_fusion_metrics`` key) -> its MONAI metric class.
FUSION_METRIC_CLASSES: dict[str, type[FusionMetric]] = {
    cls.metric_name: cls
    for cls in (
        MutualInformationMetric,
        SpatialFrequencyMetric,
        VIFMetric,
        AverageGradientMetric,
        QabfMetric,
        QcvMetric,
        CorrelationCoefficientMetric,
        FusionSSIMMetric,
    )
}
