"""Dictionary transforms that turn a loaded image pair into the network's 2-channel ``image``.

The 2-D training chain (each step a MONAI transform, so a bundle config can declare it)::

    LoadFusionImaged(["mri", "other"])   # (C, H, W) raw values; C = 1 or 3
    ScaleByBitDepthd(["mri", "other"])   # / bit depth max -> [0, 1]
    SplitYCbCrd(["mri", "other"])        # colour -> Y (+ "<key>_cbcr"), grey-as-RGB -> 1 channel
    StackPaird(["mri", "other"])         # -> "image" (2, H, W): ch 0 MRI, ch 1 other
    ... RandRotated / RandRotate90d / RandFlipd / RandSpatialCropd / Resized on "image" ...

Augmenting the stacked ``image`` (never the two keys one by one) is what keeps the channels aligned.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import MapTransform
from monai.utils import convert_data_type, convert_to_dst_type, convert_to_tensor

from hkafusion_monai.utils.colour import is_grey_rgb, rgb_to_ycbcr, with_chroma
from hkafusion_monai.utils.errors import FusionInputError

__all__ = ["ScaleByBitDepthd", "SplitYCbCrd", "MergeYCbCrd", "StackPaird"]


def _name(img: NdarrayOrTensor, key: Hashable) -> str:
    """The source file of ``img`` when known (for error messages), else the key."""
    meta = getattr(img, "meta", None) or {}
    return str(meta.get("filename_or_obj", f"<{key}>"))


def _np(img: NdarrayOrTensor, dtype: type | None = None) -> np.ndarray:
    """A numpy view of ``img``. The per-image maths runs in numpy: torch's intra-op threads make these
    small element-wise ops tens of times slower on a busy machine, and dataset caching runs them in the
    main process."""
    return convert_data_type(img, np.ndarray, dtype=dtype)[0]


def _like(arr: np.ndarray, dst: NdarrayOrTensor) -> NdarrayOrTensor:
    """``arr`` as the type of ``dst`` (a ``MetaTensor`` keeps ``dst``'s metadata), keeping ``arr``'s dtype."""
    return convert_to_dst_type(arr, dst=dst, dtype=arr.dtype)[0]


def _size(img: NdarrayOrTensor) -> str:
    """Spatial size of a channel-first image as ``"HxW"``."""
    return "x".join(str(int(v)) for v in img.shape[1:])


def _set_meta(img: NdarrayOrTensor, **items) -> None:
    if isinstance(img, MetaTensor):
        img.meta.update(items)


class ScaleByBitDepthd(MapTransform):
    """Divide each image by its bit depth's maximum, so that it lies in [0, 1] (float32).

    The divisor is ``max_value`` if given, else ``meta["bit_depth_max"]`` as set by
    :class:`~hkafusion_monai.transforms.FusionPILReader` (255 for 8-bit, 65535 for 16-bit, 1 for float).
    Contrast is not stretched: a 16-bit file using 0..4095 stays in [0, 0.0625].

    Args:
        keys: keys of the images, e.g. ``["mri", "other"]``; shape ``(C, H, W)`` (any shape works).
        max_value: fixed divisor for data without that metadata (e.g. 255.0).
        allow_missing_keys: don't raise when a key is absent.
    """

    def __init__(self, keys: KeysCollection, max_value: float | None = None, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.max_value = max_value

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            divisor = self.max_value
            if divisor is None:
                divisor = (getattr(img, "meta", None) or {}).get("bit_depth_max")
            if divisor is None:
                raise ValueError(
                    f"{_name(img, key)}: no 'bit_depth_max' in the metadata (load with LoadFusionImaged) "
                    "and no max_value given to ScaleByBitDepthd."
                )
            out = _np(img, np.float32) / np.float32(divisor)
            d[key] = _like(out, img)
        return d


class SplitYCbCrd(MapTransform):
    """Reduce each image to the one luminance channel the network takes; keep colour for later.

    Per key, on a ``(C, H, W)`` image in [0, 1]:

    - ``C == 1`` (grey): unchanged; ``meta["colour"] = "grey"``.
    - ``C == 3`` with three equal channels (grey stored as RGB): channel 0; ``"grey_rgb"``.
    - ``C == 3`` otherwise (pseudo-colour PET/SPECT): BT.601 full-range YCbCr
      (:func:`~hkafusion_monai.utils.colour.rgb_to_ycbcr`); ``Y`` replaces the image as ``(1, H, W)``
      and, if ``keep_cbcr``, ``(Cb, Cr)`` goes to ``"<key><cbcr_suffix>"`` as ``(2, H, W)`` so that
      inference can re-attach it to the fused ``Y`` (:class:`MergeYCbCrd`); ``"ycbcr"``.

    Args:
        keys: keys of the images, e.g. ``["mri", "other"]``.
        cbcr_suffix: the CbCr key is the image key plus this.
        keep_cbcr: store CbCr (inference); ``False`` drops it (training, where it would only be carried).
        grey_atol: channel difference still taken as grey (0 for PNG/TIFF; e.g. 2/255 for JPEG).
        allow_missing_keys: don't raise when a key is absent.
    """

    def __init__(
        self,
        keys: KeysCollection,
        cbcr_suffix: str = "_cbcr",
        keep_cbcr: bool = True,
        grey_atol: float = 0.0,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.cbcr_suffix = cbcr_suffix
        self.keep_cbcr = keep_cbcr
        self.grey_atol = grey_atol

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            channels = img.shape[0]
            if channels == 1:
                _set_meta(img, colour="grey")
                continue
            if channels != 3:
                raise FusionInputError(f"{_name(img, key)}: {channels} channels; expected 1 (grey) or 3 (RGB)")
            if is_grey_rgb(_np(img), atol=self.grey_atol):
                grey = img[:1]
                _set_meta(grey, colour="grey_rgb")
                d[key] = grey
                continue
            rgb = _np(img)
            if float(rgb.max()) > 1.0 + 1e-6:
                raise ValueError(f"{_name(img, key)}: values above 1; run ScaleByBitDepthd before SplitYCbCrd")
            ycbcr = rgb_to_ycbcr(rgb, channel_dim=0)
            y = _like(ycbcr[:1], img)
            _set_meta(y, colour="ycbcr")
            d[key] = y
            if self.keep_cbcr:
                d[f"{key}{self.cbcr_suffix}"] = _like(ycbcr[1:], img)
        return d


class MergeYCbCrd(MapTransform):
    """Re-attach stored CbCr to a (fused) luminance image: ``Y`` + ``(Cb, Cr)`` -> RGB in [0, 1].

    Where ``cbcr_key`` is absent (a grey source), the image passes unchanged (1 channel).

    Args:
        keys: keys of the luminance images, e.g. ``["pred"]``; shape ``(1, H, W)`` (``(B, 1, H, W)`` with
            ``channel_dim=1``).
        cbcr_key: key of the ``(2, H, W)`` CbCr, e.g. ``"other_cbcr"``.
        channel_dim: the channel axis of both.
        clip: clip the RGB result to [0, 1] (a new ``Y`` with old chroma can leave the gamut).
        allow_missing_keys: don't raise when a key is absent.
    """

    def __init__(
        self,
        keys: KeysCollection,
        cbcr_key: str = "other_cbcr",
        channel_dim: int = 0,
        clip: bool = True,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.cbcr_key = cbcr_key
        self.channel_dim = channel_dim
        self.clip = clip

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        if self.cbcr_key not in d:
            return d
        cbcr = convert_to_tensor(d[self.cbcr_key], track_meta=False)
        for key in self.key_iterator(d):
            y = d[key]
            y_t = convert_to_tensor(y, track_meta=False)
            if (
                y_t.shape[self.channel_dim] != 1
                or y_t.shape[self.channel_dim + 1 :] != cbcr.shape[self.channel_dim + 1 :]
            ):
                raise ValueError(
                    f"MergeYCbCrd: {key} has shape {tuple(y_t.shape)} but {self.cbcr_key} has {tuple(cbcr.shape)}; "
                    "expected one channel of the same spatial size (invert resizing first)."
                )
            rgb = with_chroma(y_t, cbcr, self.channel_dim, clip=self.clip)
            d[key] = convert_to_dst_type(rgb, dst=y)[0]
        return d


class StackPaird(MapTransform):
    """Stack the MRI and the other image into one 2-channel ``image``: channel 0 MRI, channel 1 other.

    Each input is ``(1, H, W)`` (after :class:`SplitYCbCrd`); the output is a float32 ``(2, H, W)``
    ``MetaTensor`` carrying the MRI's metadata plus what inference needs: ``original_size`` ``(H, W)``,
    ``<key>_filename``, ``<key>_colour`` and ``<key>_bit_depth_max`` for both keys, and ``modality``
    (copied from the data dictionary when present). The CbCr, if kept, stays under its own key.

    Args:
        keys: exactly two keys, MRI first, e.g. ``["mri", "other"]``.
        name: key of the stacked image.
        delete_keys: remove the two single images from the dictionary.
        modality_key: data key whose value (``"CT"``, ``"PET"``, ``"SPECT"``) is copied into the metadata.

    Raises:
        FusionInputError: the two images differ in size (both files named), or one is not single-channel.
    """

    def __init__(
        self,
        keys: KeysCollection = ("mri", "other"),
        name: str = "image",
        delete_keys: bool = True,
        modality_key: str = "modality",
    ) -> None:
        super().__init__(keys, allow_missing_keys=False)
        if len(self.keys) != 2:
            raise ValueError(f"StackPaird needs exactly two keys (MRI first), got {self.keys}.")
        self.name = name
        self.delete_keys = delete_keys
        self.modality_key = modality_key

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        k_mri, k_other = self.keys
        mri, other = d[k_mri], d[k_other]
        for key, img in ((k_mri, mri), (k_other, other)):
            if img.ndim < 3 or img.shape[0] != 1:
                raise FusionInputError(
                    f"{_name(img, key)}: shape {tuple(img.shape)}; StackPaird needs single-channel (1, H, W) "
                    "images (run SplitYCbCrd first)"
                )
        if tuple(mri.shape[1:]) != tuple(other.shape[1:]):
            raise FusionInputError(
                f"pair size mismatch: {k_mri} {_name(mri, k_mri)} is {_size(mri)} (HxW) but {k_other} "
                f"{_name(other, k_other)} is {_size(other)}; the two images of a pair must have the same size"
            )
        image = _like(np.concatenate([_np(mri, np.float32), _np(other, np.float32)], axis=0), mri)
        if isinstance(image, MetaTensor):
            extra: dict = {"original_size": np.asarray(mri.shape[1:], dtype=np.int64)}
            for key, img in ((k_mri, mri), (k_other, other)):
                meta = getattr(img, "meta", None) or {}
                extra[f"{key}_filename"] = str(meta.get("filename_or_obj", ""))
                extra[f"{key}_colour"] = str(meta.get("colour", "grey"))
                extra[f"{key}_bit_depth_max"] = float(meta.get("bit_depth_max", 1.0))
            if self.modality_key in d:
                extra["modality"] = str(d[self.modality_key])
            image.meta.update(extra)
        d[self.name] = image
        if self.delete_keys:
            for key in (k_mri, k_other):
                if key != self.name:
                    d.pop(key, None)
        return d
