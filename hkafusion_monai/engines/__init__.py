"""Ignite engines for fusion training."""

from hkafusion_monai.engines.trainer import FusionTrainer, check_loader, loss_terms, prepare_fusion_batch

__all__ = ["FusionTrainer", "check_loader", "loss_terms", "prepare_fusion_batch"]
