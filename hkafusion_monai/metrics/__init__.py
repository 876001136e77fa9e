"""The eight fusion metrics of the HKAFusion paper (IV-A): MI, SF, VIF, AG, Qabf, Qcv, CC, SSIM.

``functional`` holds the pure, batched torch maths on the 0-255 grey scale (float64 inside, CPU or GPU);
``fusion_metric`` the MONAI metric classes on top (on ``RegressionMetric``); ``checks`` the reader's checks
(bone brightness, hot-spot contrast, the hot-spot guard) and ``hot_spots`` the hot-spot finder they share with the
restoration after the network; ``statistics`` the paired comparison of two methods.
Conventions and references: docs/metrics.md. The metrics score images quantised by
:func:`hkafusion_monai.utils.quantise`; PET/SPECT on the grey value of
:func:`hkafusion_monai.utils.colour.rgb_to_grey`.
"""

from hkafusion_monai.metrics.checks import (
    BONE_THRESHOLD,
    CHECK_NAMES,
    HOT_SPOT_MIN_CONTRAST,
    HOT_SPOT_MIN_KEPT,
    HOT_SPOT_MRI_DARKER,
    HOT_SPOT_RADII,
    BoneBrightnessMetric,
    GuardedHotSpot,
    bone_brightness_kept,
    hot_spot_contrast,
    hot_spot_contrast_kept,
    hot_spot_guard,
)
from hkafusion_monai.metrics.functional import (
    METRIC_FUNCTIONS,
    METRIC_NAMES,
    average_gradient,
    check_fusion_inputs,
    compute_fusion_metrics,
    correlation_coefficient,
    fusion_metrics_batch,
    fusion_ssim,
    mutual_information,
    qabf,
    qcv,
    spatial_frequency,
    visual_information_fidelity,
)
from hkafusion_monai.metrics.fusion_metric import (
    FUSION_METRIC_CLASSES,
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
from hkafusion_monai.metrics.hot_spots import FoundHotSpot, find_hot_spots
from hkafusion_monai.metrics.statistics import LOWER_IS_BETTER, paired_bootstrap_ci, paired_comparison

__all__ = [
    "BONE_THRESHOLD",
    "CHECK_NAMES",
    "HOT_SPOT_MIN_CONTRAST",
    "HOT_SPOT_MIN_KEPT",
    "HOT_SPOT_MRI_DARKER",
    "HOT_SPOT_RADII",
    "BoneBrightnessMetric",
    "GuardedHotSpot",
    "bone_brightness_kept",
    "hot_spot_contrast",
    "hot_spot_contrast_kept",
    "hot_spot_guard",
    "FoundHotSpot",
    "find_hot_spots",
    "LOWER_IS_BETTER",
    "paired_bootstrap_ci",
    "paired_comparison",
    "METRIC_NAMES",
    "METRIC_FUNCTIONS",
    "FUSION_METRIC_CLASSES",
    "check_fusion_inputs",
    "compute_fusion_metrics",
    "fusion_metrics_batch",
    "mutual_information",
    "spatial_frequency",
    "visual_information_fidelity",
    "average_gradient",
    "qabf",
    "qcv",
    "correlation_coefficient",
    "fusion_ssim",
    "FusionMetric",
    "MutualInformationMetric",
    "SpatialFrequencyMetric",
    "VIFMetric",
    "AverageGradientMetric",
    "QabfMetric",
    "QcvMetric",
    "CorrelationCoefficientMetric",
    "FusionSSIMMetric",
]
