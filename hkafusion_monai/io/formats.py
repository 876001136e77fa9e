"""The file formats the package reads and writes, by name: one home for the suffixes and the checks on them.

Free of MONAI and torch imports, like :mod:`hkafusion_monai.io.atomic`: the command-line tools use it.
"""

from __future__ import annotations

import os

__all__ = ["DICOM_SUFFIXES", "IMAGE_SUFFIXES", "NIFTI_SUFFIXES", "is_image_file", "is_nifti", "split_suffix"]

#: 2-D image files (one pair of pictures)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
#: NIfTI volumes (the double suffix first, for :func:`split_suffix`)
NIFTI_SUFFIXES = (".nii.gz", ".nii")
#: files taken as DICOM by their name (others are recognised by their preamble)
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")


def split_suffix(name: str) -> tuple[str, str]:
    """``"a.nii.gz"`` -> ``("a", ".nii.gz")``; ``"a.png"`` -> ``("a", ".png")``."""
    for suffix in NIFTI_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)], name[-len(suffix) :]
    stem, dot, ext = name.rpartition(".")
    return (stem, dot + ext) if dot else (name, "")


def is_image_file(path: str | os.PathLike) -> bool:
    """True for a 2-D image file name (PNG, JPEG, TIFF, BMP), False for a volume (NIfTI, DICOM file or folder)."""
    return str(path).lower().endswith(IMAGE_SUFFIXES)


def is_nifti(path: str | os.PathLike) -> bool:
    """True for a NIfTI file name (``.nii``, ``.nii.gz``)."""
    return os.fspath(path).lower().endswith(NIFTI_SUFFIXES)
