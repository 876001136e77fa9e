"""Lesions painted into real image pairs, so that a fusion's lesion contrast can be measured where the truth is
known (:func:`hkafusion_monai.metrics.hot_spot_contrast_kept`), and trained on.

Real Harvard PET/SPECT slices carry no lesion labels, so lesions are painted in at a random place inside the
brain, in two kinds:

- a *hot spot* (:func:`paint_hot_spot`): a small bright blob on the PET/SPECT only;
- a *hypointense-hot lesion* (:func:`paint_lesion`): the project phantom's lesion model, a common tumour
  appearance. The MRI shows a sharp dark disc, and the PET/SPECT the same spot hot and blurred to its coarser
  resolution. Here a fusion that follows the MRI's edges shows a dark core in a bright ring.

Adding the same value to R, G and B adds it to the BT.601 luma and leaves Cb and Cr unchanged, so a
pseudo-colour image keeps its colours. Written here because no kept library synthesises lesions in 2-D fusion
pairs.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.networks.layers import GaussianFilter
from monai.transforms import MapTransform, RandomizableTransform

__all__ = ["HotSpot", "Lesion", "RandHotSpotd", "RandLesiond", "paint_hot_spot", "paint_lesion"]


class HotSpot(NamedTuple):
    """``(painted, core, surround)``: the painted image (same shape and dtype as the input) and the boolean
    ``(H, W)`` masks of the blob's core and of the ring around it."""

    painted: np.ndarray
    core: np.ndarray
    surround: np.ndarray


class Lesion(NamedTuple):
    """``(mri, other, core, surround)``: the painted MRI and PET/SPECT (same shapes and dtypes as the inputs)
    and the boolean ``(H, W)`` masks of the lesion's core and of the ring around it."""

    mri: np.ndarray
    other: np.ndarray
    core: np.ndarray
    surround: np.ndarray


def _luma(x: np.ndarray) -> np.ndarray:
    if x.ndim == 2:
        return x
    luma: np.ndarray = 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]
    return luma


