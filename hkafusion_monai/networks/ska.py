"""The Scale-aware Kernel Attention (SKA) module, its feed-forward network and the SKA block (paper III-B,
eq. 1-5), plus the plain self-attention used by the Table II ablation.

Shapes are channel-first ``(B, C, H, W)``; every module here keeps C, H and W.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["BatchNormConv1x1", "SKAModule", "SKAFeedForward", "SpatialSelfAttention", "SKABlock"]


class BatchNormConv1x1(nn.Module):
    """``Conv1x1(BatchNorm(x))``, folded into one 1x1 convolution in eval mode.

    In training the BatchNorm uses batch statistics and runs as written. In eval mode it is an affine map per
    channel, so ``W (s x + t) + c = (W s) x + (W t + c)``: one convolution instead of two passes over the
    feature map. The weights are folded on the fly (C^2 work), so checkpoints keep MONAI's usual layout and
    ``torch.nn.SyncBatchNorm.convert_sync_batchnorm`` still finds the BatchNorm.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = self.norm
        mean, var, gamma, beta = norm.running_mean, norm.running_var, norm.weight, norm.bias
        if norm.training or mean is None or var is None or gamma is None or beta is None:
            out: torch.Tensor = self.conv(norm(x))
            return out
        scale = gamma * torch.rsqrt(var + norm.eps)
        shift = beta - mean * scale
        weight = self.conv.weight * scale.view(1, -1, 1, 1)
        bias = self.conv.weight.flatten(1) @ shift
        conv_bias = self.conv.bias
        if conv_bias is not None:
            bias = bias + conv_bias
        return F.conv2d(x, weight, bias)


