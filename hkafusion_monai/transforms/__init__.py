"""MONAI transforms for fusion inputs: reading, colour (YCbCr), intensity and pair stacking.

The colour maths lives once, in :mod:`hkafusion_monai.transforms.colour`; import it from there.
"""

from .colour import is_grey_rgb, rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb
from .dictionary import MergeYCbCrd, ScaleByBitDepthd, SplitYCbCrd, StackPaird
from .reader import SUPPORTED_2D_SUFFIXES, FusionInputError, FusionPILReader, LoadFusionImaged

__all__ = [
    "SUPPORTED_2D_SUFFIXES",
    "FusionInputError",
    "FusionPILReader",
    "LoadFusionImaged",
    "MergeYCbCrd",
    "ScaleByBitDepthd",
    "SplitYCbCrd",
    "StackPaird",
    "is_grey_rgb",
    "rgb_to_y",
    "rgb_to_ycbcr",
    "ycbcr_to_rgb",
]
