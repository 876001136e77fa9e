"""Atomic writers for fused results: PNG for 2-D pairs, NIfTI (with the MRI's affine) for volumes.

Every file is written under a temporary name in its own folder, then renamed (``overwrite``) or hard-linked
into place (never replacing a file that appeared meanwhile), so a reader never sees half a file and an
existing result is never replaced unless asked.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor, NibabelWriter
from monai.transforms import MapTransform
from monai.utils import convert_data_type

from hkafusion_monai.io.atomic import atomic_write
from hkafusion_monai.io.dicom_series import write_fused_series_from_folders
from hkafusion_monai.io.formats import is_nifti, split_suffix
from hkafusion_monai.utils import as_bool

__all__ = ["OUTPUT_FORMATS", "FusedImageWriterd", "atomic_write", "output_name", "write_nifti", "write_png"]

#: ``FusedImageWriterd(output_format=...)``: PNG/NIfTI by kind, or a derived DICOM series
OUTPUT_FORMATS = ("auto", "dicom")


def output_name(mri_path: str | os.PathLike, kind: str, postfix: str = "_fused") -> str:
    """The output file name of a pair: the MRI's name plus ``postfix``, ``.png`` (``kind="2d"``) or ``.nii.gz``
    (``"volume"``), or a folder for a derived DICOM series (``"dicom"``).

    A DICOM series folder ``.../sub-000/MR`` gives ``sub-000_MR_fused.nii.gz`` (series folders often share
    a name such as ``MR``).
    """
    path = Path(mri_path)
    if kind == "2d":
        return split_suffix(path.name)[0] + postfix + ".png"
    if kind == "dicom":  # a derived series: a folder
        stem = f"{path.parent.name}_{path.name}" if path.parent.name else path.name
        return stem + postfix
    if path.is_dir() or not is_nifti(path.name):
        stem = f"{path.parent.name}_{path.name}" if path.parent.name else path.name
        stem = stem if path.is_dir() else split_suffix(stem)[0]
    else:
        stem = split_suffix(path.name)[0]
    return stem + postfix + ".nii.gz"


def write_png(image: NdarrayOrTensor, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write a uint8 ``(1, H, W)`` grey or ``(3, H, W)`` RGB image as PNG, row 0 at the top (PIL's layout)."""
    from PIL import Image

    arr = convert_data_type(image, np.ndarray)[0]
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[0] not in (1, 3):
        raise ValueError(f"write_png: expected a uint8 (1|3, H, W) image, got {arr.dtype} {arr.shape} for {path}")
    pixels = arr[0] if arr.shape[0] == 1 else np.moveaxis(arr, 0, -1)
    picture = Image.fromarray(np.ascontiguousarray(pixels))
    return atomic_write(path, lambda tmp: picture.save(tmp, format="PNG"), overwrite)


def write_nifti(
    volume: NdarrayOrTensor, affine: NdarrayOrTensor, path: str | os.PathLike, overwrite: bool = False
) -> Path:
    """Write a ``(1, X, Y, Z)`` volume as NIfTI with the given RAS ``affine`` (MONAI's ``NibabelWriter``,
    no resampling), keeping its dtype (float32 in [0, 1], or uint8)."""
    arr = convert_data_type(volume, torch.Tensor)[0]
    if arr.ndim != 4 or arr.shape[0] != 1:
        raise ValueError(f"write_nifti: expected a (1, X, Y, Z) volume, got {tuple(arr.shape)} for {path}")
    affine = convert_data_type(affine, np.ndarray, dtype=np.float64)[0]

    def write(tmp: str) -> None:
        writer = NibabelWriter(output_dtype=np.asarray(arr[:1, :1, :1, :1]).dtype)
        writer.set_data_array(arr, channel_dim=0, squeeze_end_dims=True)
        writer.set_metadata({"affine": affine, "original_affine": affine}, resample=False)
        writer.write(tmp, verbose=False)

    return atomic_write(path, write, overwrite)


class FusedImageWriterd(MapTransform):
    """Write each item's fused result to the path in ``output_key``: PNG for 2-D, NIfTI for volumes.

    2-D results must be uint8 ``(1|3, H, W)`` (see ``FusionPostprocessd``); volumes ``(1, X, Y, Z)`` with
    an ``affine`` in their metadata (the MRI's, after ``RestoreOrientationd``). The written path goes to
    ``"<key>_path"``.

    With ``output_format="dicom"`` a volume fused from two DICOM series folders (the item's ``"mri"`` and
    ``"other"`` paths, kept by :func:`hkafusion_monai.inference.inference_items` as ``"mri_series"`` and
    ``"other_series"``) is written as a derived MR series folder instead
    (:func:`hkafusion_monai.io.dicom_series.write_fused_series_from_folders`).

    Args:
        keys: the result key(s), e.g. ``"pred"``.
        output_key: the item key holding the output path.
        overwrite: replace existing files (``"true"``/``"false"`` strings are accepted, as from a command line).
        output_format: ``"auto"`` (PNG / NIfTI) or ``"dicom"`` (volumes from DICOM series).
        model_version: recorded in a DICOM series.
    """

    def __init__(
        self,
        keys: KeysCollection = "pred",
        output_key: str = "output",
        overwrite: bool | str = False,
        output_format: str = "auto",
        model_version: str = "unknown",
    ) -> None:
        super().__init__(keys)
        if output_format not in OUTPUT_FORMATS:
            raise ValueError(f"output_format must be one of {OUTPUT_FORMATS}, got {output_format!r}")
        self.output_key = output_key
        self.overwrite = as_bool(overwrite)
        self.output_format = output_format
        self.model_version = model_version

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict:
        d: dict[Hashable, Any] = dict(data)  # the images, and the output path and the source series
        path = d.get(self.output_key)
        if not path:
            raise KeyError(f"FusedImageWriterd: the item has no {self.output_key!r} path")
        for key in self.key_iterator(d):
            img = d[key]
            if img.ndim == 4 and self.output_format == "dicom":
                arr = convert_data_type(img, np.ndarray)[0][0]
                series = write_fused_series_from_folders(
                    arr,
                    d["mri_series"],
                    d["other_series"],
                    path,
                    self.model_version,
                    overwrite=self.overwrite,
                    mri_series_uid=d.get("mri_series_uid"),
                    other_series_uid=d.get("other_series_uid"),
                )
                written = series["mr"][0].parent
            elif img.ndim == 4:
                affine = img.affine if isinstance(img, MetaTensor) else None
                if affine is None:
                    raise ValueError(f"FusedImageWriterd: the volume for {path} carries no affine")
                written = write_nifti(img, affine, path, self.overwrite)
            else:
                written = write_png(img, path, self.overwrite)
            d[f"{key}_path"] = str(written)
        return d
