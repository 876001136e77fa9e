"""The feature fusion module (FFM) of HKAFusion (paper III-C, eq. 6): five AFBLK steps, each followed by a 2x
upsampling, and the image generators that turn fused features into images.

Shapes are channel-first ``(B, C, H, W)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from hkafusion_monai.networks.restormer import RestormerBlock

__all__ = ["AFBLK", "ConcatFusion", "FeatureFusionModule", "FusionImageGenerator", "heads_for"]


def heads_for(channels: int, head_channels: int) -> int:
    """The largest head count ``<= channels // head_channels`` (at least 1) that divides ``channels``."""
    heads = max(1, channels // head_channels)
    while channels % heads:
        heads -= 1
    return heads


class AFBLK(nn.Module):
    """One AFBLK of eq. 6: ``G_i = R_e(Concat(F^A, F^B, up(G_{i-1})))``.

    The concatenated features are projected to ``out_channels`` by a 1x1 convolution, then passed through
    ``depth`` Restormer blocks (the Restormer-based encoder R_e).

    Args:
        in_channels: channels of the concatenation.
        out_channels: channels of G_i.
        num_heads: MDTA heads.
        depth: number of Restormer blocks.
        ffn_expansion: GDFN hidden width factor.
    """

    def __init__(
        self, in_channels: int, out_channels: int, num_heads: int = 1, depth: int = 1, ffn_expansion: float = 2.0
    ) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, out_channels, kernel_size=1)
        self.blocks = nn.Sequential(*[RestormerBlock(out_channels, num_heads, ffn_expansion) for _ in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.blocks(self.proj(x))
        return out


class ConcatFusion(nn.Module):
    """The "direct concatenation" ablation of Table II: the concatenated features are merged by a single 1x1
    convolution, with no Restormer-based interaction."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.proj(x)
        return out


def _upsample(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


class FeatureFusionModule(nn.Module):
    """Five fusion steps at H/32, H/16, H/8, H/4 and H/2, each followed by a 2x upsampling (paper III-A, eq. 6).

    Steps 1-4 fuse both modalities' encoder features at their level with the upsampled output of the step
    before. The paper starts from ``G_1 = 0``; a 1x1 projection of a concatenation with zeros equals the
    projection of the other inputs alone, so the first step omits the zeros (and the dead weights they would
    need). Step 5, at H/2, has no encoder features and takes only the upsampled G. After its upsampling the
    output G_5 is at full resolution.

    Args:
        stage_channels: encoder channels at H/4, H/8, H/16, H/32.
        half_channels: channels of the H/2 step and of G_5.
        head_channels: channels per MDTA head.
        depth: Restormer blocks per AFBLK.
        ffn_expansion: GDFN hidden width factor.
        fusion: ``"afblk"`` (the paper) or ``"concat"`` (the Table II "direct concatenation" ablation).

    Shape: lists of five features ``[F0 (H), F1 (H/4), ..., F4 (H/32)]`` per modality -> ``(B, half_channels, H, W)``.
    """

    def __init__(
        self,
        stage_channels: Sequence[int],
        half_channels: int,
        head_channels: int = 32,
        depth: int = 1,
        ffn_expansion: float = 2.0,
        fusion: str = "afblk",
    ) -> None:
        super().__init__()
        if fusion not in ("afblk", "concat"):
            raise ValueError(f"FeatureFusionModule: fusion must be 'afblk' or 'concat', got {fusion!r}.")

        def step(cin: int, cout: int) -> nn.Module:
            if fusion == "concat":
                return ConcatFusion(cin, cout)
            return AFBLK(cin, cout, heads_for(cout, head_channels), depth, ffn_expansion)

        self.steps = nn.ModuleList()
        previous = 0
        for channels in reversed(list(stage_channels)):
            self.steps.append(step(2 * channels + previous, channels))
            previous = channels
        self.last = step(previous, half_channels)

    def forward(self, feats_a: list[torch.Tensor], feats_b: list[torch.Tensor]) -> torch.Tensor:
        deepest = len(feats_a) - 1
        g = feats_a[deepest]
        for i, fuse in enumerate(self.steps):
            level = deepest - i
            if i == 0:
                g = fuse(torch.cat([feats_a[level], feats_b[level]], dim=1))
            else:
                g = fuse(torch.cat([feats_a[level], feats_b[level], _upsample(g)], dim=1))
        return _upsample(self.last(_upsample(g)))


class FusionImageGenerator(nn.Module):
    """The fusion image generator of III-C: a Restormer block, a convolution and a sigmoid.

    A 1x1 projection first brings the input to ``channels`` so that the full-resolution Restormer block runs
    at the encoder's shallow width. The two reconstruction decoders share this architecture.

    Args:
        in_channels: channels of the input features.
        channels: width of the Restormer block.
        num_heads: MDTA heads.
        ffn_expansion: GDFN hidden width factor.

    Shape: ``(B, in_channels, H, W) -> (B, 1, H, W)``, values in (0, 1).
    """

    def __init__(self, in_channels: int, channels: int, num_heads: int = 1, ffn_expansion: float = 2.0) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, channels, kernel_size=1)
        self.block = RestormerBlock(channels, num_heads, ffn_expansion)
        self.head = nn.Conv2d(channels, 1, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(self.block(self.proj(x))))
