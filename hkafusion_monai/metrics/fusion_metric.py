"""MONAI metric classes (on ``RegressionMetric``) for the eight fusion metrics of the paper (section IV-A).

Each class takes ``y_pred`` = the fused image (B, 1, H, W) and ``y`` = the sources (B, 2, H, W), channel 0 =
I_A (MRI), channel 1 = I_B (CT/PET/SPECT grey), all in [0, 1] as the network sees them, quantises them with
:func:`~hkafusion_monai.utils.quantisation.quantise` (``round(255 * clip(x, 0, 1))``) and scores them with
the functions of :mod:`hkafusion_monai.metrics.functional` (reference conventions, see docs/metrics.md).
Lists of channel-first tensors are accepted too, as by every MONAI metric.
"""

from __future__ import annotations

import torch
from monai.metrics.regression import RegressionMetric
from monai.utils import MetricReduction

from hkafusion_monai.metrics.functional import METRIC_FUNCTIONS, check_fusion_inputs
from hkafusion_monai.utils.quantisation import quantise

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


class FusionMetric(RegressionMetric):
    """Base class: one of the eight fusion metrics, per sample, accumulated over iterations.

    MONAI's ``RegressionMetric`` does the accumulation, the reduction (``reduction``, ``get_not_nans``,
    :meth:`aggregate`) and the tensor check; what is ours is the shape rule (one fused channel against two
    sources, where ``RegressionMetric`` wants equal shapes) and the quantisation before scoring. Subclasses only
    set :attr:`metric_name`, a key of :data:`~hkafusion_monai.metrics.functional.METRIC_FUNCTIONS`.

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
        if self.metric_name not in METRIC_FUNCTIONS:
            raise TypeError(f"{type(self).__name__}.metric_name must be one of {list(METRIC_FUNCTIONS)}.")
        super().__init__(reduction=reduction, get_not_nans=get_not_nans)

    def _check_shape(self, y_pred: torch.Tensor, y: torch.Tensor) -> None:
        """Fused (B, 1, H, W) against sources (B, 2, H, W), both finite (checked before quantising, which
        would clip an inf away).

        Raises:
            ValueError: for a wrong shape or channel count, mismatched sizes, or NaN/inf values.
        """
        check_fusion_inputs(y_pred, y)

    def _compute_metric(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-sample value of the quantised images, shape (B, 1), float64, on the inputs' device."""
        fused, sources = quantise(y_pred).to(torch.float64), quantise(y).to(torch.float64)
        return METRIC_FUNCTIONS[self.metric_name](fused, sources).unsqueeze(1)


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
