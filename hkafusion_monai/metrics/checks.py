"""Two fusion checks a reader makes at a glance, beside the paper's eight metrics: is the CT's bone as bright in
the fused image as in the CT, and does a hot spot of the PET/SPECT keep its contrast? And the hot-spot guard
that inference and Deploy run on every PET/SPECT fusion, where no hot spot is known beforehand.

Both checks are ratios on the 0-255 grey scale (luminance for colour sources), 1.0 = fully kept:

- :func:`bone_brightness_kept`: mean fused luminance over the bone pixels (CT > 200) divided by the CT's mean
  there. The pixel-max rule keeps 1.0 by construction; a fusion that averages bone with the dark MRI skull
  falls towards 0.5.
- :func:`hot_spot_contrast_kept`: the fused image's core-minus-surround contrast of a hot spot divided by the
  source's. The hot spots are the phantom's known lesions, or bright blobs painted into real PET/SPECT images
  (:func:`hkafusion_monai.transforms.paint_hot_spot`).

- :func:`hot_spot_guard`: finds the secondary's own hot spots (local maxima well above their surround, at
  several scales) and measures each one's contrast kept with :func:`hot_spot_contrast_kept`; one keeping
  less than :data:`HOT_SPOT_MIN_KEPT` is *lost* (docs/failure_behaviour.md).

They are written here rather than taken from a library: no kept metric library has them (they are this
project's acceptance checks, docs/metrics.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from monai.metrics.regression import RegressionMetric
from monai.networks.layers import GaussianFilter
from monai.utils import MetricReduction

from hkafusion_monai.metrics.functional import check_fusion_inputs
from hkafusion_monai.utils.quantisation import quantise

__all__ = [
    "BONE_THRESHOLD",
    "CHECK_NAMES",
    "HOT_SPOT_MIN_CONTRAST",
    "HOT_SPOT_MIN_KEPT",
    "HOT_SPOT_RADII",
    "BoneBrightnessMetric",
    "GuardedHotSpot",
    "bone_brightness_kept",
    "hot_spot_contrast",
    "hot_spot_contrast_kept",
    "hot_spot_guard",
]

#: CT grey level (0-255, brain window) above which a pixel counts as bone
BONE_THRESHOLD = 200.0
#: the checks' names as reports and MLflow show them, beside :data:`~hkafusion_monai.metrics.METRIC_NAMES`
CHECK_NAMES: tuple[str, ...] = ("Lesion", "Bone")
#: the hot-spot guard's default: a hot spot keeping less than this fraction of its contrast is lost
HOT_SPOT_MIN_KEPT = 0.5
#: the guard's default for "well above its surround": core minus surround, on the 0-255 grey scale
HOT_SPOT_MIN_CONTRAST = 40.0
#: the guard's core radii in pixels; the surround of core radius r is the ring 2 r .. 3 r
HOT_SPOT_RADII: tuple[float, ...] = (1.5, 2.0, 3.0, 5.0, 8.0)


def _as_float(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.array(x))
    return t.to(torch.float64)


def bone_brightness_kept(
    fused: torch.Tensor | np.ndarray, ct: torch.Tensor | np.ndarray, threshold: float = BONE_THRESHOLD
) -> torch.Tensor:
    """Mean fused grey level over the CT's bone pixels (``ct > threshold``) divided by the CT's mean there.

    Args:
        fused: fused grey levels 0..255, ``(..., H, W)``.
        ct: the CT grey levels 0..255, same shape.
        threshold: the bone level.

    Returns:
        float64 ratio per leading index (``(...)``); NaN where an image has no bone pixel.
    """
    f, c = _as_float(fused), _as_float(ct)
    if f.shape != c.shape or f.ndim < 2:
        raise ValueError(
            f"bone_brightness_kept: fused {tuple(f.shape)} and ct {tuple(c.shape)} must be equal (..., H, W)."
        )
    bone = (c > threshold).to(torch.float64)
    n = bone.sum(dim=(-2, -1))
    kept = (f * bone).sum(dim=(-2, -1)) / (c * bone).sum(dim=(-2, -1)).clamp_min(1e-12)
    return torch.where(n > 0, kept, torch.full_like(kept, float("nan")))


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


def hot_spot_contrast_kept(
    fused: torch.Tensor | np.ndarray,
    source: torch.Tensor | np.ndarray,
    core: torch.Tensor | np.ndarray,
    surround: torch.Tensor | np.ndarray,
) -> torch.Tensor:
    """The fused image's hot-spot contrast divided by the source's (:func:`hot_spot_contrast`), on luminance.

    Args:
        fused: fused grey levels, ``(..., H, W)``.
        source: the PET/SPECT luminance holding the hot spot, same shape and scale.
        core, surround: boolean masks of the hot spot's core and of the ring around it.

    Raises:
        ValueError: when the source has no positive contrast there (not a hot spot).
    """
    reference = hot_spot_contrast(source, core, surround)
    if bool((reference <= 0).any()):
        raise ValueError(f"hot_spot_contrast_kept: the source's contrast is not positive ({reference.tolist()}).")
    return hot_spot_contrast(fused, core, surround) / reference


class GuardedHotSpot(NamedTuple):
    """One hot spot found by :func:`hot_spot_guard`.

    ``position``: the peak's index along the input's axes, ``(row, column)`` or ``(row, column, slice)``;
    ``radius``: its core radius in pixels (the surround is the ring ``2 r .. 3 r`` in its slice);
    ``contrast``: the source's core-minus-surround contrast on the 0-255 scale; ``kept``: the fused image's
    contrast over the source's (:func:`hot_spot_contrast_kept`); ``lost``: ``kept < min_kept``.
    """

    position: tuple[int, ...]
    radius: float
    contrast: float
    kept: float
    lost: bool


def _disc_masks(radius: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The core disc ``d <= r`` and surround ring ``2 r <= d <= 3 r`` as boolean ``(K, K)`` masks, ``K = 2 floor(3 r)
    + 1``, centred."""
    half = int(np.floor(3 * radius))
    offsets = torch.arange(-half, half + 1, dtype=torch.float64)
    d = torch.hypot(offsets[:, None], offsets[None, :])
    return d <= radius, (d >= 2 * radius) & (d <= 3 * radius)


