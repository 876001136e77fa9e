"""The HKAFusion training loss (paper III-D, eq. 7-12) as a MONAI-style ``_Loss``."""

from hkafusion_monai.losses.fusion_loss import GRADIENT_TARGETS, PER_SAMPLE_KEYS, TERM_KEYS, FusionLoss

__all__ = ["FusionLoss", "GRADIENT_TARGETS", "TERM_KEYS", "PER_SAMPLE_KEYS"]
