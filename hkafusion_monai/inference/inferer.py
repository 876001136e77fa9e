"""The inferer of the bundle: 2-D pairs whole, volumes slice by slice, large planes in tiles."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch
from monai.inferers import Inferer, SliceInferer, SlidingWindowInferer
from tqdm import tqdm

from hkafusion_monai.inference.lesion_restoration import RestoreLesionContrast
from hkafusion_monai.utils import as_bool

__all__ = ["FusionInferer"]


class FusionInferer(Inferer):
    """Run the network on a 2-D batch ``(B, 2, H, W)`` at once, or on a volume batch ``(B, 2, H, W, D)``
    slice by slice along the last axis (axial slices of the ``PLS`` volume chain) with
    ``monai.inferers.SliceInferer``; returns ``(B, 1, H, W)`` or ``(B, 1, H, W, D)``.

    Planes larger than ``max_pixels`` are fused in overlapping tiles with MONAI's ``SlidingWindowInferer``
    (``tile_size``, 25 % overlap, Gaussian blending, one tile per call), so memory stays bounded whatever the
    image size (a 4096 x 4096 pair needed 13.7 GB whole; a 1024 x 1024 tile about 1.3 GB). The network's
    channel attention (MDTA) pools over the whole plane, so a tiled result differs slightly from a whole-plane
    one: docs/inference.md gives the measured difference.

    Args:
        sw_batch_size: slices (or tiles) per network call.
        progress: a labelled progress bar over a volume's slices (tqdm); ``None``: only on a terminal.
        max_pixels: the largest plane (H x W) fused whole.
        tile_size: the tile side for larger planes (a multiple of 32).
        restoration: run on each fused image or volume with its sources and modality (the inputs' metadata
            ``modality``, else ``modality``): :class:`~hkafusion_monai.inference.RestoreLesionContrast`, which
            raises hypointense-hot lesions the network let fade; ``None``: the network's output as it is.
        modality: the secondary's modality where the inputs carry none (plain tensors).
    """

    def __init__(
        self,
        sw_batch_size: int = 8,
        progress: bool | str | None = False,
        max_pixels: int = 1024 * 1024,
        tile_size: int = 1024,
        restoration: RestoreLesionContrast | None = None,
        modality: str | None = None,
    ) -> None:
        super().__init__()
        self.restoration = restoration
        self.modality = modality
        self.sw_batch_size = sw_batch_size
        self.progress = None if progress is None else as_bool(progress, "progress")
        self.max_pixels = int(max_pixels)
        self.tile_size = int(tile_size)

    def _plane(
        self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any, **kwargs: Any
    ) -> torch.Tensor:
        if inputs.shape[-2] * inputs.shape[-1] <= self.max_pixels:
            return network(inputs, *args, **kwargs)
        tiler = SlidingWindowInferer(
            roi_size=(self.tile_size, self.tile_size),
            sw_batch_size=1,  # one tile at a time: the memory bound
            overlap=0.25,
            mode="gaussian",
            progress=bool(self.progress),
        )
        # a network of one output tensor: the tiles stitch into one tensor (not MONAI's tuple or dict of them)
        return cast(torch.Tensor, tiler(inputs, network, *args, **kwargs))

    def __call__(self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any, **kwargs: Any):
        fused = self._fuse(inputs, network, *args, **kwargs)
        if self.restoration is None:
            return fused
        modalities = _modalities(inputs, self.modality)
        return torch.stack(
            [self.restoration(f, x, m) for f, x, m in zip(fused, torch.as_tensor(inputs), modalities, strict=True)]
        )

    def _fuse(self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any, **kwargs: Any):
        if inputs.ndim == 4:
            return self._plane(inputs, network, *args, **kwargs)
        if inputs.ndim != 5:
            raise ValueError(f"FusionInferer: expected (B, 2, H, W) or (B, 2, H, W, D), got {tuple(inputs.shape)}")
        slicer = SliceInferer(
            spatial_dim=2,
            roi_size=tuple(int(s) for s in inputs.shape[2:4]),
            sw_batch_size=self.sw_batch_size,
            progress=False,  # MONAI's bar counts unlabelled slice batches; this one counts labelled slices
            cache_roi_weight_map=False,
        )
        depth = int(inputs.shape[0] * inputs.shape[-1])
        disable = None if self.progress is None else not self.progress  # None: tqdm shows it on a terminal only
        with tqdm(total=depth, desc="fusing slices", unit="slice", leave=False, disable=disable) as bar:

            def fuse(x: torch.Tensor) -> torch.Tensor:
                out = self._plane(x, network, *args, **kwargs)
                bar.update(int(x.shape[0]))
                return out

            return slicer(inputs, fuse)


def _modalities(inputs: torch.Tensor, default: str | None) -> list[str | None]:
    """Each batch item's secondary modality: the collated metadata ``modality`` of a MetaTensor batch (a list,
    or one string for a batch of one), else ``default``."""
    meta = getattr(inputs, "meta", None) or {}
    found = meta.get("modality")
    if isinstance(found, str):
        found = [found]
    if isinstance(found, (list, tuple)) and len(found) == inputs.shape[0]:
        return [str(m) for m in found]
    return [default] * int(inputs.shape[0])
