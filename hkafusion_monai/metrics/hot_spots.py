"""Finding the hot spots of a PET/SPECT image: local maxima of the core-minus-surround contrast, at several
scales, that stand out of their surround.

Two users share it: the hot-spot guard (:func:`hkafusion_monai.metrics.checks.hot_spot_guard`, which measures
how much of each hot spot's contrast a fusion keeps) and the lesion-contrast restoration after the network
(:class:`hkafusion_monai.inference.RestoreLesionContrast`). It is written here rather than taken from a library:
scikit-image's blob detectors (LoG, DoG) find bright blobs by scale-space extrema but do not measure a
core-minus-ring contrast, nor reject ridges (the cortex of an FDG PET) or the edge of the head against the
air, which are what a reader's "hot spot" needs; and the project keeps no scikit-image.

The core of a hot spot of radius ``r`` is the disc ``d <= r`` and its surround the ring ``2 r <= d <= 3 r``, as
:func:`~hkafusion_monai.transforms.paint_hot_spot` paints them. Planes are searched in tiles, each read from the
source with a halo (the Gaussian's tail, the widest ring, the peaks' neighbours) and smoothed, searched and
reduced to its peaks on its own, and hot spots are measured on their own windows, so memory stays bounded by
the tile whatever the image size (a 4096 x 4096 plane searched whole needed some 3 GB of FFT buffers; with
whole-plane smoothed and float64 copies, 1.4 GB).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from monai.networks.layers import GaussianFilter
from monai.networks.layers.convutils import gaussian_1d

__all__ = [
    "HOT_SPOT_MIN_CONTRAST",
    "HOT_SPOT_RADII",
    "FoundHotSpot",
    "as_planes",
    "disc_masks",
    "find_hot_spots",
    "hot_spot_contrast",
    "hot_spot_patch",
    "hot_spot_window",
]

#: "well above its surround": core minus surround, on the 0-255 grey scale
HOT_SPOT_MIN_CONTRAST = 40.0
#: core radii in pixels; the surround of core radius r is the ring 2 r .. 3 r
HOT_SPOT_RADII: tuple[float, ...] = (1.5, 2.0, 3.0, 5.0, 8.0)
#: the side of the tiles a plane is searched in (plus the halo of the widest ring on each side)
_TILE = 512


class FoundHotSpot(NamedTuple):
    """One hot spot of :func:`find_hot_spots`: ``plane`` (the slice index; 0 for an image), ``row``,
    ``column`` of the peak; ``radius``, its core radius in pixels; ``contrast``, the source's core-minus-surround
    contrast on the 0-255 scale (unsmoothed)."""

    plane: int
    row: int
    column: int
    radius: float
    contrast: float


def _as_float(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.array(x))
    return t.to(torch.float64)


def hot_spot_contrast(
    image: torch.Tensor | np.ndarray, core: torch.Tensor | np.ndarray, surround: torch.Tensor | np.ndarray
) -> torch.Tensor:
    """Core-minus-surround contrast, ``mean(image[core]) - mean(image[surround])``, of ``(..., H, W)`` images
    with boolean masks of the same shape (or broadcastable to it)."""
    x = _as_float(image)
    c = torch.as_tensor(np.asarray(core) if not isinstance(core, torch.Tensor) else core).to(torch.float64)
    s = torch.as_tensor(np.asarray(surround) if not isinstance(surround, torch.Tensor) else surround).to(torch.float64)
    c, s = torch.broadcast_to(c, x.shape), torch.broadcast_to(s, x.shape)
    if bool((c.sum(dim=(-2, -1)) == 0).any()) or bool((s.sum(dim=(-2, -1)) == 0).any()):
        raise ValueError("hot_spot_contrast: an empty core or surround mask.")
    mean_core = (x * c).sum(dim=(-2, -1)) / c.sum(dim=(-2, -1))
    mean_surround = (x * s).sum(dim=(-2, -1)) / s.sum(dim=(-2, -1))
    return mean_core - mean_surround


def as_planes(x: torch.Tensor | np.ndarray, max_value: float) -> torch.Tensor:
    """An image ``(H, W)`` or a volume ``(H, W, D)`` (slices on the last axis) as float64 planes ``(D, H, W)`` on
    the 0-255 scale (``max_value``: the input's scale, 255 or 1)."""
    t = _as_float(x) * (255.0 / float(max_value))
    if t.ndim == 2:
        return t[None]
    if t.ndim == 3:
        return t.movedim(-1, 0)
    raise ValueError(f"expected an image (H, W) or a volume (H, W, D), got {tuple(t.shape)}")


def disc_masks(radius: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The core disc ``d <= r`` and surround ring ``2 r <= d <= 3 r`` as boolean ``(K, K)`` masks, ``K = 2
    floor(3 r) + 1``, centred."""
    half = int(np.floor(3 * radius))
    offsets = torch.arange(-half, half + 1, dtype=torch.float64)
    d = torch.hypot(offsets[:, None], offsets[None, :])
    return d <= radius, (d >= 2 * radius) & (d <= 3 * radius)


def hot_spot_window(spot: FoundHotSpot) -> tuple[int, slice, slice]:
    """The index of the ``(K, K)`` window of :func:`disc_masks` around ``spot`` in ``(D, H, W)`` planes."""
    half = int(np.floor(3 * spot.radius))
    return spot.plane, slice(spot.row - half, spot.row + half + 1), slice(spot.column - half, spot.column + half + 1)


def _disc_kernels(radius: float) -> tuple[torch.Tensor, torch.Tensor]:
    core, ring = (mask.double() for mask in disc_masks(radius))
    return core / core.sum(), ring / ring.sum()


def _fft_means(planes: torch.Tensor, kernels: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Each kernel's local mean over ``planes`` ``(D, H, W)``, zero outside: one FFT of the planes for all
    kernels (the surround rings reach 49 x 49 pixels, too wide for direct convolution)."""
    pad = max(k.shape[-1] for k in kernels) // 2
    size = (planes.shape[-2] + 2 * pad, planes.shape[-1] + 2 * pad)
    spectrum = torch.fft.rfft2(F.pad(planes, (pad, pad, pad, pad)), s=size)
    out = []
    for k in kernels:
        h = k.shape[-1] // 2
        centred = torch.zeros(size, dtype=planes.dtype)
        centred[: 2 * h + 1, : 2 * h + 1] = k.flip(-2, -1)
        centred = torch.roll(centred, shifts=(-h, -h), dims=(0, 1))  # the kernel's centre on index (0, 0)
        full = torch.fft.irfft2(spectrum * torch.fft.rfft2(centred), s=size)
        out.append(full[..., pad : pad + planes.shape[-2], pad : pad + planes.shape[-1]])
    return out


def _best_contrast_tile(
    smooth: torch.Tensor,
    inside: torch.Tensor,
    origin: tuple[int, int],
    full: tuple[int, int],
    radii: Sequence[float],
    min_inside: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """At each pixel of one tile (with its halo) of the smoothed planes, whose top-left pixel is ``origin`` in a
    plane of size ``full``: the largest core-minus-surround contrast over ``radii`` and the radius that gives it
    (``-inf`` where no window fits in the whole plane, not the tile, or less than ``min_inside`` of the surround
    lies inside the head), float64."""
    depth, height, width = smooth.shape
    best = torch.full_like(smooth, -torch.inf)
    best_radius = torch.zeros_like(smooth)
    rows = torch.arange(height)[:, None] + origin[0]
    cols = torch.arange(width)[None, :] + origin[1]
    for radius in radii:
        core_k, ring_k = _disc_kernels(float(radius))
        margin = core_k.shape[-1] // 2
        fits = (rows >= margin) & (rows < full[0] - margin) & (cols >= margin) & (cols < full[1] - margin)
        if not bool(fits.any()):
            continue
        core_mean, ring_mean, ring_inside = _fft_means(torch.cat([smooth, inside]), [core_k, ring_k, ring_k])
        contrast = core_mean[:depth] - ring_mean[:depth]
        contrast = torch.where(fits & (ring_inside[depth:] >= min_inside), contrast, -torch.inf)
        better = contrast > best
        best = torch.where(better, contrast, best)
        best_radius = torch.where(better, float(radius), best_radius)
    return best, best_radius


def _candidates(
    source: torch.Tensor | np.ndarray,
    max_value: float,
    radii: Sequence[float],
    background: float,
    min_inside: float,
    min_contrast: float,
) -> list[tuple[float, int, int, int, float]]:
    """The candidates ``(contrast, plane, row, column, radius)``, strongest first: local maxima, over 3 x 3 (x 3
    planes in a volume) neighbours, of the best core-minus-surround contrast over ``radii`` (float32) of the
    source smoothed by a Gaussian of one pixel, at least ``min_contrast``.

    The planes are searched in tiles of :data:`_TILE`, each read from the source with a halo wide enough for
    the Gaussian, the widest window and the neighbours of its edge pixels, so that a tile's figures are the
    whole plane's and memory is bounded by the tile, whatever the image size: no whole-plane copy is made."""
    shape = tuple(source.shape)
    volume = len(shape) == 3
    height, width = shape[:2]
    gaussian = GaussianFilter(spatial_dims=2, sigma=1.0)
    smooth_halo = gaussian_1d(torch.tensor(1.0), truncated=gaussian.truncated).numel() // 2  # its tail: 4 pixels
    window_halo = max(int(np.floor(3 * float(r))) for r in radii)
    found: list[tuple[float, int, int, int, float]] = []
    for top in range(0, height, _TILE):
        for left in range(0, width, _TILE):
            bottom, right = min(top + _TILE, height), min(left + _TILE, width)
            # the contrast is needed on the tile and its neighbours (1), from the smoothed source around them
            # (the widest window), from the source around that (the Gaussian's tail)
            b0, b1 = max(top - 1, 0), min(bottom + 1, height)
            c0, c1 = max(left - 1, 0), min(right + 1, width)
            s0, s1 = max(b0 - window_halo, 0), min(b1 + window_halo, height)
            t0, t1 = max(s0 - smooth_halo, 0), min(s1 + smooth_halo, height)
            u0, u1 = max(c0 - window_halo, 0), min(c1 + window_halo, width)
            v0, v1 = max(u0 - smooth_halo, 0), min(u1 + smooth_halo, width)
            planes = as_planes(source[t0:t1, v0:v1], max_value)  # (D, h, w) float64, this tile only
            smooth = gaussian(planes[:, None].float())[:, 0][:, s0 - t0 : s1 - t0, u0 - v0 : u1 - v0]
            inside = smooth > background * 255.0
            best, best_radius = _best_contrast_tile(
                smooth.double(), inside.double(), (s0, u0), (height, width), radii, min_inside
            )
            best = best[:, b0 - s0 : b1 - s0, c0 - u0 : c1 - u0].float()
            best_radius = best_radius[:, b0 - s0 : b1 - s0, c0 - u0 : c1 - u0].float()
            pool = (
                F.max_pool3d(best[None, None], 3, stride=1, padding=1)[0, 0]
                if volume
                else F.max_pool2d(best[:, None], 3, stride=1, padding=1)[:, 0]
            )
            inner = (slice(None), slice(top - b0, bottom - b0), slice(left - c0, right - c0))
            best, pool, best_radius = best[inner], pool[inner], best_radius[inner]
            for z, y, x in torch.nonzero((best >= min_contrast) & (best >= pool)).tolist():
                found.append((float(best[z, y, x]), z, y + top, x + left, float(best_radius[z, y, x])))
    found.sort(key=lambda c: -c[0])
    return found


def hot_spot_patch(x: torch.Tensor | np.ndarray, spot: FoundHotSpot, max_value: float) -> torch.Tensor:
    """The ``(K, K)`` window of :func:`hot_spot_window` around ``spot`` in an image ``(H, W)`` or a volume
    ``(H, W, D)``, float64 on the 0-255 scale (``max_value``: the input's scale): only the window is copied."""
    plane, rows, columns = hot_spot_window(spot)
    window = x[rows, columns, plane] if x.ndim == 3 else x[rows, columns]
    t = window if isinstance(window, torch.Tensor) else torch.from_numpy(np.array(window))
    return t.to(torch.float64) * (255.0 / float(max_value))


def find_hot_spots(
    source: torch.Tensor | np.ndarray,
    min_contrast: float = HOT_SPOT_MIN_CONTRAST,
    radii: Sequence[float] = HOT_SPOT_RADII,
    max_value: float = 255.0,
    min_isolation: float = 10.0,
    isolation_quantile: float = 0.9,
    background: float = 0.05,
    min_inside: float = 0.9,
    max_spots: int = 64,
) -> list[FoundHotSpot]:
    """The hot spots of a PET/SPECT image or volume, strongest first.

    A hot spot is a local maximum of the source's core-minus-surround contrast, at the radius of ``radii`` that
    gives it the largest contrast, which is well above its surround:

    - the contrast is at least ``min_contrast``;
    - the core's mean exceeds the ``isolation_quantile`` of its surround by at least ``min_isolation`` (a
      ridge, such as the cortex of an FDG PET, crosses its own surround: no spot);
    - the whole window lies inside the image, and at least ``min_inside`` of the surround inside the head (the
      source above ``background``): the edge of the head against the air is no hot spot.

    Detection runs on the source smoothed by a Gaussian of one pixel; a peak whose core overlaps a stronger
    hot spot's (and, in a volume, lies within that one's radius in slices) is the same hot spot. The
    contrast reported is the unsmoothed source's, in the peak's own slice (volumes are searched in 3-D and
    measured slice by slice, as the network fuses them).

    Args:
        source: the PET/SPECT luminance, ``(H, W)`` or a volume ``(H, W, D)`` (slices on the last axis).
        min_contrast: the smallest contrast of a hot spot, on the 0-255 scale.
        radii: core radii to try, in pixels.
        max_value: the input's scale: 255 for grey levels, 1 for [0, 1].
        min_isolation: how far the core's mean must exceed the surround's ``isolation_quantile``, 0-255 scale.
        isolation_quantile: see ``min_isolation``.
        background: the fraction of 255 at or below which the smoothed source is outside the head.
        min_inside: the fraction of a surround that must lie inside the head.
        max_spots: the most hot spots returned (the strongest first).
    """
    if source.ndim not in (2, 3):
        raise ValueError(f"expected an image (H, W) or a volume (H, W, D), got {tuple(source.shape)}")
    spots: list[FoundHotSpot] = []
    for _, z, y, x, r in _candidates(source, max_value, radii, background, min_inside, min_contrast):
        if any(  # its core overlaps a stronger hot spot's: the same one
            (y - s.row) ** 2 + (x - s.column) ** 2 <= (r + s.radius) ** 2 and abs(z - s.plane) <= max(s.radius, 1.0)
            for s in spots
        ):
            continue
        candidate = FoundHotSpot(z, y, x, r, 0.0)
        core, ring = disc_masks(r)
        src = hot_spot_patch(source, candidate, max_value)
        contrast = float(hot_spot_contrast(src, core, ring))
        if contrast <= 0 or float(src[core].mean() - torch.quantile(src[ring], isolation_quantile)) < min_isolation:
            continue
        spots.append(candidate._replace(contrast=contrast))
        if len(spots) >= max_spots:
            break
    return spots
