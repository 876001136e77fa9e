"""Restore the contrast of a PET/SPECT hot spot that the network's fusion let fade over a darker MRI.

The finding PET and SPECT are acquired for is often a lesion that is dark on the MRI and hot on the PET/SPECT.
A fusion trained for edge transfer (Qabf) shows the MRI's sharp dark edge there and lets the blurred hot spot
fade, or even turn dark; a fusion trained to keep such hot spots everywhere pays for it in edge transfer on
every image (docs/results.md). This step keeps both: it leaves the network's image alone except where a hot
spot of the PET/SPECT is *detected* (:func:`~hkafusion_monai.metrics.hot_spots.find_hot_spots`, the hot-spot
guard's finder), the MRI is darker there than around it (the lesion case), and the fusion kept less than
``target`` of the hot spot's contrast. There each pixel of the PET/SPECT's blob keeps at least the PET/SPECT's
own excess over its surround, times ``target``, placed on the fused surround's level, so the fused
core-minus-surround contrast reaches ``target`` of the PET/SPECT's. It is *bounded*: no pixel is raised above
that level (never brighter than the PET/SPECT's own hot spot shown on the fused surround), brighter pixels keep
their value, nothing changes outside the blob, and the result stays in [0, 1].

No library has it: it is this project's answer to the trade-off between Qabf and lesion contrast measured in
docs/results.md ("The (Qabf, lesion) frontier").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from hkafusion_monai.metrics.hot_spots import (
    HOT_SPOT_MIN_CONTRAST,
    HOT_SPOT_RADII,
    FoundHotSpot,
    as_planes,
    find_hot_spots,
    hot_spot_contrast,
)

__all__ = ["RestoreLesionContrast", "RestoredHotSpot"]


class RestoredHotSpot(NamedTuple):
    """One hot spot the restoration raised: its peak ``(row, column)`` or ``(row, column, slice)``, core
    ``radius`` in pixels, the PET/SPECT's ``contrast`` (0-255 scale), and the fraction of it the fusion kept
    ``before`` and ``after`` the restoration."""

    position: tuple[int, ...]
    radius: float
    contrast: float
    before: float
    after: float


class RestoreLesionContrast:
    """Raise hypointense-hot lesions the fusion let fade back to ``target`` of their PET/SPECT contrast.

    ``restore(fused, image, modality)`` takes the network's fused luminance ``(1, H, W)`` or ``(1, H, W, D)`` and the
    sources ``(2, H, W[, D])`` (channel 0 the MRI, channel 1 the PET/SPECT luminance), both in [0, 1], and
    returns the fused luminance with the same shape and dtype; volumes are searched and restored slice by slice,
    as the network fuses them. :attr:`last` holds the hot spots restored by the last call.

    Args:
        target: the fraction of the PET/SPECT's core-minus-surround contrast a detected lesion is raised to.
        footprint: the blob restored: where the PET/SPECT stands above its surround by more than this fraction of
            its contrast (inside the surround's inner edge); MRI detail beyond it stays as the network fused it.
        darker_mri: restore only where the MRI's core is darker than its surround (the lesion case, where the
            fusion shows the MRI's dark spot); ``False`` restores every detected hot spot that faded.
        min_contrast: the smallest PET/SPECT contrast of a hot spot, 0-255 scale.
        min_isolation: how far a hot spot's core must stand above the 90th percentile of its surround, 0-255
            scale (:func:`~hkafusion_monai.metrics.hot_spots.find_hot_spots`).
        radii: the core radii searched, in pixels (as the guard's).
        surround: the ring its contrast is measured against, in multiples of the detected core radius ``r``: the
            painted lesions' and the phantom's own convention (core ``0.7 R``, surround ``2 R .. 3 R`` of a lesion
            of radius ``R``) is about ``3 r .. 4.5 r``; the finder's nearer ring (``2 r .. 3 r``) still lies on
            the blurred edge of a PET/SPECT hot spot and would understate its contrast.
        modalities: the secondaries it acts on (DICOM Modality names); a CT's bone is bright over the MRI's dark
            skull, and is no lesion.
        enabled: ``False`` returns the fusion unchanged (a config switch).
    """

    def __init__(
        self,
        target: float = 0.9,
        footprint: float = 0.25,
        darker_mri: bool = True,
        min_contrast: float = HOT_SPOT_MIN_CONTRAST,
        min_isolation: float = 10.0,
        radii: Sequence[float] = HOT_SPOT_RADII,
        surround: Sequence[float] = (3.0, 4.5),
        modalities: Sequence[str] = ("PET", "SPECT"),
        enabled: bool = True,
    ) -> None:
        if not 0.0 < target <= 1.0:
            raise ValueError(f"RestoreLesionContrast: target must be in (0, 1], got {target}")
        if not 0.0 <= footprint < 1.0:
            raise ValueError(f"RestoreLesionContrast: footprint must be in [0, 1), got {footprint}")
        self.target = float(target)
        self.footprint = float(footprint)
        self.darker_mri = bool(darker_mri)
        self.min_contrast = float(min_contrast)
        self.min_isolation = float(min_isolation)
        self.radii = tuple(float(r) for r in radii)
        inner, outer = (float(v) for v in surround)
        if not 1.0 < inner < outer:
            raise ValueError(
                f"RestoreLesionContrast: surround must be (inner, outer) with 1 < inner < outer, got {surround}"
            )
        self.surround = (inner, outer)
        self.modalities = tuple(str(m) for m in modalities)
        self.enabled = bool(enabled)
        self.max_spots = 64
        self.last: list[RestoredHotSpot] = []

    def __call__(self, fused: torch.Tensor, image: torch.Tensor, modality: str | None) -> torch.Tensor:
        """Restore one fusion; ``modality`` is the secondary's (``"CT"``, ``"PET"``, ``"SPECT"``); any other,
        or ``None``, returns ``fused`` unchanged."""
        self.last = []
        if not self.enabled or modality not in self.modalities:
            return fused
        if fused.ndim not in (3, 4) or fused.shape[0] != 1 or image.shape[0] != 2 or image.shape[1:] != fused.shape[1:]:
            raise ValueError(
                f"RestoreLesionContrast: fused (1, H, W[, D]) and image (2, H, W[, D]) expected, got "
                f"{tuple(fused.shape)} and {tuple(image.shape)}"
            )
        volume = fused.ndim == 4
        f_planes = as_planes(fused[0].detach().cpu(), 1.0)
        s_planes, m_planes = as_planes(image[1].detach().cpu(), 1.0), as_planes(image[0].detach().cpu(), 1.0)
        # each slice on its own, as the network fused it: a lesion spans several slices of a volume
        for z in range(s_planes.shape[0]):
            spots = find_hot_spots(
                s_planes[z], self.min_contrast, self.radii, min_isolation=self.min_isolation, max_spots=self.max_spots
            )
            for spot in spots:
                self._restore(spot._replace(plane=z), f_planes, s_planes, m_planes, volume)
        if not self.last:
            return fused
        out = (f_planes / 255.0).clamp(0.0, 1.0)
        out = out.movedim(0, -1) if volume else out[0]
        return out[None].to(dtype=fused.dtype, device=fused.device)

    def _restore(
        self, spot: FoundHotSpot, f_planes: torch.Tensor, s_planes: torch.Tensor, m_planes: torch.Tensor, volume: bool
    ) -> None:
        """Raise one hot spot in ``f_planes`` (0-255, in place) when the rule says so; record it in :attr:`last`."""
        inner, outer = self.surround
        half = int(np.floor(outer * spot.radius))
        height, width = f_planes.shape[-2:]
        rows = slice(max(spot.row - half, 0), min(spot.row + half + 1, height))
        cols = slice(max(spot.column - half, 0), min(spot.column + half + 1, width))
        d = torch.hypot(
            torch.arange(rows.start, rows.stop, dtype=torch.float64)[:, None] - spot.row,
            torch.arange(cols.start, cols.stop, dtype=torch.float64)[None, :] - spot.column,
        )
        core, ring = d <= spot.radius, (d >= inner * spot.radius) & (d <= outer * spot.radius)
        if int(ring.sum()) < 8:
            return
        window = (spot.plane, rows, cols)
        src, fus = s_planes[window], f_planes[window]
        contrast = float(hot_spot_contrast(src, core, ring))
        if contrast <= 0:
            return
        kept = float(hot_spot_contrast(fus, core, ring)) / contrast
        if kept >= self.target:
            return
        if self.darker_mri and float(hot_spot_contrast(m_planes[window], core, ring)) >= 0:
            return
        # the PET/SPECT's own hot spot, its excess over its surround times ``target``, placed on the fused
        # surround's level: each pixel of the blob keeps at least that, and brighter pixels keep their own value
        excess = src - src[ring].mean()
        blob = (excess > self.footprint * contrast) & (d < inner * spot.radius)
        floor = fus[ring].mean() + self.target * excess
        raised = torch.where(blob, torch.maximum(fus, floor), fus).clamp(0.0, 255.0)
        f_planes[window] = raised
        after = float(hot_spot_contrast(raised, core, ring)) / contrast
        position = (spot.row, spot.column, spot.plane) if volume else (spot.row, spot.column)
        self.last.append(RestoredHotSpot(position, spot.radius, contrast, kept, after))

    def __repr__(self) -> str:
        return (
            f"RestoreLesionContrast(target={self.target}, footprint={self.footprint}, darker_mri={self.darker_mri}, "
            f"enabled={self.enabled})"
        )
