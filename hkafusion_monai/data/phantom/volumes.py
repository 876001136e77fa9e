"""Phantom images: the physical values of each tissue, noise and resolution per modality, the volumes on a
modality's grid and the 2-D slices the PNG pairs are rendered from."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .anatomy import MODALITIES, Grid, Subject, tissue_labels

__all__ = ["BLUR_MM", "PNG_PIXEL_MM", "PNG_SIZE", "TISSUE_VALUES", "make_volume", "render_slices"]

# value of each label per modality: T1-like MR (a.u.), CT (HU), FDG-like PET (Bq/ml), perfusion SPECT (counts)
TISSUE_VALUES = {
    "MRI": (0, 850, 90, 420, 160, 500, 780, 560, 150, 120, 300),
    "CT": (-1000, 35, 1500, 700, 8, 40, 28, 38, 6, 12, 62),
    "PET": (0, 1200, 400, 500, 250, 9500, 3200, 11000, 250, 600, 30000),
    "SPECT": (0, 12, 8, 10, 6, 100, 45, 110, 6, 10, 220),
}
# resolution per modality: Gaussian sigma in mm (PET 6 mm and SPECT 11 mm FWHM)
BLUR_MM = {"MRI": 0.6, "CT": 0.5, "PET": 6.0 / 2.355, "SPECT": 11.0 / 2.355}
# the rendered slices: PNG_SIZE x PNG_SIZE pixels of PNG_PIXEL_MM
PNG_SIZE, PNG_PIXEL_MM = 256, 0.8


def _smooth(values: np.ndarray, spacing_xyz: Sequence[float], sigma_mm: float) -> np.ndarray:
    """Gaussian blur (sigma in mm) of an ``(X, Y, Z)`` or ``(X, Y)`` array with the given spacing."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(values.T.astype(np.float32)))  # SimpleITK: (z,) y, x
    img.SetSpacing([float(s) for s in spacing_xyz[: values.ndim]])
    return sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(img, float(sigma_mm))).T


def _values(subject: Subject, modality: str, labels: np.ndarray, points: np.ndarray) -> np.ndarray:
    table = np.asarray(TISSUE_VALUES[modality], dtype=np.float32)
    values: np.ndarray = table[labels]
    if modality == "MRI":  # receive-coil bias: a gentle gradient
        p = subject.to_head(points)
        values = values * (1 + 0.0008 * p[:, 0] - 0.0005 * p[:, 2]).astype(np.float32)
    return values


def _noise(modality: str, values: np.ndarray, rng: np.random.Generator, weak: bool = False) -> np.ndarray:
    f = 0.35 if weak else 1.0
    if modality == "MRI":  # Rician magnitude noise
        s = 12.0 * f
        return np.sqrt((values + rng.normal(0, s, values.shape)) ** 2 + rng.normal(0, s, values.shape) ** 2)
    if modality == "CT":
        return values + rng.normal(0, 3.0 * f, values.shape)
    rel = 0.05 if modality == "PET" else 0.08
    return np.clip(values * (1 + rng.normal(0, rel * f, values.shape)), 0, None)


def make_volume(subject: Subject, modality: str, grid: Grid, seed: int) -> np.ndarray:
    """The phantom volume of one modality on ``grid``, as float32 ``(X, Y, Z)`` (x = columns, z ascending).

    Values are physical: arbitrary T1 units (MRI), HU (CT), Bq/ml (PET), counts (SPECT). PET and SPECT are
    evaluated on a 2x finer grid, blurred to their resolution and averaged down (no aliasing).
    """
    rng = np.random.default_rng([seed, subject.index, MODALITIES.index(modality), 7])
    x, y, z = grid.axes()
    (dr, dc, dz), sub = grid.spacing, 2 if modality in ("PET", "SPECT") else 1
    if sub > 1:
        offsets = [(np.arange(sub) - (sub - 1) / 2) / sub * d for d in (dc, dr, dz)]
        x, y, z = ((a[:, None] + o[None, :]).ravel() for a, o in zip((x, y, z), offsets, strict=True))
    pts = np.stack(np.meshgrid(x, y, z, indexing="ij"), axis=-1).reshape(-1, 3).astype(np.float32)
    labels = tissue_labels(subject, pts)
    vol = _values(subject, modality, labels, pts).reshape(len(x), len(y), len(z))
    if modality in ("PET", "SPECT"):  # emission noise before the blur: correlated, like a reconstruction
        vol = _noise(modality, vol, rng)
    # at least half a voxel of blur: a stand-in for partial volume at the tissue boundaries
    vol = _smooth(vol, (dc / sub, dr / sub, dz / sub), max(BLUR_MM[modality], 0.5 * min(dr, dc) / sub))
    if sub > 1:
        X, Y, Z = grid.shape[1], grid.shape[0], grid.shape[2]
        vol = vol.reshape(X, sub, Y, sub, Z, sub).mean(axis=(1, 3, 5))
    else:
        vol = _noise(modality, vol, rng)
    return vol.astype(np.float32)


def render_slices(subject: Subject, z: float, seed: int) -> dict[str, np.ndarray]:
    """``PNG_SIZE`` square axial slices at scanner height ``z`` (mm) of every modality, float32 ``(rows,
    columns)``: rows run anterior to posterior, columns patient right to left (radiological view)."""
    axis = (np.arange(PNG_SIZE) - (PNG_SIZE - 1) / 2) * PNG_PIXEL_MM
    x, y = np.meshgrid(axis, axis, indexing="xy")
    pts = np.stack([x.ravel(), y.ravel(), np.full(x.size, z)], axis=1)
    labels = tissue_labels(subject, pts)
    out = {}
    for modality in MODALITIES:
        rng = np.random.default_rng([seed, subject.index, MODALITIES.index(modality), int(round(z * 10)) + 100000])
        values = _values(subject, modality, labels, pts).reshape(PNG_SIZE, PNG_SIZE)
        if modality in ("PET", "SPECT"):
            values = _noise(modality, values, rng, weak=True)
        values = _smooth(values.T, (PNG_PIXEL_MM, PNG_PIXEL_MM), BLUR_MM[modality]).T
        out[modality] = _noise(modality, values, rng, weak=True) if modality in ("MRI", "CT") else values
    return out
