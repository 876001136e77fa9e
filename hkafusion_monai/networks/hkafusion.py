"""HKAFusion: the hybrid kernel attention network for MRI + CT/PET/SPECT fusion.

Zeng, Liu, Yao, Sun, Tao and Ban, "HKA Fusion: Hybrid Kernel Attention Network for Medical Image Fusion"
(paper III-A to III-C, Fig. 2). The mapping from each equation to its class is in docs/architecture.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from hkafusion_monai.networks.fusion import FeatureFusionModule, FusionImageGenerator, heads_for
from hkafusion_monai.networks.restormer import RestormerBlock
from hkafusion_monai.networks.ska import SKABlock

__all__ = ["HKAEncoder", "HKAFusion"]


class HKAEncoder(nn.Module):
    """Feature extraction of one modality (paper III-A): an input projection and Restormer blocks give the
    shallow features F0 at full resolution, then four SKA stages give F1..F4 at H/4, H/8, H/16 and H/32.

    Each stage starts with a strided convolution (stride 4 for the first stage, 2 after), then stacks SKA blocks
    at a constant width.

    Every argument is keyword-only; :class:`HKAFusion` documents their defaults and checks their values.

    Args:
        shallow_channels: width of F0.
        shallow_blocks: Restormer blocks of the shallow extraction (2 in the paper).
        stage_channels: widths of the four stages.
        stage_depths: SKA blocks per stage.
        head_channels: channels per MDTA / self-attention head.
        restormer_ffn_expansion: GDFN hidden width factor.
        small_kernels: (k1, k2, k3) of eq. 1, for every :class:`SKABlock`.
        large_kernel: K of eq. 2-3.
        dilation: d of eq. 2-3.
        attention: ``"ska"`` (paper), ``"none"`` or ``"self"`` (Table II ablations), see :class:`SKABlock`.
        ska_ffn_expansion: hidden width factor of the eq. 5 FFN.

    Shape: ``(B, 1, H, W) -> [F0 (B, C0, H, W), F1 (B, C1, H/4, W/4), ..., F4 (B, C4, H/32, W/32)]``.
    """

    def __init__(
        self,
        *,
        shallow_channels: int,
        shallow_blocks: int,
        stage_channels: Sequence[int],
        stage_depths: Sequence[int],
        head_channels: int,
        restormer_ffn_expansion: float,
        small_kernels: Sequence[int],
        large_kernel: int,
        dilation: int,
        attention: str,
        ska_ffn_expansion: float,
    ) -> None:
        super().__init__()
        self.input_proj = nn.Conv2d(1, shallow_channels, kernel_size=3, padding=1)
        heads = heads_for(shallow_channels, head_channels)
        self.shallow = nn.Sequential(
            *[RestormerBlock(shallow_channels, heads, restormer_ffn_expansion) for _ in range(shallow_blocks)]
        )
        self.stages = nn.ModuleList()
        previous = shallow_channels
        for i, (channels, depth) in enumerate(zip(stage_channels, stage_depths, strict=True)):
            stride = 4 if i == 0 else 2
            blocks: list[nn.Module] = [nn.Conv2d(previous, channels, kernel_size=stride, stride=stride)]
            blocks += [
                SKABlock(
                    channels,
                    small_kernels=small_kernels,
                    large_kernel=large_kernel,
                    dilation=dilation,
                    attention=attention,
                    ffn_expansion=ska_ffn_expansion,
                    num_heads=heads_for(channels, head_channels),
                )
                for _ in range(depth)
            ]
            self.stages.append(nn.Sequential(*blocks))
            previous = channels

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        # Channels-last from here on: 1x1 convolutions, the channel LayerNorm and MDTA's token-major views
        # all run faster on the CPU in this layout (docs/performance.md).
        feats = [self.shallow(self.input_proj(x).contiguous(memory_format=torch.channels_last))]
        for stage in self.stages:
            feats.append(stage(feats[-1]))
        return feats


def _check_positive(name: str, values: Sequence[int]) -> None:
    for v in values:
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise ValueError(f"HKAFusion: {name} must be positive integers, got {list(values)}.")


class HKAFusion(nn.Module):
    """HKAFusion (Zeng et al.): fuses a co-registered MRI with a CT, PET or SPECT image.

    Encoders (:class:`HKAEncoder`) extract F0..F4 from each modality, the feature fusion module
    (:class:`~hkafusion_monai.networks.fusion.FeatureFusionModule`, eq. 6) fuses them from H/32 up to G_5 at full
    resolution, and the fusion image generator turns ``Concat(G_5, F0^A, F0^B)`` into the fused image. Two
    reconstruction decoders of the generator's architecture rebuild each source from G_5 during training.

    Args:
        in_channels: 2, the only value accepted: the paper's network fuses two sources, channel 0 the MRI and
            channel 1 the CT/PET/SPECT (its Y channel for colour maps), each encoded on its own (Fig. 2).
        out_channels: 1, the only value accepted: the paper's network makes one fused image. Both arguments are
            kept, as in MONAI's networks, so that a bundle config states the channels it feeds and expects.
        shallow_channels: width C0 of the full-resolution features F0 (and of the generator).
        shallow_blocks: Restormer blocks in the shallow extraction (2 in the paper).
        stage_channels: widths of the SKA stages at H/4, H/8, H/16, H/32.
        stage_depths: SKA blocks per stage.
        half_channels: width of the fifth fusion step (H/2) and of G_5.
        head_channels: channels per attention head (heads = width // head_channels, at least 1).
        afblk_depth: Restormer blocks per AFBLK.
        restormer_ffn_expansion: GDFN hidden width factor of every Restormer block.
        ska_ffn_expansion: hidden width factor of the eq. 5 FFN.
        small_kernels: (k1, k2, k3) of eq. 1; odd.
        large_kernel: K of eq. 2-3; odd.
        dilation: d of eq. 2-3; ``floor(K/d)`` must be odd.
        attention: ``"ska"`` (paper), ``"none"`` (Table II "w/o attention") or ``"self"`` (Table II
            "self-attention mechanism").
        fusion: ``"afblk"`` (paper) or ``"concat"`` (Table II "direct concatenation").
        reconstruction: build the two reconstruction decoders (False: Table II "w/o reconstruction branch").
        shared_encoder: one encoder for both modalities (True) or one each (False).

    Shapes:
        input ``image``: ``(B, 2, H, W)`` in [0, 1], any H and W (padded by edge replication to a multiple of 32
        inside, and cropped back).
        eval mode: ``(B, 1, H, W)``, the fused image in [0, 1].
        training mode with ``reconstruction=True``: ``(B, 3, H, W)`` = [fused, reconstructed MRI,
        reconstructed other]; with ``reconstruction=False``: ``(B, 1, H, W)``. (Like MONAI's DynUNet, the
        training output differs from the eval output; one tensor keeps DDP, the engines and TorchScript simple.)
    """

    def __init__(
        self,
        in_channels: int = 2,
        out_channels: int = 1,
        shallow_channels: int = 8,
        shallow_blocks: int = 2,
        stage_channels: Sequence[int] = (32, 48, 64, 96),
        stage_depths: Sequence[int] = (1, 1, 2, 1),
        half_channels: int = 16,
        head_channels: int = 32,
        afblk_depth: int = 1,
        restormer_ffn_expansion: float = 2.0,
        ska_ffn_expansion: float = 1.0,
        small_kernels: Sequence[int] = (3, 5, 7),
        large_kernel: int = 11,
        dilation: int = 2,
        attention: str = "ska",
        fusion: str = "afblk",
        reconstruction: bool = True,
        shared_encoder: bool = True,
    ) -> None:
        super().__init__()
        if in_channels != 2:
            raise ValueError(
                "HKAFusion takes a 2-channel image (channel 0 MRI, channel 1 CT/PET/SPECT): in_channels must be 2, "
                f"got in_channels={in_channels}."
            )
        if out_channels != 1:
            raise ValueError(
                f"HKAFusion produces a 1-channel fused image: out_channels must be 1, got out_channels={out_channels}."
            )
        stage_channels, stage_depths, small_kernels = list(stage_channels), list(stage_depths), list(small_kernels)
        if len(stage_channels) != 4 or len(stage_depths) != 4:
            raise ValueError(
                "HKAFusion has four SKA stages (H/4 ... H/32): stage_channels and stage_depths need 4 entries, "
                f"got {stage_channels} and {stage_depths}."
            )
        _check_positive("stage_channels", stage_channels)
        _check_positive("stage_depths", stage_depths)
        _check_positive(
            "widths (shallow_channels, half_channels, head_channels)", [shallow_channels, half_channels, head_channels]
        )
        _check_positive("shallow_blocks and afblk_depth", [shallow_blocks, afblk_depth])
        _check_positive("kernel sizes and dilation", small_kernels + [large_kernel, dilation])
        if not small_kernels or any(k % 2 == 0 for k in small_kernels + [large_kernel]):
            raise ValueError(
                f"HKAFusion: kernel sizes must be odd, got small_kernels={small_kernels}, large_kernel={large_kernel}."
            )
        if (large_kernel // dilation) % 2 == 0:
            raise ValueError(
                f"HKAFusion: floor(large_kernel / dilation) = {large_kernel // dilation} must be odd "
                f"(large_kernel={large_kernel}, dilation={dilation}); e.g. K=11 or 7 with d=2, K=23 with d=3."
            )
        if attention not in ("ska", "none", "self"):
            raise ValueError(f"HKAFusion: attention must be 'ska', 'none' or 'self', got {attention!r}.")
        if fusion not in ("afblk", "concat"):
            raise ValueError(f"HKAFusion: fusion must be 'afblk' or 'concat', got {fusion!r}.")
        if restormer_ffn_expansion <= 0 or ska_ffn_expansion <= 0:
            raise ValueError("HKAFusion: FFN expansion factors must be positive.")

        self.in_channels = in_channels
        self.out_channels = out_channels
        # Four stride-2 levels below the stride-4 first stage: H and W are padded to a multiple of 4 * 2**3.
        self.multiple = 32
        self.reconstruction = reconstruction
        self.shared_encoder = shared_encoder
        self.encoders = nn.ModuleList(
            HKAEncoder(
                shallow_channels=shallow_channels,
                shallow_blocks=shallow_blocks,
                stage_channels=stage_channels,
                stage_depths=stage_depths,
                head_channels=head_channels,
                restormer_ffn_expansion=restormer_ffn_expansion,
                small_kernels=small_kernels,
                large_kernel=large_kernel,
                dilation=dilation,
                attention=attention,
                ska_ffn_expansion=ska_ffn_expansion,
            )
            for _ in range(1 if shared_encoder else 2)
        )
        self.fusion = FeatureFusionModule(
            stage_channels, half_channels, head_channels, afblk_depth, restormer_ffn_expansion, fusion
        )
        heads = heads_for(shallow_channels, head_channels)
        self.generator = FusionImageGenerator(
            half_channels + 2 * shallow_channels, shallow_channels, heads, restormer_ffn_expansion
        )
        # Reconstruction decoders (III-C): same architecture as the generator, fed with G_5 only.
        self.reconstructors = nn.ModuleList(
            FusionImageGenerator(half_channels, shallow_channels, heads, restormer_ffn_expansion)
            for _ in range(2 if reconstruction else 0)
        )

    def encode(self, a: torch.Tensor, b: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Features F0..F4 of each modality; a shared encoder runs both as one batch."""
        n = a.shape[0]
        feats_a: list[torch.Tensor] = []
        feats_b: list[torch.Tensor] = []
        for i, encoder in enumerate(self.encoders):
            if self.shared_encoder:
                for f in encoder(torch.cat([a, b], dim=0)):
                    feats_a.append(f[:n])
                    feats_b.append(f[n:])
            elif i == 0:
                feats_a = encoder(a)
            else:
                feats_b = encoder(b)
        return feats_a, feats_b

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.dim() != 4 or image.shape[1] != self.in_channels:
            raise ValueError(
                "HKAFusion expects image of shape (B, 2, H, W) (channel 0 MRI, channel 1 CT/PET/SPECT), got "
                + str(list(image.shape))
                + "."
            )
        h, w = image.shape[-2], image.shape[-1]
        pad_h, pad_w = (-h) % self.multiple, (-w) % self.multiple
        top, left = pad_h // 2, pad_w // 2
        x = image
        if pad_h > 0 or pad_w > 0:
            x = F.pad(image, [left, pad_w - left, top, pad_h - top], mode="replicate")

        feats_a, feats_b = self.encode(x[:, 0:1], x[:, 1:2])
        g5 = self.fusion(feats_a, feats_b)
        out: torch.Tensor = self.generator(torch.cat([g5, feats_a[0], feats_b[0]], dim=1))
        if self.training and self.reconstruction:
            out = torch.cat([out] + [decoder(g5) for decoder in self.reconstructors], dim=1)
        return out[:, :, top : top + h, left : left + w]
