"""Ignite engines for fusion training."""

from hkafusion_monai.engines.trainer import FusionTrainer, loss_terms, prepare_fusion_batch

__all__ = ["FusionTrainer", "loss_terms", "prepare_fusion_batch"]
