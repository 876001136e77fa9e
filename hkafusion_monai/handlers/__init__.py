"""Ignite/MONAI handlers: the dynamic loss weight mu and the eight fusion-metric handlers."""

from hkafusion_monai.handlers.dynamic_mu import DynamicMuHandler
from hkafusion_monai.handlers.fusion_metrics import (
    FUSION_METRIC_HANDLERS,
    VIF,
    AverageGradient,
    CorrelationCoefficient,
    FusionMetricHandler,
    FusionSSIM,
    MutualInformation,
    Qabf,
    Qcv,
    SpatialFrequency,
)

__all__ = [
    "DynamicMuHandler",
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
]
