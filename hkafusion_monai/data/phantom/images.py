"""The phantom's PNG and NIfTI files: the Harvard-like PNG look (windows and pseudo-colour maps), the PNG pairs
of each task, and the NIfTI volumes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hkafusion_monai.utils.quantisation import to_uint8

from .anatomy import Grid, Subject
from .volumes import render_slices

__all__ = ["COLOUR_MAPS", "PNG_RANGE", "to_png_array", "write_nifti", "write_png_pairs"]

# PNG look: (low, high) of the value range mapped to 0..255 (CT: the brain window)
PNG_RANGE = {"MRI": (0.0, 900.0), "CT": (0.0, 80.0), "PET": (0.0, 14000.0), "SPECT": (0.0, 130.0)}
# piecewise-linear pseudo-colour maps (position, R, G, B): PET jet-like, SPECT purple-orange (Harvard-like)
COLOUR_MAPS = {
    "PET": (
        (0.0, 0, 0, 0),
        (0.06, 0, 0, 0.35),
        (0.25, 0, 0.3, 1),
        (0.45, 0, 0.9, 0.9),
        (0.6, 0.5, 1, 0.3),
        (0.75, 1, 0.9, 0),
        (0.9, 1, 0.35, 0),
        (1.0, 0.75, 0, 0),
    ),
    "SPECT": (
        (0.0, 0, 0, 0),
        (0.1, 0.07, 0.12, 0.18),
        (0.35, 0.33, 0.1, 0.55),
        (0.6, 0.75, 0.25, 0.45),
        (0.8, 1, 0.55, 0.1),
        (1.0, 1, 0.95, 0.7),
    ),
}
# the PNG folder of each split (the Harvard layout's names)
PNG_SPLIT_FOLDER = {"training": "train", "validation": "validation", "test": "test"}


def to_png_array(modality: str, values: np.ndarray) -> np.ndarray:
    """8-bit PNG pixels: grey ``(H, W)`` for MRI and CT, pseudo-colour RGB ``(H, W, 3)`` for PET and SPECT."""
    lo, hi = PNG_RANGE[modality]
    v = np.clip((values - lo) / (hi - lo), 0.0, 1.0)
    if modality in COLOUR_MAPS:
        table = np.asarray(COLOUR_MAPS[modality], dtype=np.float64)
        v = np.stack([np.interp(v, table[:, 0], table[:, i]) for i in (1, 2, 3)], axis=-1)
    return to_uint8(v)


def _png_levels(n: int) -> np.ndarray:
    return np.linspace(-20.0, 50.0, n) if n > 1 else np.array([15.0])


def write_png_pairs(png_root: Path, subject: Subject, split: str, seed: int, png_slices: int) -> None:
    """``png_slices`` axial slices of ``subject`` as PNG pairs of each task (MRI with CT, PET and SPECT), in
    ``png_root/mri_<modality>/<split folder>/{MRI,<MODALITY>}/sub-000_z+012.png``."""
    from PIL import Image

    name = f"sub-{subject.index:03d}"
    for z in _png_levels(png_slices):
        stem = f"{name}_z{int(round(z)):+04d}"
        slices = {m: to_png_array(m, v) for m, v in render_slices(subject, float(z), seed).items()}
        for other in ("CT", "PET", "SPECT"):
            task = png_root / f"mri_{other.lower()}" / PNG_SPLIT_FOLDER[split]
            for folder, m in (("MRI", "MRI"), (other, other)):
                path = task / folder / f"{stem}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(slices[m]).save(path)


def write_nifti(path: Path, modality: str, grid: Grid, values: np.ndarray) -> None:
    """Write ``values`` (``(X, Y, Z)`` on ``grid``) as NIfTI: int16 for MRI and CT, int16 with a scale factor
    for SPECT, float32 for PET."""
    import nibabel as nib

    data = values.astype(np.int16) if modality in ("MRI", "CT") else values.astype(np.float32)
    img = nib.Nifti1Image(data, grid.nifti_affine())
    if modality == "SPECT":  # int16 with a scale factor: a third of the size of float32 noise
        img.set_data_dtype(np.int16)
    img.header.set_xyzt_units("mm", "sec")
    img.set_sform(grid.nifti_affine(), code=1)
    img.set_qform(grid.nifti_affine(), code=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, path)
