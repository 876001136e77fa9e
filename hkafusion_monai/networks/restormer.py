"""Restormer building blocks (Zamir et al., "Restormer: Efficient Transformer for High-Resolution Image
Restoration", CVPR 2022), used by HKAFusion for shallow feature extraction (paper III-A), inside every AFBLK
(eq. 6) and in the fusion image generator (III-C).

MONAI has no Restormer block, so it is written here. Shapes are channel-first ``(B, C, H, W)`` throughout.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["ChannelLayerNorm", "MDTA", "GDFN", "RestormerBlock"]


class ChannelLayerNorm(nn.Module):
    """Layer normalisation over the channel axis of a ``(B, C, H, W)`` tensor (Restormer's "WithBias" norm).

    Each pixel's C-vector is normalised on its own, so the result does not depend on the image size.
    The tensor is viewed channels-last for ``F.layer_norm``; under ``torch.channels_last`` memory format that
    view is free.
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.channels = channels
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(x.permute(0, 2, 3, 1), [self.channels], self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


class MDTA(nn.Module):
    """Multi-Dconv head Transposed Attention: self-attention across channels, not pixels.

    The attention map is ``(C/heads) x (C/heads)`` per head, so the cost is linear in H*W, which is what lets
    Restormer work at full resolution.

    Args:
        channels: C.
        num_heads: number of heads; must divide ``channels``.
        bias: whether the convolutions carry a bias.
    """

    def __init__(self, channels: int, num_heads: int = 1, bias: bool = False) -> None:
        super().__init__()
        if channels % num_heads != 0:
            raise ValueError(f"MDTA: num_heads={num_heads} must divide channels={channels}.")
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(channels, channels * 3, kernel_size=1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(channels * 3, channels * 3, 3, padding=1, groups=channels * 3, bias=bias)
        self.project_out = nn.Conv2d(channels, channels, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        heads = self.num_heads
        qkv = self.qkv_dwconv(self.qkv(x))
        # Token-major views (B, heads, HW, C/heads): free for channels-last input, which HKAFusion uses.
        # unbind, not three index selects: the backward of each select zero-fills a full-size gradient
        q, k, v = (t.transpose(1, 2) for t in qkv.permute(0, 2, 3, 1).reshape(b, h * w, 3, heads, c // heads).unbind(2))
        # Cosine similarity between channel maps, i.e. F.normalize on q and k, but dividing the small
        # (C/heads)^2 product by the norms instead of normalising two full-resolution maps.
        q_norm = torch.linalg.vector_norm(q, dim=2).clamp_min(1e-12)
        k_norm = torch.linalg.vector_norm(k, dim=2).clamp_min(1e-12)
        attn = (q.transpose(-2, -1) @ k) / (q_norm.unsqueeze(-1) * k_norm.unsqueeze(-2))
        attn = torch.softmax(attn * self.temperature, dim=-1)
        out = v @ attn.transpose(-2, -1)  # (B, heads, HW, C/heads)
        out = out.transpose(1, 2).reshape(b, h, w, c).permute(0, 3, 1, 2)
        projected: torch.Tensor = self.project_out(out)
        return projected


class GDFN(nn.Module):
    """Gated-Dconv Feed-forward Network: ``W_o (GELU(W_1 x) * W_2 x)`` with depthwise 3x3 convs in both paths.

    Args:
        channels: C.
        expansion: hidden width factor (Restormer uses 2.66).
        bias: whether the convolutions carry a bias.
    """

    def __init__(self, channels: int, expansion: float = 2.0, bias: bool = False) -> None:
        super().__init__()
        hidden = max(1, int(round(channels * expansion)))
        self.project_in = nn.Conv2d(channels, hidden * 2, kernel_size=1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden, channels, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        out: torch.Tensor = self.project_out(F.gelu(x1) * x2)
        return out


class RestormerBlock(nn.Module):
    """One Restormer transformer block: ``x + MDTA(LN(x))``, then ``x + GDFN(LN(x))``.

    Args:
        channels: C (input and output).
        num_heads: MDTA heads.
        ffn_expansion: GDFN hidden width factor.
        bias: whether the convolutions carry a bias.

    Shape: ``(B, C, H, W) -> (B, C, H, W)``.
    """

    def __init__(self, channels: int, num_heads: int = 1, ffn_expansion: float = 2.0, bias: bool = False) -> None:
        super().__init__()
        self.norm1 = ChannelLayerNorm(channels)
        self.attn = MDTA(channels, num_heads, bias)
        self.norm2 = ChannelLayerNorm(channels)
        self.ffn = GDFN(channels, ffn_expansion, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        out: torch.Tensor = x + self.ffn(self.norm2(x))
        return out
