"""Ignite engines: the fusion trainer, and the batch inference evaluator that fuses every pair it can."""

from hkafusion_monai.engines.evaluator import FusionEvaluator, PairFailure
from hkafusion_monai.engines.trainer import (
    FusionTrainer,
    check_loader,
    check_loaders,
    loss_terms,
    prepare_fusion_batch,
)

__all__ = [
    "FusionEvaluator",
    "FusionTrainer",
    "PairFailure",
    "check_loader",
    "check_loaders",
    "loss_terms",
    "prepare_fusion_batch",
]
