"""Slices of a stacked volume pair for training.

Training draws random axial slices from the stacked ``(2, H, W, D)`` ``image`` with MONAI's
``RandSpatialCropSamplesd(roi_size=[-1, -1, 1])`` and ``SqueezeDimd(dim=3)``, which give ``(2, H, W)``
slices, the 2-D contract. :class:`DropEmptySlicesd` runs before them so that the draw skips slices that
are nearly empty in both modalities (air above the head, slices outside the secondary's field of view
that are also outside the MRI's); MONAI's croppers sample positions uniformly and cannot skip content
rules, and ``CropForegroundd`` would also crop in-plane and keep empty slices between others.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import MapTransform
from monai.utils import convert_to_dst_type, convert_to_tensor

from hkafusion_monai.utils.errors import FusionInputError

__all__ = ["DropEmptySlicesd"]


class DropEmptySlicesd(MapTransform):
    """Keep only the slices (along the last axis) where some channel has content.

    A slice has content in a channel when at least ``min_fraction`` of its pixels exceed ``threshold``;
    it is kept when any channel (MRI or the other modality) has content. The kept slice indices go to
    ``meta["kept_slices"]``; the affine is left as it is (its in-plane part, the part 2-D slices use,
    stays right; its slice positions no longer apply when slices were dropped in between).

    Args:
        keys: keys of ``(C, H, W, D)`` images in [0, 1], e.g. ``"image"`` after ``StackPaird``.
        threshold: intensity above which a pixel counts as content (the data are in [0, 1]).
        min_fraction: fraction of a slice's pixels that must be content.
        allow_missing_keys: don't raise when a key is absent.

    Raises:
        FusionInputError: every slice is nearly empty (the message names the MRI file).
    """

    def __init__(
        self,
        keys: KeysCollection = "image",
        threshold: float = 0.1,
        min_fraction: float = 0.02,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.threshold = threshold
        self.min_fraction = min_fraction

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            if img.ndim != 4:
                raise ValueError(f"DropEmptySlicesd: {key} has shape {tuple(img.shape)}; expected (C, H, W, D)")
            t = convert_to_tensor(img, track_meta=False)
            content = (t > self.threshold).float().mean(dim=(1, 2)) >= self.min_fraction  # (C, D)
            keep = torch.nonzero(content.any(dim=0)).flatten()
            if keep.numel() == 0:
                meta = getattr(img, "meta", None) or {}
                raise FusionInputError(
                    f"{meta.get('filename_or_obj', key)}: every one of {t.shape[-1]} slices is nearly empty in all "
                    f"channels (under {self.min_fraction:g} of the pixels above {self.threshold:g}); lower "
                    "DropEmptySlicesd's threshold or min_fraction, or check the intensity scaling"
                )
            out = convert_to_dst_type(t.index_select(-1, keep), dst=img)[0]
            if isinstance(out, MetaTensor):
                out.meta["kept_slices"] = keep.numpy().astype(np.int64)
            d[key] = out
        return d
