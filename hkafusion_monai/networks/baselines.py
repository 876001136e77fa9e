"""Pixel fusion rules used as baselines: they take the network's input and give the network's output, so the
evaluation workflow scores them through exactly the same pipeline (data, quantisation, metrics) as HKAFusion.

Both work on the 8-bit grey levels the metrics score: inputs in [0, 1] are first quantised to
``round(255 x)``, as the reference rules were computed on 8-bit images.
"""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["PixelAverage", "PixelMax"]


def _levels(image: torch.Tensor) -> torch.Tensor:
    if image.dim() != 4 or image.shape[1] != 2:
        raise ValueError(f"expected image of shape (B, 2, H, W), got {list(image.shape)}.")
    return torch.round(image.clamp(0.0, 1.0) * 255.0)


class PixelAverage(nn.Module):
    """The average rule: ``F = (A + B + 1) // 2`` on 8-bit levels (round half up), returned in [0, 1].

    Shape: ``(B, 2, H, W) -> (B, 1, H, W)``.
    """

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        levels = _levels(image)
        return torch.div(levels[:, :1] + levels[:, 1:] + 1, 2, rounding_mode="floor") / 255.0


class PixelMax(nn.Module):
    """The max rule: ``F = max(A, B)`` on 8-bit levels, returned in [0, 1].

    Shape: ``(B, 2, H, W) -> (B, 1, H, W)``.
    """

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        levels = _levels(image)
        return torch.maximum(levels[:, :1], levels[:, 1:]) / 255.0
