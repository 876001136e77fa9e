"""The one preprocessing and postprocessing contract of every path that fuses a pair.

The evaluation workflow (``train.json``'s ``load_pair``, hence ``validate#preprocessing``), the inference
workflow (``inference.json``), the notebook API (:func:`hkafusion_monai.load_fuser`) and the Deploy application
(through :meth:`~hkafusion_monai.inference.Fuser.fuse_volumes`) all build their chains here, so a pair gives the
same ``image`` and the same output pixels on every path (tested in ``tests/test_contract.py``).

Preprocessing ends in the network's contract: ``image``, a float32 ``(2, H, W)`` (2-D pair) or
``(2, H, W, D)`` (volume pair, axial slices on the last axis) ``MetaTensor`` in [0, 1], channel 0 MRI,
channel 1 CT/PET/SPECT; a pseudo-colour source also leaves its chroma as ``other_cbcr`` ``(2, H, W)``.

- 2-D (:func:`pair_transforms`): ``LoadFusionImaged`` -> ``ScaleByBitDepthd`` -> ``CheckGreyMRId`` (a
  pseudo-colour MRI: the pair the wrong way round) -> ``SplitYCbCrd`` -> ``StackPaird`` (-> ``Resized`` when
  an ``image_size`` is given).
- Volumes (:func:`volume_transforms`): ``LoadFusionVolumed`` -> ``CheckSamePatientd`` -> ``Orientationd``
  (PLS) -> ``ScaleIntensityByModalityd`` -> ``RigidRegisterd`` (by default when the frames of reference
  differ) -> ``CheckOverlapd`` (at least half of the MRI covered) -> ``ResampleToMatchd`` (onto the MRI
  grid) -> ``StackPaird``.
- :class:`FusionPreprocessd` picks the chain per item (by the path, or by the shape of arrays already
  loaded), so one ``Dataset`` can hold both kinds.

Postprocessing (:class:`FusionPostprocessd`) turns the network's ``pred`` (``(1, H, W)`` or
``(1, H, W, D)`` in [0, 1]) into the written result: volumes back onto the MRI file's own axes and affine
(``RestoreOrientationd``), 2-D colour re-attached from ``other_cbcr`` (``MergeYCbCrd``), and optionally
the one quantisation :func:`hkafusion_monai.utils.quantisation.quantise` to uint8.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import (
    Compose,
    EnsureTyped,
    MapTransform,
    Orientationd,
    ResampleToMatchd,
    Resized,
    Transform,
)

from hkafusion_monai.io.formats import is_image_file
from hkafusion_monai.utils import as_bool
from hkafusion_monai.utils.quantisation import to_uint8

from .dictionary import MergeYCbCrd, ScaleByBitDepthd, SplitYCbCrd, StackPaird
from .geometry import CheckOverlapd, RestoreOrientationd
from .intensity import CT_BRAIN_WINDOW, ScaleIntensityByModalityd
from .pairing import CheckGreyMRId, CheckSamePatientd
from .reader import LoadFusionImaged
from .registration import RigidRegisterd
from .volume import LoadFusionVolumed

__all__ = [
    "KEYS",
    "VOLUME_AXCODES",
    "min_max_stretch",
    "FusionPostprocessd",
    "FusionPreprocessd",
    "is_2d_path",
    "pair_transforms",
    "postprocessing",
    "preprocessing",
    "volume_transforms",
]

#: data keys of a pair: the MRI first
KEYS = ("mri", "other")
#: orientation of the volume chain: each axial slice (H, W) in the radiological view of the Harvard images
VOLUME_AXCODES = "PLS"


#: True for a 2-D image file (PNG, JPEG, TIFF, BMP), False for a volume (NIfTI, DICOM file or folder)
is_2d_path = is_image_file


def pair_transforms(
    keys: Sequence[str] = KEYS,
    image_size: Sequence[int] | None = None,
    keep_cbcr: bool = True,
    load: bool = True,
    allow_blank: bool = False,
) -> list[Transform]:
    """The 2-D pair chain, from file paths (or, with ``load=False``, from loaded ``(C, H, W)`` raw images
    carrying ``bit_depth_max``) to the stacked ``image`` ``(2, H, W)`` in [0, 1].

    A list, so that a training config can append its augmentation (``"$@load_pair + @train#augmentation"``).

    Args:
        keys: the MRI key, then the other image's key.
        image_size: ``(H, W)`` to resize ``image`` to (bilinear), or ``None`` to keep each pair's own size
            (inference: the network pads to a multiple of 32 itself, and the output matches the input).
        keep_cbcr: keep the chroma of colour sources as ``"<key>_cbcr"`` (inference); training drops it.
        load: start with ``LoadFusionImaged``.
        allow_blank: accept images whose pixels are all equal.
    """
    keys = list(keys)
    chain: list[Transform] = [LoadFusionImaged(keys, allow_blank=allow_blank)] if load else []
    chain += [
        ScaleByBitDepthd(keys),
        CheckGreyMRId(keys),
        SplitYCbCrd(keys, keep_cbcr=keep_cbcr),
        StackPaird(keys, name="image"),
    ]
    if image_size is not None:
        chain.append(Resized("image", spatial_size=tuple(image_size), mode="bilinear"))
    return chain


def volume_transforms(
    keys: Sequence[str] = KEYS,
    ct_window: Sequence[float] = CT_BRAIN_WINDOW,
    register: bool | str = "auto",
    load: bool = True,
    allow_blank: bool = False,
    allow_patient_mismatch: bool | str = False,
) -> list[Transform]:
    """The volume pair chain, from NIfTI files or DICOM series (or loaded ``(1, X, Y, Z)`` volumes with an
    affine, ``load=False``) to the stacked ``image`` ``(2, H, W, D)`` on the MRI grid, oriented
    :data:`VOLUME_AXCODES`, carrying the MRI's affine and ``original_affine``.

    Args:
        keys: the MRI key, then the other volume's key.
        ct_window: CT ``(level, width)`` in HU (see ``ScaleIntensityByModalityd``).
        register: ``"auto"`` (register when the frames of reference differ), ``True`` or ``False`` (an
            item's ``"register"`` field wins).
        load: start with ``LoadFusionVolumed``.
        allow_blank: accept volumes whose voxels are all equal.
        allow_patient_mismatch: fuse volumes of two different PatientIDs (an item's field wins).
    """
    keys = list(keys)
    chain: list[Transform] = [LoadFusionVolumed(keys, allow_blank=allow_blank)] if load else []
    chain += [
        CheckSamePatientd(keys, allow_mismatch=allow_patient_mismatch),
        Orientationd(keys, axcodes=VOLUME_AXCODES, labels=None),
        ScaleIntensityByModalityd(keys, ct_window=ct_window),
        RigidRegisterd(keys, enabled=register),
        CheckOverlapd(keys),
        # outside its field of view the other volume is 0, hence the intensity step first
        ResampleToMatchd(keys[1], key_dst=keys[0], mode="bilinear", padding_mode="zeros"),
        StackPaird(keys, name="image"),
    ]
    return chain


class FusionPreprocessd(Transform):
    """Run the 2-D or the volume chain on a data item, whichever fits it.

    An item whose MRI is a path ending in a 2-D image suffix takes the 2-D chain, any other path the
    volume chain. An item whose MRI is already loaded (a ``(C, H, W)`` or ``(1, X, Y, Z)`` tensor, as
    :func:`hkafusion_monai.load_fuser` passes arrays) takes the same chain without its loader. Both end
    with ``EnsureTyped`` (float32), and record ``meta["fusion_kind"]`` (``"2d"`` or ``"volume"``).

    Args:
        keys: the MRI key, then the other's key.
        image_size: 2-D only: resize ``image`` to this ``(H, W)``; ``None`` keeps the pair's size.
        keep_cbcr: 2-D only: keep the chroma of colour sources.
        ct_window: volumes only: CT ``(level, width)`` in HU.
        register: volumes only: ``"auto"`` (when the frames of reference differ), ``True`` or ``False``.
        allow_blank: accept blank images and volumes.
        allow_patient_mismatch: volumes only: fuse two different PatientIDs.
    """

    def __init__(
        self,
        keys: Sequence[str] = KEYS,
        image_size: Sequence[int] | None = None,
        keep_cbcr: bool = True,
        ct_window: Sequence[float] = CT_BRAIN_WINDOW,
        register: bool | str = "auto",
        allow_blank: bool = False,
        allow_patient_mismatch: bool | str = False,
    ) -> None:
        self.keys = list(keys)
        last = EnsureTyped("image", dtype=torch.float32)
        self.chains = {
            ("2d", load): Compose([*pair_transforms(keys, image_size, keep_cbcr, load, allow_blank), last])
            for load in (True, False)
        }
        self.chains.update(
            {
                ("volume", load): Compose(
                    [*volume_transforms(keys, ct_window, register, load, allow_blank, allow_patient_mismatch), last]
                )
                for load in (True, False)
            }
        )

    def kind_of(self, data: Mapping[Hashable, object]) -> tuple[str, bool]:
        """``("2d" | "volume", needs_loading)`` for a data item."""
        mri = data[self.keys[0]]
        if isinstance(mri, (str, Path)):
            return ("2d" if is_2d_path(mri) else "volume"), True
        ndim = getattr(mri, "ndim", None)
        if ndim == 3:
            return "2d", False
        if ndim == 4:
            return "volume", False
        raise ValueError(
            f"{self.keys[0]}: expected a file path, a (C, H, W) image or a (1, X, Y, Z) volume, "
            f"got {type(mri).__name__} of shape {getattr(mri, 'shape', None)}"
        )

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        kind, load = self.kind_of(data)
        try:
            d: dict = self.chains[(kind, load)](dict(data))
        except RuntimeError as e:
            # Compose wraps each failure in "applying transform ..."; the input error inside names the problem
            cause: Exception = e
            while isinstance(cause, RuntimeError) and isinstance(cause.__cause__, Exception):
                cause = cause.__cause__
            if isinstance(cause, (ValueError, OSError)):
                raise cause from None
            raise
        image = d["image"]
        if isinstance(image, MetaTensor):
            image.meta["fusion_kind"] = kind
        return d


#: the inference preprocessing for 2-D pairs and volumes, under the name the configs use:
#: ``"preprocessing": "$hkafusion_monai.transforms.contract.preprocessing(image_size=@image_size)"``
preprocessing = FusionPreprocessd


class FusionPostprocessd(MapTransform):
    """Turn the network's fused luminance into the result to write or return.

    - volume ``pred`` ``(1, H, W, D)``: back onto the axes and affine of the MRI as stored in its file
      (``RestoreOrientationd``, exact flips/permutations), metadata from ``ref_key``;
    - 2-D ``pred`` ``(1, H, W)``: with ``colour`` and a stored ``cbcr_key`` (pseudo-colour source), RGB
      ``(3, H, W)`` from ``MergeYCbCrd`` (clipped to [0, 1]); a grey source stays ``(1, H, W)``;
    - ``uint8``: ``True`` quantises with :func:`hkafusion_monai.utils.quantisation.to_uint8` (``round(255 * x)``) to
      uint8; ``False`` keeps float32 in [0, 1]; ``None`` picks per kind: uint8 for 2-D (PNG), float32 for
      volumes (NIfTI).
    - ``stretch``: the output normalisation of CDDFuse, EMMA and FILM's test code, ``(x - min) / (max - min)``
      over the whole fused luminance (per image for 2-D, per volume for volumes, never per slice), before
      colour and quantisation; off by default (docs/results.md reports both).

    Args:
        keys: the prediction key(s), e.g. ``"pred"``.
        ref_key: the stacked ``image`` whose metadata (affine, original affine, file names) the result takes.
        cbcr_key: the stored chroma of the other image.
        colour: re-attach colour to 2-D results of colour sources.
        uint8: see above.
        stretch: min-max stretch the fused luminance to [0, 1] (see above).
        allow_missing_keys: don't raise when a key is absent.
    """

    def __init__(
        self,
        keys: KeysCollection = "pred",
        ref_key: str = "image",
        cbcr_key: str = "other_cbcr",
        colour: bool = True,
        uint8: bool | None = None,
        stretch: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.stretch = as_bool(stretch, "stretch")
        self.ref_key = ref_key
        self.cbcr_key = cbcr_key
        self.colour = colour
        self.uint8 = uint8
        # called with one key at a time, so the other keys are absent from its input
        self.restore = RestoreOrientationd(keys, ref_key=ref_key, allow_missing_keys=True)
        self.merge = MergeYCbCrd(keys, cbcr_key=cbcr_key, allow_missing_keys=allow_missing_keys)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict:
        d = dict(data)
        ref = d.get(self.ref_key)
        for key in self.key_iterator(d):
            pred = d[key]
            # a network output may carry the input's metadata and operations; take the reference's instead
            pred = pred.as_tensor() if isinstance(pred, MetaTensor) else torch.as_tensor(pred)
            pred = pred.detach().cpu().float()
            if self.stretch:
                pred = min_max_stretch(pred)
            meta = dict(ref.meta) if isinstance(ref, MetaTensor) else {}
            if pred.ndim == 4:
                pair: dict[Hashable, Any] = {key: pred, self.ref_key: ref}
                out = self.restore(pair)[key]
                as_uint8 = bool(self.uint8)
            elif pred.ndim == 3:
                out = MetaTensor(pred, meta=meta)
                if self.colour and self.cbcr_key in d:
                    out = self.merge({key: out, self.cbcr_key: d[self.cbcr_key]})[key]
                as_uint8 = self.uint8 is None or self.uint8
            else:
                raise ValueError(f"FusionPostprocessd: {key} has shape {tuple(pred.shape)}; expected (1, H, W[, D])")
            if as_uint8:
                values = to_uint8(out.as_tensor() if isinstance(out, MetaTensor) else out)
                out = MetaTensor(values, meta=out.meta) if isinstance(out, MetaTensor) else values
            d[key] = out
        return d


def min_max_stretch(x: torch.Tensor) -> torch.Tensor:
    """``(x - min) / (max - min)`` over the whole tensor (one image or one volume); a constant image is
    returned unchanged (there is nothing to stretch)."""
    lo, hi = x.min(), x.max()
    return (x - lo) / (hi - lo) if bool(hi > lo) else x


def postprocessing(
    colour: bool = True, uint8: bool | None = None, keys: KeysCollection = "pred", stretch: bool = False
) -> FusionPostprocessd:
    """The inference postprocessing (:class:`FusionPostprocessd`); config use:
    ``"$hkafusion_monai.transforms.contract.postprocessing(stretch=@stretch)"``."""
    return FusionPostprocessd(keys, colour=colour, uint8=uint8, stretch=stretch)
