"""Shared helpers of the inference tests: a randomly initialised checkpoint (no trained weights exist)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hkafusion_monai.networks import HKAFusion

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundle"
INFERENCE_JSON = BUNDLE / "configs" / "inference.json"


def random_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<basetemp>/random-ckpt/model.pt``: the state dict of a seeded, randomly initialised HKAFusion."""
    path = tmp_path_factory.getbasetemp() / "random-ckpt" / "model.pt"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        torch.save(HKAFusion(in_channels=2, out_channels=1).state_dict(), path)
    return path