class SKAModule(nn.Module):
    """Scale-aware Kernel Attention module, eq. 1-4 of the HKAFusion paper.

    - eq. 1, multi-scale local features: ``x_d = Conv1x1(x + sum_m DWConv_{k_m}(x))``.
    - eq. 2-3, large-kernel attention decomposed as in LSKA (Lau et al. 2024): a depthwise ``1x(2d-1)`` then
      ``(2d-1)x1`` pair on x, then a depthwise ``1x floor(K/d)`` and ``floor(K/d) x1`` pair with dilation d.
      Its receptive field is ``(2d-1) + (floor(K/d)-1) d`` (11 for K=11, d=2).
    - eq. 4: ``x_out = Conv1x1(Concat(Attention * x_d, x_d))``.

    The identity and the parallel depthwise kernels of eq. 1 are linear and share their centre, so they are
    summed into one ``k_max x k_max`` depthwise kernel before the convolution (structural
    re-parameterisation, as in RepLKNet). The three kernels remain separate parameters and all receive
    gradients; the result equals the three-branch sum up to float rounding, at 49 instead of 83 MACs per
    pixel and channel and one pass over the feature map instead of four.

    Args:
        channels: C.
        small_kernels: the parallel depthwise kernel sizes (k1, k2, k3); odd.
        large_kernel: K, the large kernel the attention approximates; odd.
        dilation: d, the dilation of the second pair; ``floor(K/d)`` must be odd so the padding is symmetric.
        use_attention: False for the "w/o attention" ablation of Table II: no large-kernel branch, and
            ``x_out = Conv1x1(x_d)``.
    """

    def __init__(
        self,
        channels: int,
        small_kernels: Sequence[int] = (3, 5, 7),
        large_kernel: int = 11,
        dilation: int = 2,
        use_attention: bool = True,
    ) -> None:
        super().__init__()
        self.kernel_max = max(small_kernels)
        self.local_convs = nn.ModuleList(
            nn.Conv2d(channels, channels, k, padding=k // 2, groups=channels) for k in small_kernels
        )
        self.local_proj = nn.Conv2d(channels, channels, kernel_size=1)
        self.use_attention = use_attention
        self.attention = nn.Sequential()
        if use_attention:
            k0 = 2 * dilation - 1
            kd = large_kernel // dilation
            pd = (kd // 2) * dilation
            self.attention = nn.Sequential(
                nn.Conv2d(channels, channels, (1, k0), padding=(0, k0 // 2), groups=channels),
                nn.Conv2d(channels, channels, (k0, 1), padding=(k0 // 2, 0), groups=channels),
                nn.Conv2d(channels, channels, (1, kd), padding=(0, pd), dilation=(1, dilation), groups=channels),
                nn.Conv2d(channels, channels, (kd, 1), padding=(pd, 0), dilation=(dilation, 1), groups=channels),
            )
        self.out_proj = nn.Conv2d(channels * 2 if use_attention else channels, channels, kernel_size=1)

    def local_kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The identity plus the parallel depthwise kernels of eq. 1 as one ``(C, 1, k_max, k_max)`` kernel."""
        ref = self.local_proj.weight
        k = self.kernel_max
        weight = torch.zeros(ref.shape[1], 1, k, k, dtype=ref.dtype, device=ref.device)
        bias = torch.zeros(ref.shape[1], dtype=ref.dtype, device=ref.device)
        for conv in self.local_convs:
            conv_weight = conv.weight
            assert isinstance(conv_weight, torch.Tensor)  # a Conv2d's (ModuleList items are typed as Module)
            p = (self.kernel_max - conv_weight.shape[-1]) // 2
            weight = weight + F.pad(conv_weight, [p, p, p, p])
            conv_bias = conv.bias
            if isinstance(conv_bias, torch.Tensor):  # None when the convolution has no bias
                bias = bias + conv_bias
        identity = torch.zeros_like(weight)
        identity[:, :, k // 2, k // 2] = 1.0
        return weight + identity, bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.local_kernel()
        x_d = self.local_proj(F.conv2d(x, weight, bias, padding=self.kernel_max // 2, groups=x.shape[1]))
        if not self.use_attention:
            out: torch.Tensor = self.out_proj(x_d)
            return out
        attention = self.attention(x)
        out = self.out_proj(torch.cat([attention * x_d, x_d], dim=1))
        return out


class SKAFeedForward(nn.Module):
    """The feed-forward network of eq. 5: ``Conv1x1(GELU(Conv3x3,dil=2(Conv1x1(x))))``.

    The first 1x1 convolution is preceded by a BatchNorm (pre-norm, see :class:`SKABlock`), folded into it in
    eval mode.

    Args:
        channels: C (input and output).
        expansion: hidden width factor of the two 1x1 convolutions.
        dilation: dilation of the 3x3 convolution (2 in the paper).
    """

    def __init__(self, channels: int, expansion: float = 1.0, dilation: int = 2) -> None:
        super().__init__()
        hidden = max(1, int(round(channels * expansion)))
        self.net = nn.Sequential(
            BatchNormConv1x1(channels, hidden),
            nn.Conv2d(hidden, hidden, 3, padding=dilation, dilation=dilation),
            nn.GELU(),
            nn.Conv2d(hidden, channels, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out


class SpatialSelfAttention(nn.Module):
    """Multi-head self-attention over all pixels, the "self-attention mechanism" ablation of Table II.

    It replaces the SKA module one for one. Its cost is quadratic in H*W, which is why the paper (and this
    package) use the SKA module instead.
    """

    def __init__(self, channels: int, num_heads: int = 1) -> None:
        super().__init__()
        if channels % num_heads != 0:
            raise ValueError(f"SpatialSelfAttention: num_heads={num_heads} must divide channels={channels}.")
        self.num_heads = num_heads
        self.qkv = nn.Conv2d(channels, channels * 3, kernel_size=1)
        self.proj = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(x).reshape(b, 3, self.num_heads, c // self.num_heads, h * w).transpose(-2, -1)
        out = F.scaled_dot_product_attention(qkv[:, 0], qkv[:, 1], qkv[:, 2])
        projected: torch.Tensor = self.proj(out.transpose(-2, -1).reshape(b, c, h, w))
        return projected


class SKABlock(nn.Module):
    """One SKA block (paper III-B, Fig. 2): BatchNorm, 1x1 conv, GELU and the SKA module with a residual, then
    the eq. 5 feed-forward network with a residual.

    ``y = x + SKA(GELU(Conv1x1(BN(x))))``; ``out = y + FFN(BN(y))``. The second BatchNorm (pre-norm of the
    FFN, as in VAN, which the paper cites for its FFN) is our addition for training stability; in eval mode
    both BatchNorms fold into the 1x1 convolution that follows them (:class:`BatchNormConv1x1`).

    Args:
        channels: C (input and output).
        small_kernels, large_kernel, dilation: see :class:`SKAModule`.
        attention: ``"ska"`` (the paper), ``"none"`` (SKA module without its attention branch) or ``"self"``
            (plain multi-head self-attention in place of the SKA module), the option of the same name of
            :class:`~hkafusion_monai.networks.HKAFusion`. The chosen module is the block's token mixer,
            ``self.mixer`` (the checkpoints' key).
        ffn_expansion: hidden width factor of the FFN.
        num_heads: heads of the ``"self"`` attention.
    """

    def __init__(
        self,
        channels: int,
        small_kernels: Sequence[int] = (3, 5, 7),
        large_kernel: int = 11,
        dilation: int = 2,
        attention: str = "ska",
        ffn_expansion: float = 1.0,
        num_heads: int = 1,
    ) -> None:
        super().__init__()
        self.pre = BatchNormConv1x1(channels, channels)
        self.act = nn.GELU()
        if attention == "self":
            self.mixer: nn.Module = SpatialSelfAttention(channels, num_heads)
        elif attention in ("ska", "none"):
            self.mixer = SKAModule(channels, small_kernels, large_kernel, dilation, use_attention=attention == "ska")
        else:
            raise ValueError(f"SKABlock: attention must be 'ska', 'none' or 'self', got {attention!r}.")
        self.ffn = SKAFeedForward(channels, ffn_expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.mixer(self.act(self.pre(x)))
        out: torch.Tensor = x + self.ffn(x)
        return out
