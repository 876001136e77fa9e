"""Two fusion checks a reader makes at a glance, beside the paper's eight metrics: is the CT's bone as bright in
the fused image as in the CT, and does a hot spot of the PET/SPECT keep its contrast?

Both are ratios on the 0-255 grey scale (luminance for colour sources), 1.0 = fully kept:

- :func:`bone_brightness_kept`: mean fused luminance over the bone pixels (CT > 200) divided by the CT's mean
  there. The pixel-max rule keeps 1.0 by construction; a fusion that averages bone with the dark MRI skull
  falls towards 0.5.
- :func:`hot_spot_contrast_kept`: the fused image's core-minus-surround contrast of a hot spot divided by the
  source's. The hot spots are the phantom's known lesions, or bright blobs painted into real PET/SPECT images
  (:func:`hkafusion_monai.transforms.paint_hot_spot`).

Both are written here rather than taken from a library: no kept metric library has them (they are this
project's acceptance checks, docs/metrics.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from monai.metrics import CumulativeIterationMetric
from monai.metrics.utils import do_metric_reduction
from monai.utils import MetricReduction

from hkafusion_monai.metrics.functional import check_fusion_inputs, quantise

__all__ = [
    "BONE_THRESHOLD",
    "CHECK_NAMES",
    "BoneBrightnessMetric",
    "bone_brightness_kept",
    "hot_spot_contrast",
    "hot_spot_contrast_kept",
]

#: CT grey level (0-255, brain window) above which a pixel counts as bone
BONE_THRESHOLD = 200.0
#: the checks' names as reports and MLflow show them, beside :data:`~hkafusion_monai.metrics.METRIC_NAMES`
CHECK_NAMES: tuple[str, ...] = ("Lesion", "Bone")


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
        raise ValueError(f"bone_brightness_kept: fused {tuple(f.shape)} and ct {tuple(c.shape)} must be equal (..., H, W).")
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


class BoneBrightnessMetric(CumulativeIterationMetric):
    """:func:`bone_brightness_kept` as a MONAI metric: ``y_pred`` the fused (B, 1, H, W), ``y`` the sources
    (B, 2, H, W) in [0, 1], channel 1 the CT; both quantised as the eight metrics are. Pairs without bone give
    NaN and are left out of the mean (``"mean"`` reduction ignores NaN, as MONAI's do)."""

    def __init__(
        self,
        threshold: float = BONE_THRESHOLD,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        get_not_nans: bool = False,
    ) -> None:
        super().__init__()
        self.threshold = threshold
        self.reduction = reduction
        self.get_not_nans = get_not_nans

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
        if y is None:
            raise ValueError("BoneBrightnessMetric needs y = the (B, 2, H, W) source images.")
        check_fusion_inputs(y_pred, y)
        fused, ct = quantise(y_pred)[:, 0], quantise(y)[:, 1]
        return bone_brightness_kept(fused, ct, self.threshold).unsqueeze(1)

    def aggregate(self, reduction: MetricReduction | str | None = None) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        data = self.get_buffer()
        if not isinstance(data, torch.Tensor):
            raise ValueError("the data to aggregate must be a PyTorch Tensor.")
        f, not_nans = do_metric_reduction(data, reduction or self.reduction)
        return (f, not_nans) if self.get_not_nans else f