def _erode(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary erosion by a (2 radius + 1)^2 square: a min-pool."""
    t = torch.from_numpy(mask.astype(np.float32))[None, None]
    return (-F.max_pool2d(-t, 2 * radius + 1, stride=1, padding=radius))[0, 0].numpy() > 0.5


def _check_pair(name: str, mri: np.ndarray, other: np.ndarray) -> None:
    if mri.ndim != 2 or other.shape[:2] != mri.shape or other.ndim not in (2, 3):
        raise ValueError(f"{name}: mri {mri.shape} and other {other.shape} must be (H, W) and (H, W[, 3]).")


def _placements(
    name: str, m: np.ndarray, o: np.ndarray, radius: float, scale: float, rng: np.random.Generator, tries: int
) -> Iterator[np.ndarray]:
    """Distance maps ``(H, W)`` from up to ``tries`` random centres where the MRI shows tissue and a ring of
    ``3 radius`` around the centre lies inside the head."""
    head = (m > 0.08 * scale) | (_luma(o) > 0.08 * scale)
    allowed = _erode(head, int(np.ceil(3 * radius)) + 1) & (m > 0.12 * scale)
    ys, xs = np.nonzero(allowed)
    if ys.size == 0:
        raise ValueError(f"{name}: no place inside the brain holds a lesion with its surround.")
    yy, xx = np.mgrid[: m.shape[0], : m.shape[1]]
    for _ in range(tries):
        i = int(rng.integers(ys.size))
        yield np.hypot(yy - ys[i], xx - xs[i])


def _lift_luma(o: np.ndarray, target: float, weight: np.ndarray, scale: float, integer: bool) -> np.ndarray:
    """``o`` with its luminance raised towards ``target`` by ``weight`` in [0, 1]; the same value is added to R,
    G and B, which moves the luma and leaves Cb and Cr alone."""
    lift = np.maximum(target - _luma(o), 0.0) * weight
    painted: np.ndarray = np.clip(o + (lift if o.ndim == 2 else lift[..., None]), 0.0, scale)
    return np.round(painted) if integer else painted


def _darken(m: np.ndarray, fraction: np.ndarray, scale: float, dtype: np.dtype) -> np.ndarray:
    """``m`` darkened by ``fraction`` in [0, 1] per pixel (the lesion's MRI side), clipped to ``[0, scale]``;
    rounded for an integer ``dtype``."""
    darkened: np.ndarray = np.clip(m * (1.0 - fraction), 0.0, scale)
    return np.round(darkened) if np.issubdtype(dtype, np.integer) else darkened


def _core_contrast(painted: np.ndarray, core: np.ndarray, surround: np.ndarray) -> float:
    """The painted image's core-minus-surround contrast on luminance."""
    luma = _luma(painted)
    return float(luma[core].mean() - luma[surround].mean())


def paint_hot_spot(
    mri: np.ndarray,
    other: np.ndarray,
    seed: int,
    radius_range: tuple[int, int] = (3, 6),
    level: float = 235.0,
    max_value: float = 255.0,
    min_contrast: float = 40.0,
    tries: int = 64,
) -> HotSpot:
    """Add one bright blob to ``other`` inside the brain.

    The blob raises the luminance to ``level`` (a hot spot is the brightest uptake of a PET/SPECT image,
    near the top of its colour scale) on a disc of radius ``r`` (drawn from ``radius_range``), with a
    one-pixel linear edge either side of ``r``; its core is the disc ``d <= r - 1`` and its surround the ring
    ``2 r <= d <= 3 r``. The centre is drawn where the MRI shows tissue and the whole surround lies inside the
    head, and drawn again until the painted source's core-minus-surround contrast is at least
    ``min_contrast`` (a blob on an already saturated region is no hot spot).

    Args:
        mri: the MRI grey levels ``(H, W)``, scale ``max_value``.
        other: the PET/SPECT image, grey ``(H, W)`` or RGB ``(H, W, 3)``, same scale; never modified.
        seed: seeds the placement and the radius (the same seed paints the same blob).
        radius_range: inclusive range of the core radius in pixels.
        level: the luminance of the blob's core on the 0-255 scale (scaled by ``max_value / 255``); results are
            clipped to ``max_value``.
        max_value: the scale: 255 for 8-bit images, 1 for images in [0, 1].
        min_contrast: smallest accepted contrast of the painted source, on the 0-255 scale.
        tries: placements tried before giving up.

    Returns:
        :class:`HotSpot` ``(painted, core, surround)``; ``painted`` has the dtype of ``other`` (rounded for
        integer images).

    Raises:
        ValueError: for mismatched shapes, or when no placement inside the brain gives the contrast.
    """
    mri, other_in = np.asarray(mri), np.asarray(other)
    _check_pair("paint_hot_spot", mri, other_in)
    scale = float(max_value)
    target, min_contrast = level * scale / 255.0, min_contrast * scale / 255.0
    m, o = mri.astype(np.float64), other_in.astype(np.float64)
    rng = np.random.default_rng(seed)
    radius = int(rng.integers(radius_range[0], radius_range[1] + 1))
    for d in _placements("paint_hot_spot", m, o, radius, scale, rng, tries):
        profile = np.clip((radius + 1 - d) / 2.0, 0.0, 1.0)
        painted = _lift_luma(o, target, profile, scale, np.issubdtype(other_in.dtype, np.integer))
        core, surround = d <= radius - 1, (d >= 2 * radius) & (d <= 3 * radius)
        if _core_contrast(painted, core, surround) >= min_contrast:
            return HotSpot(painted.astype(other_in.dtype), core, surround)
    raise ValueError(f"paint_hot_spot: no placement in {tries} tries gave a contrast of {min_contrast}.")


def _gaussian_blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur (sigma in pixels) of an ``(H, W)`` array, with MONAI's separable filter."""
    t = torch.from_numpy(np.asarray(x, np.float32))[None, None]
    blurred: torch.Tensor = GaussianFilter(spatial_dims=2, sigma=float(sigma))(t)
    return blurred[0, 0].double().numpy()


def paint_lesion(
    mri: np.ndarray,
    other: np.ndarray,
    seed: int,
    radius_range: tuple[float, float] = (5.0, 10.0),
    depth_range: tuple[float, float] = (0.3, 0.7),
    level_range: tuple[float, float] = (225.0, 250.0),
    blur_range: tuple[float, float] = (1.5, 4.0),
    max_value: float = 255.0,
    min_contrast: float = 40.0,
    tries: int = 64,
) -> Lesion:
    """Paint one hypointense-on-MRI, hot-on-PET/SPECT lesion into a pair (the phantom's lesion model).

    A disc of radius ``r`` (drawn from ``radius_range``) with a one-pixel linear edge: the MRI is darkened there
    by the fraction ``depth`` (sharp, at the MRI's resolution), and the PET/SPECT luminance is raised towards
    ``level`` by the same disc blurred with a Gaussian of ``sigma`` pixels (the coarser PET/SPECT resolution:
    PET about 6 mm FWHM, SPECT about 11 mm, so sigma 1.5-4 pixels at the Harvard images' ~1 mm; the radius
    5-10 pixels, as the phantom's lesions). The defaults are the check's: on the joint validation pairs, pixel
    max keeps their contrast partly (a bright MRI surround) and inverts none. Its core is the
    disc ``d <= max(0.7 r, 1.5)`` (as the phantom's lesions are scored) and its surround the ring
    ``2 r <= d <= 3 r``. The centre is drawn where the MRI shows tissue and the whole surround lies inside the
    head, and drawn again until the painted PET/SPECT's core-minus-surround contrast is at least
    ``min_contrast``.

    Args:
        mri: the MRI grey levels ``(H, W)``, scale ``max_value``; never modified.
        other: the PET/SPECT image, grey ``(H, W)`` or RGB ``(H, W, 3)``, same scale; never modified.
        seed: seeds the placement, radius, depth, level and blur (the same seed paints the same lesion).
        radius_range: range of the disc radius in pixels.
        depth_range: range of the fraction by which the MRI is darkened inside the disc.
        level_range: range of the PET/SPECT luminance the disc is raised to, on the 0-255 scale.
        blur_range: range of the PET/SPECT blur sigma in pixels.
        max_value: the scale: 255 for 8-bit images, 1 for images in [0, 1].
        min_contrast: smallest accepted contrast of the painted PET/SPECT, on the 0-255 scale.
        tries: placements tried before giving up.

    Returns:
        :class:`Lesion` ``(mri, other, core, surround)`` with the dtypes of the inputs (rounded for integer
        images).

    Raises:
        ValueError: for mismatched shapes, or when no placement inside the brain gives the contrast.
    """
    mri_in, other_in = np.asarray(mri), np.asarray(other)
    _check_pair("paint_lesion", mri_in, other_in)
    scale = float(max_value)
    min_contrast = min_contrast * scale / 255.0
    m, o = mri_in.astype(np.float64), other_in.astype(np.float64)
    rng = np.random.default_rng(seed)
    radius, depth, level, sigma = (float(rng.uniform(*r)) for r in (radius_range, depth_range, level_range, blur_range))
    level = level * scale / 255.0
    for d in _placements("paint_lesion", m, o, radius, scale, rng, tries):
        disc = np.clip((radius + 1 - d) / 2.0, 0.0, 1.0)
        painted_mri = _darken(m, depth * disc, scale, mri_in.dtype)
        painted = _lift_luma(o, level, _gaussian_blur(disc, sigma), scale, np.issubdtype(other_in.dtype, np.integer))
        core, surround = d <= max(0.7 * radius, 1.5), (d >= 2 * radius) & (d <= 3 * radius)
        if _core_contrast(painted, core, surround) >= min_contrast:
            return Lesion(painted_mri.astype(mri_in.dtype), painted.astype(other_in.dtype), core, surround)
    raise ValueError(f"paint_lesion: no placement in {tries} tries gave a contrast of {min_contrast}.")


class RandHotSpotd(RandomizableTransform, MapTransform):
    """Training augmentation: with probability ``prob``, paint one bright blob into channel 1 (the CT/PET/SPECT)
    of a stacked ``(2, H, W)`` pair in [0, 1] (:func:`paint_hot_spot`).

    Real training pairs hold few small hot lesions, and a fusion trained on them learns to let the MRI's
    structure win over small bright uptake. Synthetic lesions are a common remedy; the loss (the intensity
    term's ``max(A, B)`` target and the gradient term) then teaches the network to keep them. The radius and
    level are drawn from wider ranges than the hot-spot *check* uses (radius 3-6, level 235), and from the
    training pairs only, so the check is not the training distribution. A crop without room for a blob is
    left unchanged.

    Args:
        keys: the stacked image key(s).
        prob: probability of painting a blob into a sample.
        radius_range: inclusive range of the core radius (pixels).
        level_range: range of the core's luminance, in [0, 1].
        min_contrast: smallest contrast over the surround, in [0, 1].
    """

    def __init__(
        self,
        keys: KeysCollection = "image",
        prob: float = 0.3,
        radius_range: tuple[int, int] = (2, 9),
        level_range: tuple[float, float] = (0.55, 1.0),
        min_contrast: float = 0.1,
    ) -> None:
        MapTransform.__init__(self, keys)
        RandomizableTransform.__init__(self, prob)
        self.radius_range = (int(radius_range[0]), int(radius_range[1]))
        self.level_range = (float(level_range[0]), float(level_range[1]))
        self.min_contrast = float(min_contrast)
        self._seed = 0
        self._level = 1.0

    def randomize(self, data: object = None) -> None:
        super().randomize(None)
        self._seed = int(self.R.randint(0, 2**31 - 1))
        self._level = float(self.R.uniform(*self.level_range))

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        self.randomize()
        if not self._do_transform:
            return d
        for key in self.key_iterator(d):
            image = d[key]
            arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
            if arr.ndim != 3 or arr.shape[0] != 2:
                raise ValueError(f"RandHotSpotd: {key} must be a stacked (2, H, W) pair, got {arr.shape}")
            try:
                spot = paint_hot_spot(
                    arr[0],
                    arr[1],
                    seed=self._seed,
                    radius_range=self.radius_range,
                    level=self._level * 255.0,
                    max_value=1.0,
                    min_contrast=self.min_contrast * 255.0,
                    tries=8,
                )
            except ValueError:  # no room for a blob in this crop
                continue
            painted = torch.as_tensor(spot.painted, dtype=image.dtype if isinstance(image, torch.Tensor) else None)
            out = image.clone() if isinstance(image, torch.Tensor) else arr.copy()
            out[1] = painted
            d[key] = out
        return d


class RandLesiond(RandomizableTransform, MapTransform):
    """Training augmentation: with probability ``prob``, paint one hypointense-on-MRI, hot-on-PET/SPECT lesion
    (:func:`paint_lesion`, the phantom's lesion model) into a stacked ``(2, H, W)`` pair in [0, 1]: channel 0
    darkened on a sharp disc, channel 1 raised on the same disc blurred.

    Real training pairs hold few such lesions, and a fusion trained on them lets the MRI's sharp dark edge win
    over the PET/SPECT's blurred uptake (a dark core in a bright ring). The ranges are wider than the check's
    (:func:`paint_lesion`'s defaults), so the check is not the training distribution. A crop without room
    for a lesion is left unchanged.

    Args:
        keys: the stacked image key(s).
        prob: probability of painting a lesion into a sample.
        radius_range: range of the disc radius (pixels).
        depth_range: range of the MRI darkening fraction.
        level_range: range of the PET/SPECT luminance of the lesion, in [0, 1].
        blur_range: range of the PET/SPECT blur sigma (pixels).
        min_contrast: smallest contrast over the surround, in [0, 1].
        max_lesions: a painted sample holds 1 to ``max_lesions`` lesions (drawn uniformly).
    """

    def __init__(
        self,
        keys: KeysCollection = "image",
        prob: float = 0.3,
        radius_range: tuple[float, float] = (2.0, 10.0),
        depth_range: tuple[float, float] = (0.2, 0.8),
        level_range: tuple[float, float] = (0.55, 1.0),
        blur_range: tuple[float, float] = (0.5, 5.0),
        min_contrast: float = 0.1,
        max_lesions: int = 1,
    ) -> None:
        MapTransform.__init__(self, keys)
        RandomizableTransform.__init__(self, prob)
        if max_lesions < 1:
            raise ValueError(f"RandLesiond: max_lesions must be >= 1, got {max_lesions}.")
        self.max_lesions = int(max_lesions)
        self.radius_range = (float(radius_range[0]), float(radius_range[1]))
        self.depth_range = (float(depth_range[0]), float(depth_range[1]))
        self.level_range = (float(level_range[0]), float(level_range[1]))
        self.blur_range = (float(blur_range[0]), float(blur_range[1]))
        self.min_contrast = float(min_contrast)
        self._seeds: list[int] = []

    def randomize(self, data: object = None) -> None:
        super().randomize(None)
        count = int(self.R.randint(1, self.max_lesions + 1))
        self._seeds = [int(self.R.randint(0, 2**31 - 1)) for _ in range(count)]

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        self.randomize()
        if not self._do_transform:
            return d
        level = (self.level_range[0] * 255.0, self.level_range[1] * 255.0)
        for key in self.key_iterator(d):
            image = d[key]
            arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
            if arr.ndim != 3 or arr.shape[0] != 2:
                raise ValueError(f"RandLesiond: {key} must be a stacked (2, H, W) pair, got {arr.shape}")
            mri, other, painted = arr[0], arr[1], False
            for seed in self._seeds:
                try:
                    lesion = paint_lesion(
                        mri,
                        other,
                        seed=seed,
                        radius_range=self.radius_range,
                        depth_range=self.depth_range,
                        level_range=level,
                        blur_range=self.blur_range,
                        max_value=1.0,
                        min_contrast=self.min_contrast * 255.0,
                        tries=8,
                    )
                except ValueError:  # no room for (another) lesion in this crop
                    continue
                mri, other, painted = lesion.mri, lesion.other, True
            if not painted:
                continue
            out = image.clone() if isinstance(image, torch.Tensor) else arr.copy()
            dtype = image.dtype if isinstance(image, torch.Tensor) else None
            out[0] = torch.as_tensor(mri, dtype=dtype) if dtype is not None else mri
            out[1] = torch.as_tensor(other, dtype=dtype) if dtype is not None else other
            d[key] = out
        return d
