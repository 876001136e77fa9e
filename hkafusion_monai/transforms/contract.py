"""The transforms that route a pair through the bundle's declared chains, and the inference postprocessing.

The chains themselves are declared in the bundle's JSON as ``_target_`` items, as model-zoo bundles declare
theirs: ``inference.json``'s ``preprocessing`` (the 2-D and the volume chain, both routed by
:class:`FusionPreprocessd`) and ``postprocessing``; ``train.json``'s ``load_pair`` (the 2-D chain of training and
evaluation). The inference workflow, :func:`hkafusion_monai.load_fuser` and the Deploy application all parse
``inference.json``'s items (:func:`hkafusion_monai.inference.pipeline.bundle_pipeline`), so one edit there
changes all three, and a pair gives the same ``image`` and the same output pixels on every path (tested in
``tests/bundle/test_contract.py``).

Preprocessing ends in the network's contract: ``image``, a float32 ``(2, H, W)`` (2-D pair) or
``(2, H, W, D)`` (volume pair, axial slices on the last axis) ``MetaTensor`` in [0, 1], channel 0 MRI,
channel 1 CT/PET/SPECT; a pseudo-colour source also leaves its chroma as ``other_cbcr`` ``(2, H, W)``.

Postprocessing (:class:`FusionPostprocessd`) turns the network's ``pred`` (``(1, H, W)`` or
``(1, H, W, D)`` in [0, 1]) into the written result: volumes back onto the MRI file's own axes and affine
(``RestoreOrientationd``), 2-D colour re-attached from ``other_cbcr`` (``MergeYCbCrd``), and optionally
the one quantisation :func:`hkafusion_monai.utils.quantisation.quantise` to uint8.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from typing import Any

import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import Compose, LoadImaged, MapTransform, Transform

from hkafusion_monai.io.formats import is_image_file
from hkafusion_monai.utils import as_bool
from hkafusion_monai.utils.quantisation import to_uint8

from .dictionary import MergeYCbCrd
from .geometry import RestoreOrientationd

__all__ = [
    "KEYS",
    "VOLUME_AXCODES",
    "min_max_stretch",
    "without_loaders",
    "FusionPostprocessd",
    "FusionPreprocessd",
    "is_2d_path",
]

#: data keys of a pair: the MRI first
KEYS = ("mri", "other")
#: orientation of the volume chain (``inference.json``'s ``Orientationd``): each axial slice (H, W) in the
#: radiological view of the Harvard images
VOLUME_AXCODES = "PLS"


#: True for a 2-D image file (PNG, JPEG, TIFF, BMP), False for a volume (NIfTI, DICOM file or folder)
is_2d_path = is_image_file


def without_loaders(chain: Callable) -> Callable:
    """``chain`` without its file loaders (any ``LoadImaged``, such as ``LoadFusionImaged`` and
    ``LoadFusionVolumed``), for items whose images are already loaded; MONAI Deploy's bundle operator drops a
    bundle's ``LoadImage`` transforms for in-memory inputs in the same way. A chain that is not a ``Compose``
    is returned as it is."""
    if not isinstance(chain, Compose):
        return chain
    kept = [t for t in chain.transforms if not isinstance(t, LoadImaged)]
    return Compose(kept, map_items=chain.map_items, unpack_items=chain.unpack_items, log_stats=chain.log_stats)


class FusionPreprocessd(Transform):
    """Run the declared 2-D or volume chain on a data item, whichever fits it.

    An item whose MRI is a path ending in a 2-D image suffix takes ``pair``, any other path ``volume``. An item
    whose MRI is already loaded (a ``(C, H, W)`` or ``(1, X, Y, Z)`` tensor, as :func:`hkafusion_monai.load_fuser`
    and the Deploy application pass them) takes the same chain without its loader (:func:`without_loaders`).
    Records ``meta["fusion_kind"]`` (``"2d"`` or ``"volume"``) on ``image``. An input error raised inside a
    chain (a ``ValueError`` or ``OSError`` naming the file) is raised as it is, not wrapped by ``Compose``.

    Config use (``inference.json``), each chain a ``Compose`` of ``_target_`` items::

        "preprocessing": {"_target_": "hkafusion_monai.transforms.FusionPreprocessd",
                          "pair": {"_target_": "Compose", "transforms": [...]},
                          "volume": {"_target_": "Compose", "transforms": [...]}}

    Args:
        pair: the 2-D chain, from file paths to ``image`` ``(2, H, W)``.
        volume: the volume chain, from NIfTI files or DICOM series to ``image`` ``(2, H, W, D)``.
        mri_key: the MRI's key, which decides the chain.
    """

    def __init__(self, pair: Callable, volume: Callable, mri_key: str = KEYS[0]) -> None:
        self.mri_key = mri_key
        self.pair, self.volume = pair, volume
        self.chains = {
            ("2d", True): pair,
            ("2d", False): without_loaders(pair),
            ("volume", True): volume,
            ("volume", False): without_loaders(volume),
        }

    def kind_of(self, data: Mapping[Hashable, object]) -> tuple[str, bool]:
        """``("2d" | "volume", needs_loading)`` for a data item."""
        mri = data[self.mri_key]
        if isinstance(mri, (str, Path)):
            return ("2d" if is_2d_path(mri) else "volume"), True
        ndim = getattr(mri, "ndim", None)
        if ndim == 3:
            return "2d", False
        if ndim == 4:
            return "volume", False
        raise ValueError(
            f"{self.mri_key}: expected a file path, a (C, H, W) image or a (1, X, Y, Z) volume, "
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
