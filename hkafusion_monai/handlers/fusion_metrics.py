"""Ignite handlers for the eight fusion metrics, usable in evaluator configs like MONAI's own metric handlers.

Each wraps the matching :class:`~hkafusion_monai.metrics.FusionMetric`: ``y_pred`` = the fused image
(B, 1, H, W) and ``y`` = the sources (B, 2, H, W) in [0, 1]; note that ``y`` is the input ``image``, not a
label, e.g. ``"output_transform": "$monai.handlers.from_engine(['pred', 'image'])"`` with an evaluator whose
postprocessing keeps ``image`` in the output. Images are quantised to 0..255 before scoring.
"""

from __future__ import annotations

from collections.abc import Callable

from monai.handlers.ignite_metric import IgniteMetricHandler
from monai.utils import MetricReduction

from hkafusion_monai.metrics import (
    AverageGradientMetric,
    CorrelationCoefficientMetric,
    FusionMetric,
    FusionSSIMMetric,
    MutualInformationMetric,
    QabfMetric,
    QcvMetric,
    SpatialFrequencyMetric,
    VIFMetric,
)

__all__ = [
    "FusionMetricHandler",
    "MutualInformation",
    "SpatialFrequency",
    "VIF",
    "AverageGradient",
    "Qabf",
    "Qcv",
    "CorrelationCoefficient",
    "FusionSSIM",
    "FUSION_METRIC_HANDLERS",
    "fusion_metric_handlers",
]


class FusionMetricHandler(IgniteMetricHandler):
    """Base class: the ignite handler of one :class:`~hkafusion_monai.metrics.FusionMetric` (set ``metric_class``).

    Args:
        reduction: reduction of the per-sample values over the epoch, ``"mean"`` by default.
        output_transform: maps ``engine.state.output`` to ``(y_pred, y)`` = (fused, sources), batch-first
            tensors or lists of channel-first tensors.
        save_details: whether to keep the per-image values in ``engine.state.metric_details``.
    """

    metric_class: type[FusionMetric] = FusionMetric

    def __init__(
        self,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        output_transform: Callable = lambda x: x,
        save_details: bool = True,
    ) -> None:
        super().__init__(
            metric_fn=self.metric_class(reduction=reduction),
            output_transform=output_transform,
            save_details=save_details,
        )


class MutualInformation(FusionMetricHandler):
    """MI(F, A) + MI(F, B) in nats (:class:`~hkafusion_monai.metrics.MutualInformationMetric`)."""

    metric_class = MutualInformationMetric


class SpatialFrequency(FusionMetricHandler):
    """Spatial frequency of F (:class:`~hkafusion_monai.metrics.SpatialFrequencyMetric`)."""

    metric_class = SpatialFrequencyMetric


class VIF(FusionMetricHandler):
    """VIF(A, F) + VIF(B, F) (:class:`~hkafusion_monai.metrics.VIFMetric`)."""

    metric_class = VIFMetric


class AverageGradient(FusionMetricHandler):
    """Average gradient of F (:class:`~hkafusion_monai.metrics.AverageGradientMetric`)."""

    metric_class = AverageGradientMetric


class Qabf(FusionMetricHandler):
    """Xydeas-Petrovic Q^{AB/F} (:class:`~hkafusion_monai.metrics.QabfMetric`)."""

    metric_class = QabfMetric


class Qcv(FusionMetricHandler):
    """Chen-Varshney Q_CV, lower is better (:class:`~hkafusion_monai.metrics.QcvMetric`)."""

    metric_class = QcvMetric


class CorrelationCoefficient(FusionMetricHandler):
    """(r(A, F) + r(B, F)) / 2 (:class:`~hkafusion_monai.metrics.CorrelationCoefficientMetric`)."""

    metric_class = CorrelationCoefficientMetric


class FusionSSIM(FusionMetricHandler):
    """SSIM(F, A) + SSIM(F, B), reference convention (:class:`~hkafusion_monai.metrics.FusionSSIMMetric`)."""

    metric_class = FusionSSIMMetric


#: metric name (``compute_fusion_metrics`` key) -> its handler class.
FUSION_METRIC_HANDLERS: dict[str, type[FusionMetricHandler]] = {
    cls.metric_class.metric_name: cls
    for cls in (
        MutualInformation,
        SpatialFrequency,
        VIF,
        AverageGradient,
        Qabf,
        Qcv,
        CorrelationCoefficient,
        FusionSSIM,
    )
}


def fusion_metric_handlers(
    split: str, method: str, output_transform: Callable, key: str | None = "Qabf"
) -> dict[str, FusionMetricHandler]:
    """One handler per metric, named ``<split>_<method>_<metric>`` in lower case (``"test_average_qabf"``), for
    an evaluator's ``key_val_metric`` (``key`` only) or ``additional_metrics`` (``key=None``: all the others).

    So that an evaluation of the test split of several methods logs ``test_<method>_<metric>``, never
    ``val_*``, and its "best metric" lines say which method they are about. Config use::

        "key_val_metric": {"_target_": "hkafusion_monai.handlers.fusion_metric_handlers", "split": "@eval_split",
                           "method": "average", "output_transform": "@validate#metric_output"}
    """
    names = [key] if key else [n for n in FUSION_METRIC_HANDLERS if n != "Qabf"]
    prefix = f"{split}_{method}_"
    return {f"{prefix}{n.lower()}": FUSION_METRIC_HANDLERS[n](output_transform=output_transform) for n in names}
