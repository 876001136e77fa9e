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

- :func:`hot_spot_guard`: finds the secondary's own hot spots (:mod:`hkafusion_monai.metrics.hot_spots`:
  local maxima well above their surround, at several scales) and measures each one's contrast kept with
  :func:`hot_spot_contrast_kept`; one keeping less than :data:`HOT_SPOT_MIN_KEPT` where the MRI is at least
  :data:`HOT_SPOT_MRI_DARKER` darker than around it (a lesion's pattern, not normal focal uptake) is *lost*
  (docs/failure_behaviour.md).

They are written here rather than taken from a library: no kept metric library has them (they are this
project's acceptance checks, docs/metrics.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from monai.metrics.regression import RegressionMetric
from monai.utils import MetricReduction

from hkafusion_monai.metrics.functional import check_fusion_inputs
from hkafusion_monai.metrics.hot_spots import (
    HOT_SPOT_MIN_CONTRAST,
    HOT_SPOT_RADII,
    disc_masks,
    find_hot_spots,
    hot_spot_contrast,
    hot_spot_patch,
)
from hkafusion_monai.utils.quantisation import quantise

__all__ = [
    "BONE_THRESHOLD",
    "CHECK_NAMES",
    "HOT_SPOT_MIN_CONTRAST",
    "HOT_SPOT_MIN_KEPT",
    "HOT_SPOT_MRI_DARKER",
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
#: the hot-spot guard's default: a hot spot is guarded where the MRI's mean over its core is at least this fraction
#: below the MRI's mean over its surround (the hypointense-hot pattern of a lesion). On the phantom the MRI is 27 %
#: to 57 % darker under the hot spots centred on a lesion, at most 17 % under 98 % of the cortex's (docs/results.md)
HOT_SPOT_MRI_DARKER = 0.2


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
    contrast over the source's (:func:`hot_spot_contrast_kept`); ``lost``: ``kept < min_kept`` and, when the
    MRI is given, ``mri_ratio < 1 - mri_darker``; ``mri_ratio``: the MRI's mean over the same core divided by its
    mean over the surround (below 1: darker than around it; ``None`` without the MRI, ``inf`` over a black
    surround).
    """

    position: tuple[int, ...]
    radius: float
    contrast: float
    kept: float
    lost: bool
    mri_ratio: float | None = None


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
    mri: torch.Tensor | np.ndarray | None = None,
    mri_darker: float = HOT_SPOT_MRI_DARKER,
) -> list[GuardedHotSpot]:
    """Find the hot spots of a PET/SPECT image (:func:`~hkafusion_monai.metrics.hot_spots.find_hot_spots`, whose
    arguments the ones below are) and measure the contrast each one keeps in a fusion:
    :func:`hot_spot_contrast_kept` of the unsmoothed images over its own core (the disc ``d <= r``) and surround
    (the ring ``2 r <= d <= 3 r``), in its slice: volumes are searched in 3-D and measured slice by slice, as
    the network fuses them.

    With the ``mri``, only a hot spot over MRI tissue darker than its surround can be lost: the MRI's mean over
    the same core must lie at least ``mri_darker`` below its mean over the surround (a ratio, so the MRI's scale
    does not matter as long as air is 0). That is the pattern of a lesion (dark on T1, hot on PET/SPECT), where a
    fusion that keeps the MRI's structure hides the uptake; normal focal uptake of the cortex lies on grey
    matter only a little darker than its surround, and a hot spot over bright MRI stays bright in a fusion even
    when its contrast saturates. On the phantom this keeps the alarm for its lesions and drops it for the cortex
    (docs/results.md, section ``hot-spot-guard``); deep grey matter, darker than the white matter around it,
    stays guarded.

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
        mri: the MRI on the same grid (as the network saw it: air 0), or ``None``: every hot spot keeping less
            than ``min_kept`` is lost.
        mri_darker: see ``mri``.

    Returns:
        :class:`GuardedHotSpot` s, the strongest (smoothed) contrast first; empty when the source has none.

    Raises:
        ValueError: shapes that differ, or that are neither ``(H, W)`` nor ``(H, W, D)``.
    """
    shape, other = tuple(fused.shape), tuple(source.shape)
    if shape != other or len(shape) not in (2, 3):
        raise ValueError(f"hot_spot_guard: fused {shape} and source {other} must be equal (H, W[, D]).")
    if mri is not None and tuple(mri.shape) != shape:
        raise ValueError(f"hot_spot_guard: mri {tuple(mri.shape)} and source {other} must be equal (H, W[, D]).")
    found = find_hot_spots(
        source, min_contrast, radii, max_value, min_isolation, isolation_quantile, background, min_inside, max_spots
    )
    spots = []
    for spot in found:
        core, ring = disc_masks(spot.radius)
        f, s = hot_spot_patch(fused, spot, max_value), hot_spot_patch(source, spot, max_value)
        kept = float(hot_spot_contrast_kept(f, s, core, ring))
        lost, mri_ratio = kept < min_kept, None
        if mri is not None:
            m = hot_spot_patch(mri, spot, max_value)
            inner, outer = float(m[core].mean()), float(m[ring].mean())
            mri_ratio = inner / outer if outer > 0 else float("inf")
            lost = lost and mri_ratio < 1.0 - mri_darker
        position = (spot.row, spot.column, spot.plane) if len(shape) == 3 else (spot.row, spot.column)
        spots.append(GuardedHotSpot(position, spot.radius, spot.contrast, kept, lost, mri_ratio))
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
