"""HKAFusion network components (paper III-A to III-C). See docs/architecture.md for the equation map."""

from hkafusion_monai.networks.baselines import LaplacianPyramidFusion, PixelAverage, PixelMax
from hkafusion_monai.networks.fusion import AFBLK, ConcatFusion, FeatureFusionModule, FusionImageGenerator
from hkafusion_monai.networks.hkafusion import HKAEncoder, HKAFusion
from hkafusion_monai.networks.restormer import GDFN, MDTA, ChannelLayerNorm, RestormerBlock
from hkafusion_monai.networks.ska import BatchNormConv1x1, SKABlock, SKAFeedForward, SKAModule, SpatialSelfAttention

__all__ = [
    "AFBLK",
    "BatchNormConv1x1",
    "ChannelLayerNorm",
    "ConcatFusion",
    "FeatureFusionModule",
    "FusionImageGenerator",
    "GDFN",
    "HKAEncoder",
    "HKAFusion",
    "MDTA",
    "PixelAverage",
    "PixelMax",
    "LaplacianPyramidFusion",
    "RestormerBlock",
    "SKABlock",
    "SKAFeedForward",
    "SKAModule",
    "SpatialSelfAttention",
]