def _disc_kernels(radius: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The normalised core disc and surround ring of :func:`_disc_masks`, ``(K, K)`` float64."""
    core, ring = (mask.double() for mask in _disc_masks(radius))
    return core / core.sum(), ring / ring.sum()


def _fft_means(planes: torch.Tensor, kernels: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Each kernel's local mean over ``planes`` ``(D, H, W)``, zero outside: one FFT of the planes for all
    kernels (the surround rings reach 49 x 49 pixels, too wide for direct convolution of volumes)."""
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


def hot_spot_guard(
    fused: torch.Tensor | np.ndarray,
    source: torch.Tensor | np.ndarray,
    min_kept: float = HOT_SPOT_MIN_KEPT,
    min_contrast: float = HOT_SPOT_MIN_CONTRAST,
    radii: Sequence[float] = HOT_SPOT_RADII,
    max_value: float = 255.0,
    min_isolation: float = 10.0,
    isolation_quantile: float = 0.9,
    background: float = 0.05,
    min_inside: float = 0.9,
    max_spots: int = 64,
) -> list[GuardedHotSpot]:
    """Find the hot spots of a PET/SPECT image and measure the contrast each one keeps in a fusion.

    A hot spot is a local maximum of the source's core-minus-surround contrast (core: the disc ``d <= r``;
    surround: the ring ``2 r <= d <= 3 r``, as :func:`~hkafusion_monai.transforms.paint_hot_spot` paints them),
    at the radius ``r`` of ``radii`` that gives it the largest contrast, which is well above its surround:

    - the contrast is at least ``min_contrast``;
    - the core's mean exceeds the ``isolation_quantile`` of its surround by at least ``min_isolation`` (a
      ridge, such as the cortex of an FDG PET, crosses its own surround: no spot);
    - the surround lies inside the image, and at least ``min_inside`` of it inside the head (the source
      above ``background``): the edge of the head against the air is no hot spot.

    Detection runs on the source smoothed by a Gaussian of one pixel; a peak whose core overlaps a stronger
    hot spot's (and, in a volume, lies within that one's radius in slices) is the same hot spot. Each hot
    spot's contrast kept is :func:`hot_spot_contrast_kept` of the unsmoothed images over its own core and
    surround, in its slice: volumes are searched in 3-D and measured slice by slice, as the network fuses them.

    Args:
        fused: the fused luminance, ``(H, W)`` or a volume ``(H, W, D)`` (slices on the last axis).
        source: the PET/SPECT luminance on the same grid and scale (0..``max_value``).
        min_kept: the fraction of its contrast a hot spot must keep not to be lost.
        min_contrast: the smallest contrast of a hot spot, on the 0-255 scale.
        radii: core radii to try, in pixels.
        max_value: the inputs' scale: 255 for grey levels, 1 for [0, 1].
        min_isolation: how far the core's mean must exceed the surround's ``isolation_quantile``, on the
            0-255 scale.
        isolation_quantile: see ``min_isolation``.
        background: the fraction of ``max_value`` at or below which the smoothed source is outside the head.
        min_inside: the fraction of a surround that must lie inside the head.
        max_spots: the most hot spots measured (the strongest first).

    Returns:
        :class:`GuardedHotSpot` s, the strongest (smoothed) contrast first; empty when the source has none.

    Raises:
        ValueError: shapes that differ, or that are neither ``(H, W)`` nor ``(H, W, D)``.
    """
    f_planes, s_planes, volume = _guard_planes(fused, source, max_value)
    best, best_radius = _best_contrast(s_planes, radii, background, min_inside)
    peaks = _peaks(best, best_radius, volume, min_contrast)
    return _measured_spots(peaks, f_planes, s_planes, volume, min_kept, min_isolation, isolation_quantile, max_spots)


def _guard_planes(
    fused: torch.Tensor | np.ndarray, source: torch.Tensor | np.ndarray, max_value: float
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """:func:`hot_spot_guard`'s inputs on the 0-255 scale as planes ``(D, H, W)`` (one plane for an image), and
    whether they are a volume."""
    f, s = _as_float(fused), _as_float(source)
    if f.shape != s.shape or f.ndim not in (2, 3):
        raise ValueError(
            f"hot_spot_guard: fused {tuple(f.shape)} and source {tuple(s.shape)} must be equal (H, W[, D])."
        )
    volume = f.ndim == 3
    scale = 255.0 / float(max_value)
    f_planes, s_planes = (x.movedim(-1, 0) if volume else x[None] for x in (f * scale, s * scale))  # (D, H, W)
    return f_planes, s_planes, volume


def _best_contrast(
    s_planes: torch.Tensor, radii: Sequence[float], background: float, min_inside: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """At each pixel of the source planes smoothed by a Gaussian of one pixel, the largest core-minus-surround
    contrast over ``radii`` and the radius that gives it: ``-inf`` where no core fits in the plane or less than
    ``min_inside`` of the surround lies inside the head (the smoothed source above ``background`` of 255)."""
    depth, height, width = s_planes.shape
    smooth = GaussianFilter(spatial_dims=2, sigma=1.0)(s_planes[:, None].float())[:, 0].double()
    inside = (smooth > background * 255.0).double()
    best = torch.full_like(smooth, -torch.inf)
    best_radius = torch.zeros_like(smooth)
    rows, cols = torch.arange(height)[:, None], torch.arange(width)[None, :]
    for radius in radii:
        core_k, ring_k = _disc_kernels(float(radius))
        margin = core_k.shape[-1] // 2
        fits = (rows >= margin) & (rows < height - margin) & (cols >= margin) & (cols < width - margin)
        if not bool(fits.any()):
            continue
        core_mean, ring_mean, ring_inside = _fft_means(torch.cat([smooth, inside]), [core_k, ring_k, ring_k])
        contrast = core_mean[:depth] - ring_mean[:depth]
        contrast = torch.where(fits & (ring_inside[depth:] >= min_inside), contrast, -torch.inf)
        better = contrast > best
        best = torch.where(better, contrast, best)
        best_radius = torch.where(better, float(radius), best_radius)
    return best, best_radius


def _peaks(
    best: torch.Tensor, best_radius: torch.Tensor, volume: bool, min_contrast: float
) -> list[tuple[int, int, int, float]]:
    """The candidate hot spots ``(plane, row, column, radius)``: local maxima of the best contrast over 3 x 3
    (x 3 planes in a volume) neighbours, at least ``min_contrast``, strongest first."""
    pool = (
        F.max_pool3d(best[None, None], 3, stride=1, padding=1)[0, 0]
        if volume
        else (F.max_pool2d(best[:, None], 3, stride=1, padding=1)[:, 0])
    )
    found = torch.nonzero((best >= min_contrast) & (best >= pool))
    found = found[torch.argsort(best[tuple(found.T)], descending=True)]
    return [(z, y, x, r) for (z, y, x), r in zip(found.tolist(), best_radius[tuple(found.T)].tolist(), strict=True)]


def _measured_spots(
    peaks: Sequence[tuple[int, int, int, float]],
    f_planes: torch.Tensor,
    s_planes: torch.Tensor,
    volume: bool,
    min_kept: float,
    min_isolation: float,
    isolation_quantile: float,
    max_spots: int,
) -> list[GuardedHotSpot]:
    """The hot spots among ``peaks`` (strongest first), each measured on the unsmoothed planes in its own plane:
    a peak whose core overlaps a stronger hot spot's is that one, and one whose core does not stand out of its
    surround (:func:`hot_spot_guard`'s isolation rule) is none; at most ``max_spots``."""
    spots: list[GuardedHotSpot] = []
    accepted: list[tuple[int, int, int, float]] = []
    for z, y, x, r in peaks:
        if any(  # its core overlaps a stronger hot spot's: the same one
            (y - y0) ** 2 + (x - x0) ** 2 <= (r + r0) ** 2 and abs(z - z0) <= max(r0, 1.0)
            for z0, y0, x0, r0 in accepted
        ):
            continue
        core, ring = _disc_masks(r)
        half = core.shape[-1] // 2
        window = (z, slice(y - half, y + half + 1), slice(x - half, x + half + 1))
        src, fus = s_planes[window], f_planes[window]
        spot_contrast = float(hot_spot_contrast(src, core, ring))
        if (
            spot_contrast <= 0
            or float(src[core].mean() - torch.quantile(src[ring], isolation_quantile)) < min_isolation
        ):
            continue
        accepted.append((z, y, x, r))
        kept = float(hot_spot_contrast_kept(fus, src, core, ring))
        spots.append(GuardedHotSpot((y, x, z) if volume else (y, x), r, spot_contrast, kept, kept < min_kept))
        if len(spots) >= max_spots:
            break
    return spots


class BoneBrightnessMetric(RegressionMetric):
    """:func:`bone_brightness_kept` as a MONAI metric: ``y_pred`` the fused (B, 1, H, W), ``y`` the sources
    (B, 2, H, W) in [0, 1], channel 1 the CT; both quantised as the eight metrics are. Pairs without bone give
    NaN and are left out of the mean (``"mean"`` reduction ignores NaN, as MONAI's do). MONAI's
    ``RegressionMetric`` accumulates and reduces; the shape rule (one fused channel against two sources) is
    ours, as for :class:`~hkafusion_monai.metrics.FusionMetric`."""

    def __init__(
        self,
        threshold: float = BONE_THRESHOLD,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        get_not_nans: bool = False,
    ) -> None:
        super().__init__(reduction=reduction, get_not_nans=get_not_nans)
        self.threshold = threshold

    def _check_shape(self, y_pred: torch.Tensor, y: torch.Tensor) -> None:
        check_fusion_inputs(y_pred, y)

    def _compute_metric(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fused, ct = quantise(y_pred)[:, 0], quantise(y)[:, 1]
        return bone_brightness_kept(fused, ct, self.threshold).unsqueeze(1)
