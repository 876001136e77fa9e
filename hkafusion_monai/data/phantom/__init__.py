"""Synthetic, co-registered MRI / CT / PET / SPECT head data: the project's demo data.

``python -m hkafusion_monai.data.phantom --out DIR [--subjects N] [--seed S]`` writes, from an analytic
3-D head phantom, a small deterministic set (same arguments, same bytes):

- real DICOM series per subject: MR (T1-like), CT (HU, bright skull) and PET (Bq/ml, hot lesions) as
  single-frame images, SPECT (counts) as one multi-frame NM Image object (``RECON TOMO``), as SPECT systems
  export reconstructions; one study and one frame of reference per subject; PET and SPECT have their own
  in-plane resolution and slice spacing, CT its own grid and superior-to-inferior slice order, so
  resampling and reorientation are exercised;
- the same volumes as NIfTI (holding exactly the values the DICOM objects hold);
- 2-D PNG pairs of axial slices in the Harvard layout and look (256x256; MRI and CT grey, PET and SPECT
  pseudo-colour RGB), rendered from the same phantom at 0.8 mm pixels;
- datalists (the format of :mod:`hkafusion_monai.data.datalist`) for each kind and modality, and a
  ``phantom.json`` manifest.

Layout (``sub-000`` ... and the split of subjects into training, validation and test in ``phantom.json``)::

    DIR/dicom/sub-000/{MR,CT,PT}/IM0001.dcm ..., DIR/dicom/sub-000/NM/NM0001.dcm
    DIR/nifti/sub-000/{mri,ct,pet,spect}.nii.gz
    DIR/png/mri_{ct,pet,spect}/{train,validation,test}/{MRI,CT|PET|SPECT}/sub-000_z+012.png
    DIR/datalists/{png,nifti,dicom}_{ct,pet,spect}.json
    DIR/phantom.json

Everything is written into a temporary folder beside ``DIR`` and renamed into place at the end; an
existing, non-empty ``DIR`` is kept unless ``--overwrite`` is given.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from pydicom.uid import CTImageStorage, MRImageStorage, NuclearMedicineImageStorage, PositronEmissionTomographyImageStorage

from hkafusion_monai.io.atomic import atomic_write_dir
from hkafusion_monai.utils.quantisation import to_uint8
from hkafusion_monai.utils.tasks import DICOM_MODALITIES

__all__ = [
    "PROFILES",
    "Grid",
    "Subject",
    "dicom_values",
    "ensure_phantom",
    "main",
    "make_subject",
    "make_volume",
    "render_slices",
    "split_of",
    "tissue_labels",
    "to_png_array",
    "write_dicom_series",
    "write_phantom",
]

VERSION = 1
MODALITIES = ("MRI", "CT", "PET", "SPECT")

# tissue labels of the analytic phantom
AIR, SCALP, SKULL, DIPLOE, CSF, GM, WM, DEEP_GM, VENTRICLE, EYE, LESION = range(11)
# value of each label per modality: T1-like MR (a.u.), CT (HU), FDG-like PET (Bq/ml), perfusion SPECT (counts)
TISSUE_VALUES = {
    "MRI": (0, 850, 90, 420, 160, 500, 780, 560, 150, 120, 300),
    "CT": (-1000, 35, 1500, 700, 8, 40, 28, 38, 6, 12, 62),
    "PET": (0, 1200, 400, 500, 250, 9500, 3200, 11000, 250, 600, 30000),
    "SPECT": (0, 12, 8, 10, 6, 100, 45, 110, 6, 10, 220),
}
# resolution per modality: Gaussian sigma in mm (PET 6 mm and SPECT 11 mm FWHM)
BLUR_MM = {"MRI": 0.6, "CT": 0.5, "PET": 6.0 / 2.355, "SPECT": 11.0 / 2.355}
# PNG look: (low, high) of the value range mapped to 0..255 (CT: the brain window)
PNG_RANGE = {"MRI": (0.0, 900.0), "CT": (0.0, 80.0), "PET": (0.0, 14000.0), "SPECT": (0.0, 130.0)}
PNG_SIZE, PNG_PIXEL_MM = 256, 0.8
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


@dataclass(frozen=True)
class Grid:
    """An axial voxel grid in patient coordinates (LPS, mm), centred on the scanner origin.

    Arrays on the grid are ``(rows, columns, slices)``: rows run anterior to posterior (+y), columns
    patient right to left (+x), slices inferior to superior (+z) or, with ``descending``, the reverse
    (the order the DICOM files are numbered in).
    """

    shape: tuple[int, int, int]  # rows, columns, slices
    spacing: tuple[float, float, float]  # row spacing (y), column spacing (x), slice spacing (z)
    descending: bool = False

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Coordinates (mm) of the columns (x), rows (y) and slices (z), slices in ascending z."""
        (r, c, s), (dr, dc, dz) = self.shape, self.spacing
        return (np.arange(c) - (c - 1) / 2) * dc, (np.arange(r) - (r - 1) / 2) * dr, (np.arange(s) - (s - 1) / 2) * dz

    def nifti_affine(self) -> np.ndarray:
        """RAS affine of the ``(x, y, z)`` array (columns, rows, ascending slices) written to NIfTI."""
        x, y, z = self.axes()
        dr, dc, dz = self.spacing
        return np.array([[-dc, 0, 0, -x[0]], [0, -dr, 0, -y[0]], [0, 0, dz, z[0]], [0, 0, 0, 1.0]])


# grids of each modality; "standard" is the CLI default, "small" the tests' size
PROFILES: dict[str, dict[str, Grid]] = {
    "standard": {
        "MRI": Grid((80, 80, 32), (2.9, 2.9, 5.0)),
        "CT": Grid((72, 72, 28), (3.2, 3.2, 5.8), descending=True),
        "PET": Grid((56, 56, 24), (4.2, 4.2, 6.8)),
        "SPECT": Grid((40, 40, 30), (6.0, 6.0, 6.0)),
    },
    "small": {
        "MRI": Grid((64, 64, 32), (3.6, 3.6, 5.0)),
        "CT": Grid((60, 60, 27), (4.0, 4.0, 6.0), descending=True),
        "PET": Grid((40, 40, 20), (6.0, 6.0, 8.0)),
        "SPECT": Grid((32, 32, 24), (7.5, 7.5, 7.0)),
    },
}


@dataclass
class Subject:
    """One phantom head: its pose in the scanner and its own anatomy (all derived from the seed)."""

    index: int
    rotation: np.ndarray  # (3, 3), head to scanner
    translation: np.ndarray  # (3,), mm
    scale: np.ndarray  # (3,), head size factors
    lesions: np.ndarray  # (K, 4): centre (head coordinates, mm) and radius
    folds: np.ndarray  # (3, F, 4): wave vectors and phases of the cortical folding patterns

    def to_head(self, points: np.ndarray) -> np.ndarray:
        """Scanner (LPS) points ``(..., 3)`` to head coordinates of the unscaled phantom."""
        q = points.astype(np.float32) - self.translation.astype(np.float32)
        return q @ (self.rotation / self.scale).astype(np.float32)


def _rotation(angles_deg: np.ndarray) -> np.ndarray:
    a, b, c = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def make_subject(seed: int, index: int) -> Subject:
    """The ``index``-th phantom subject of ``seed``."""
    rng = np.random.default_rng([seed, index])
    n_lesions = int(rng.integers(2, 4))
    lesions = []
    while len(lesions) < n_lesions:  # inside the white matter / deep grey region, off the midline
        c = rng.uniform([-40, -50, -15], [40, 50, 45])
        if np.sum((c / [45, 60, 55]) ** 2) < 1 and abs(c[0]) > 12:
            lesions.append([*c, rng.uniform(5, 10)])
    folds = []
    for low, high in ((9, 15), (16, 26), (10, 18)):  # brain surface, white-matter fingers, sulci
        k = rng.normal(size=(6, 3))
        k *= rng.uniform(low, high, size=(6, 1)) / np.linalg.norm(k, axis=1, keepdims=True)
        folds.append(np.concatenate([k, rng.uniform(0, 2 * np.pi, size=(6, 1))], axis=1))
    return Subject(
        index=index,
        rotation=_rotation(rng.uniform(-4, 4, size=3)),
        translation=rng.uniform(-5, 5, size=3),
        scale=rng.uniform(0.93, 1.07, size=3),
        lesions=np.asarray(lesions, dtype=np.float64),
        folds=np.asarray(folds, dtype=np.float64),
    )


def _fold(u: np.ndarray, waves: np.ndarray) -> np.ndarray:
    """A smooth pattern in [-1, 1] over directions ``u`` (unit vectors ``(N, 3)``): the cortical folds."""
    return np.mean(np.sin(u @ waves[:, :3].T + waves[:, 3]), axis=1) * 1.6


def tissue_labels(subject: Subject, points: np.ndarray) -> np.ndarray:
    """Tissue label (``AIR`` ... ``LESION``) at scanner points ``(N, 3)`` (LPS, mm)."""
    p = subject.to_head(points)

    def inside(q, axes, centre):
        q = (q - np.asarray(centre, np.float32)) * (1 / np.asarray(axes, np.float32))
        return np.einsum("ij,ij->i", q, q) < 1

    # the head: skull and scalp, nose and ears (these break its symmetry, which rigid registration needs)
    head = inside(p, (72, 92, 85), (0, 0, 0)) | inside(p, (11, 18, 22), (0, -90, -42))
    for side in (-1, 1):
        head |= inside(p, (5, 13, 20), (73 * side, 8, -15))
    head = np.flatnonzero(head)
    labels = np.zeros(len(p), dtype=np.uint8)
    p = p[head]  # everything else is air: work on the head's points only

    def rho(axes, centre=(0.0, 0.0, 0.0)):  # the ellipsoid "radius": < 1 inside
        q = (p - np.asarray(centre, np.float32)) * (1 / np.asarray(axes, np.float32))
        return np.sqrt(np.einsum("ij,ij->i", q, q))

    def fold(idx, waves):  # the folding patterns only where a boundary can move: cheaper than everywhere
        q = p[idx]
        return _fold(q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-3), waves)

    lab = np.full(len(p), SCALP, dtype=np.uint8)
    skull = rho((67, 87, 80))
    lab[skull < 1] = SKULL
    lab[(skull < 0.955) & (skull > 0.925)] = DIPLOE
    for side in (-1, 1):  # frontal sinuses: air in the frontal bone
        lab[(skull < 1) & (rho((9, 7, 10), (10 * side, -80, 22)) < 1)] = AIR
    lab[rho((60, 80, 73)) < 1] = CSF
    brain = rho((57, 77, 70))
    near = np.flatnonzero(np.abs(brain - 1) < 0.03)
    in_brain = brain < 1
    in_brain[near] = brain[near] < 1 + 0.012 * fold(near, subject.folds[0])
    lab[in_brain] = GM
    outer = np.flatnonzero(in_brain & (brain > 0.8))
    lab[outer[np.abs(fold(outer, subject.folds[2])) < 0.07]] = CSF  # sulci: thin sheets, a zero set
    wm = rho((49, 66, 60))
    near = np.flatnonzero(np.abs(wm - 1) < 0.16)
    in_wm = wm < 1
    in_wm[near] = wm[near] < 1 + 0.1 * fold(near, subject.folds[1])
    lab[in_wm] = WM
    cerebellum = rho((40, 22, 18), (0, 35, -45))
    lab[(cerebellum < 1.1) & (lab >= GM)] = CSF  # the tentorium's cistern around it
    lab[cerebellum < 1] = GM
    lab[(cerebellum < 0.9) & (np.abs(p[:, 2] + 45 + 3 * np.sin(p[:, 1] / 3.0)) < 2.5)] = WM  # folia
    lab[rho((11, 11, 30), (0, 12, -62)) < 1] = WM  # brainstem
    for side in (-1, 1):
        lab[rho((8, 12, 10), (18 * side, 4, 2)) < 1] = DEEP_GM
        lab[rho((6, 22, 9), (9 * side, -2, 14)) < 1] = VENTRICLE
    fissure = in_brain & (np.abs(p[:, 0]) < 1.5) & (p[:, 2] > -5) & ~((np.abs(p[:, 1]) < 25) & (p[:, 2] < 25))
    lab[fissure] = CSF
    for side in (-1, 1):
        lab[rho((10, 10, 10), (31 * side, -66, -45)) < 1] = EYE
    for x, y, z, r in subject.lesions:
        lab[rho((r, r, r), (x, y, z)) < 1] = LESION
    labels[head] = lab
    return labels


def _smooth(values: np.ndarray, spacing_xyz: Sequence[float], sigma_mm: float) -> np.ndarray:
    """Gaussian blur (sigma in mm) of an ``(X, Y, Z)`` or ``(X, Y)`` array with the given spacing."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(values.T.astype(np.float32)))  # SimpleITK: (z,) y, x
    img.SetSpacing([float(s) for s in spacing_xyz[: values.ndim]])
    return sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(img, float(sigma_mm))).T


def _values(subject: Subject, modality: str, labels: np.ndarray, points: np.ndarray) -> np.ndarray:
    table = np.asarray(TISSUE_VALUES[modality], dtype=np.float32)
    values = table[labels]
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


def to_png_array(modality: str, values: np.ndarray) -> np.ndarray:
    """8-bit PNG pixels: grey ``(H, W)`` for MRI and CT, pseudo-colour RGB ``(H, W, 3)`` for PET and SPECT."""
    lo, hi = PNG_RANGE[modality]
    v = np.clip((values - lo) / (hi - lo), 0.0, 1.0)
    if modality in COLOUR_MAPS:
        table = np.asarray(COLOUR_MAPS[modality], dtype=np.float64)
        v = np.stack([np.interp(v, table[:, 0], table[:, i]) for i in (1, 2, 3)], axis=-1)
    return to_uint8(v)


# ------------------------------------------------------------------------------------------- DICOM


def _uid(seed: int, *parts: object):
    from pydicom.uid import generate_uid

    return generate_uid(entropy_srcs=["hkafusion-monai phantom", str(VERSION), str(seed), *map(str, parts)])


def _patient_id(seed: int, index: int) -> str:
    return f"PHANTOM-{seed}-{index:03d}"


_SOP_CLASSES = {
    "MRI": MRImageStorage,
    "CT": CTImageStorage,
    "PET": PositronEmissionTomographyImageStorage,
    "SPECT": NuclearMedicineImageStorage,
}
_DICOM_MODALITY = {name: tag for tag, name in DICOM_MODALITIES.items()}  # "MRI" -> "MR", ...
_SERIES = {
    "MRI": (1, "T1 3D phantom"),
    "CT": (2, "CT head phantom"),
    "PET": (3, "FDG PET phantom"),
    "SPECT": (4, "HMPAO SPECT phantom"),
}
_STUDY_DATE, _STUDY_TIME = "20240102", "093000"


def _common_modules(ds, subject: Subject, modality: str, seed: int) -> None:
    """Patient, General Study, General Series, Frame of Reference and General Equipment of a phantom series."""
    number, description = _SERIES[modality]
    # Patient
    ds.PatientName = f"Phantom^{subject.index:03d}"
    ds.PatientID = _patient_id(seed, subject.index)
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    # General Study
    ds.StudyInstanceUID = _uid(seed, subject.index, "study")
    ds.StudyDate, ds.StudyTime = _STUDY_DATE, _STUDY_TIME
    ds.ReferringPhysicianName = ""
    ds.StudyID = f"{subject.index + 1}"
    ds.AccessionNumber = ""
    ds.StudyDescription = "hkafusion-monai synthetic head phantom"
    # General Series
    ds.Modality = _DICOM_MODALITY[modality]
    ds.SeriesInstanceUID = _uid(seed, subject.index, modality, "series")
    ds.SeriesNumber = number
    ds.SeriesDescription = description
    ds.SeriesDate, ds.SeriesTime = _STUDY_DATE, _STUDY_TIME
    ds.PatientPosition = "HFS"
    # Frame of Reference
    ds.FrameOfReferenceUID = _uid(seed, subject.index, "frame")
    ds.PositionReferenceIndicator = ""
    # General Equipment
    ds.Manufacturer = "hkafusion-monai"
    ds.ManufacturerModelName = "analytic phantom"
    ds.SoftwareVersions = f"phantom v{VERSION}"


def _file_meta(ds) -> None:
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta


def _nm_slope(volume: np.ndarray) -> float:
    """The NM object's one rescale slope: counts = stored value * slope, the maximum stored as 32767."""
    return float(f"{max(float(np.clip(volume, 0, None).max()), 1e-6) / 32767.0:.8g}")


def write_nm_series(folder: Path, subject: Subject, grid: Grid, volume: np.ndarray, seed: int) -> None:
    """Write a SPECT ``volume`` (``(X, Y, Z)``, z ascending, counts) as one multi-frame **NM Image Storage**
    object, as SPECT systems export a reconstruction: ``ImageType`` ``ORIGINAL\\PRIMARY\\RECON TOMO\\EMISSION``,
    one frame per slice (``FrameIncrementPointer`` = Slice Vector), the first frame's position and the
    orientation in the Detector Information Sequence, ``SpacingBetweenSlices`` along the slice normal, counts
    stored as ``uint16`` with one ``RescaleSlope`` (``Units`` ``CNTS``).

    Modules: Patient, General Study, General Series, NM/PET Patient Orientation, Frame of Reference, General
    Equipment, General Image, Image Pixel, Multi-frame, NM Image Pixel, NM Multi-frame, NM Image, NM Isotope,
    NM Detector, NM TOMO Acquisition, NM Reconstruction, SOP Common. Explicit VR little endian.
    """
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence as DicomSequence

    folder.mkdir(parents=True, exist_ok=True)
    (dr, dc, dz), n_slices = grid.spacing, grid.shape[2]
    x, y, z = grid.axes()
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = _SOP_CLASSES["SPECT"]
    ds.SOPInstanceUID = _uid(seed, subject.index, "SPECT", "instance")
    _common_modules(ds, subject, "SPECT", seed)
    del ds.PatientPosition  # NM: the NM/PET Patient Orientation module says it instead
    ds.Laterality = ""  # type 2C: a head is an unpaired body part, but dciodvfy cannot evaluate the condition
    # NM/PET Patient Orientation (type 2)
    ds.PatientOrientationCodeSequence = DicomSequence()
    ds.PatientGantryRelationshipCodeSequence = DicomSequence()
    # General Image, NM Image
    ds.InstanceNumber = 1
    ds.ContentDate, ds.ContentTime = _STUDY_DATE, _STUDY_TIME
    ds.AcquisitionDate, ds.AcquisitionTime = _STUDY_DATE, "101500"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "RECON TOMO", "EMISSION"]
    ds.ImageID = ""
    ds.LossyImageCompression = "00"
    ds.CountsAccumulated = int(np.round(np.clip(volume, 0, None).sum()))
    # Multi-frame and NM Multi-frame: one frame per reconstructed slice
    ds.NumberOfFrames = n_slices
    ds.FrameIncrementPointer = 0x00540080  # Slice Vector
    ds.SliceVector = list(range(1, n_slices + 1))
    ds.NumberOfSlices = n_slices
    ds.NumberOfEnergyWindows, ds.NumberOfDetectors, ds.NumberOfRotations = 1, 1, 1
    # NM Image Pixel
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = grid.shape[0], grid.shape[1]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelSpacing = [f"{dr:g}", f"{dc:g}"]
    slope = _nm_slope(volume)
    rwvm = Dataset()  # counts = stored value * slope: NM has no Modality LUT, its real-world value mapping says it
    rwvm.RealWorldValueFirstValueMapped, rwvm.RealWorldValueLastValueMapped = 0, 65535
    rwvm.RealWorldValueIntercept, rwvm.RealWorldValueSlope = 0.0, slope
    rwvm.LUTExplanation, rwvm.LUTLabel = "counts", "CNTS"
    unit = Dataset()
    unit.CodeValue, unit.CodingSchemeDesignator, unit.CodeMeaning = "{counts}", "UCUM", "Counts"
    rwvm.MeasurementUnitsCodeSequence = DicomSequence([unit])
    ds.RealWorldValueMappingSequence = DicomSequence([rwvm])
    # NM Isotope
    window = Dataset()
    window_range = Dataset()
    window_range.EnergyWindowLowerLimit, window_range.EnergyWindowUpperLimit = "126", "154"
    window.EnergyWindowRangeSequence = DicomSequence([window_range])
    window.EnergyWindowName = "Tc99m"
    ds.EnergyWindowInformationSequence = DicomSequence([window])
    drug = Dataset()
    drug.Radiopharmaceutical = "Tc-99m HMPAO"
    drug.RadionuclideCodeSequence = DicomSequence()
    drug.RadiopharmaceuticalStartTime = "091000"
    drug.RadionuclideTotalDose = "740"
    ds.RadiopharmaceuticalInformationSequence = DicomSequence([drug])
    # NM Detector: the geometry of the first frame of the reconstruction
    detector = Dataset()
    detector.ImagePositionPatient = [f"{x[0]:.4f}", f"{y[0]:.4f}", f"{z[0]:.4f}"]
    detector.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    detector.FocalDistance = "0"
    detector.ZoomFactor = ["1", "1"]
    detector.CenterOfRotationOffset = "0"
    detector.CollimatorGridName = "LEHR"
    detector.CollimatorType = "PARA"
    ds.DetectorInformationSequence = DicomSequence([detector])
    # NM TOMO Acquisition
    rotation = Dataset()
    rotation.StartAngle, rotation.AngularStep, rotation.RotationDirection = "0", "3", "CW"
    rotation.ScanArc, rotation.ActualFrameDuration, rotation.NumberOfFramesInRotation = "360", 20000, 120
    rotation.TableTraverse, rotation.TableHeight = "0", "0"
    ds.RotationInformationSequence = DicomSequence([rotation])
    ds.TypeOfDetectorMotion = "STEP AND SHOOT"
    # NM Reconstruction
    ds.SpacingBetweenSlices = f"{dz:g}"
    ds.SliceThickness = f"{dz:g}"
    ds.ReconstructionDiameter = f"{grid.shape[1] * dc:g}"
    ds.ConvolutionKernel = "Butterworth"
    # frames along +z: frame k is slice k of the volume, (rows, columns)
    stored = np.round(np.clip(volume, 0, None) / slope).astype(np.uint16)  # (X, Y, Z)
    ds.PixelData = np.ascontiguousarray(stored.transpose(2, 1, 0), dtype="<u2").tobytes()
    _file_meta(ds)
    ds.save_as(folder / "NM0001.dcm", enforce_file_format=True)


def write_dicom_series(
    folder: Path, subject: Subject, modality: str, grid: Grid, volume: np.ndarray, seed: int
) -> None:
    """Write ``volume`` (``(X, Y, Z)``, z ascending, physical values) as one single-frame DICOM series.

    Modules: Patient, General Study, General Series, Frame of Reference, General Equipment, General
    Image, Image Plane, Image Pixel, the modality's image module (MR Image, CT Image, or PET Series,
    PET Isotope, NM/PET Patient Orientation and PET Image) and SOP Common. Explicit VR little endian.
    """
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence as DicomSequence

    folder.mkdir(parents=True, exist_ok=True)
    (dr, dc, dz), n_slices = grid.spacing, grid.shape[2]
    x, y, z = grid.axes()
    order = range(n_slices - 1, -1, -1) if grid.descending else range(n_slices)
    if modality == "CT":
        stored = np.clip(np.round(volume) + 1024, 0, 4095).astype(np.uint16)
    elif modality == "MRI":
        stored = np.clip(np.round(volume), 0, 65535).astype(np.uint16)
    for instance, k in enumerate(order, start=1):
        ds = Dataset()
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.SOPClassUID = _SOP_CLASSES[modality]
        ds.SOPInstanceUID = _uid(seed, subject.index, modality, "instance", k)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        _common_modules(ds, subject, modality, seed)
        # General Image
        ds.InstanceNumber = instance
        ds.ContentDate, ds.ContentTime = _STUDY_DATE, _STUDY_TIME
        ds.AcquisitionNumber = 1
        # Image Plane: rows run along +y (posterior), columns along +x (patient left)
        ds.PixelSpacing = [f"{dr:g}", f"{dc:g}"]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [f"{x[0]:.4f}", f"{y[0]:.4f}", f"{z[k]:.4f}"]
        ds.SliceThickness = f"{dz:g}"
        ds.SliceLocation = f"{z[k]:.4f}"
        # Image Pixel
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = grid.shape[0], grid.shape[1]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        if modality == "MRI":
            ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions = "GR", "SP", ""
            ds.MRAcquisitionType = "3D"
            ds.RepetitionTime, ds.EchoTime, ds.EchoTrainLength = "8.1", "3.7", 1
            ds.MagneticFieldStrength = "3"
            ds.SpacingBetweenSlices = f"{dz:g}"
            pixels = stored[:, :, k].T  # (rows, columns)
        elif modality == "CT":
            ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "-1024", "1", "HU"
            ds.BitsStored, ds.HighBit = 12, 11
            ds.KVP = "120"
            pixels = stored[:, :, k].T
        else:
            ds.ImageType = ["ORIGINAL", "PRIMARY"]
            ds.Units, ds.CountsSource, ds.SeriesType = "BQML", "EMISSION", ["STATIC", "IMAGE"]
            ds.NumberOfSlices, ds.ImageIndex = n_slices, instance
            ds.CorrectedImage = ["ATTN", "DECY", "SCAT"]
            ds.DecayCorrection, ds.DecayFactor = "START", "1"
            ds.FrameReferenceTime, ds.ActualFrameDuration = "0", 600000
            ds.AcquisitionDate, ds.AcquisitionTime = _STUDY_DATE, "100000"
            ds.RandomsCorrectionMethod, ds.AttenuationCorrectionMethod = "DLYD", "CT"
            ds.ReconstructionMethod = "OSEM"
            ds.PatientOrientationCodeSequence = DicomSequence()
            ds.PatientGantryRelationshipCodeSequence = DicomSequence()
            isotope = Dataset()
            isotope.Radiopharmaceutical = "Fluorodeoxyglucose F^18^"
            isotope.RadiopharmaceuticalStartTime = "090000"
            isotope.RadionuclideTotalDose = "200000000"
            isotope.RadionuclideHalfLife = "6586.2"
            ds.RadiopharmaceuticalInformationSequence = DicomSequence([isotope])
            plane = np.clip(volume[:, :, k], 0, None)
            slope = max(float(plane.max()), 1e-6) / 32767.0
            ds.RescaleIntercept, ds.RescaleSlope = "0", f"{slope:.8g}"
            pixels = np.round(plane / float(ds.RescaleSlope)).astype(np.uint16).T
        ds.PixelData = np.ascontiguousarray(pixels, dtype=np.uint16).tobytes()
        _file_meta(ds)
        ds.save_as(folder / f"IM{instance:04d}.dcm", enforce_file_format=True)


def dicom_values(modality: str, volume: np.ndarray) -> np.ndarray:
    """The values a DICOM reader gets back from :func:`write_dicom_series` (after quantisation)."""
    if modality == "CT":
        return np.clip(np.round(volume) + 1024, 0, 4095).astype(np.float32) - 1024
    if modality == "MRI":
        return np.clip(np.round(volume), 0, 65535).astype(np.float32)
    if modality == "SPECT":  # one multi-frame NM object: one slope for the volume
        slope = _nm_slope(volume)
        return (np.round(np.clip(volume, 0, None) / slope) * slope).astype(np.float32)
    planes = np.clip(volume, 0, None)
    slopes = np.array(
        [float(f"{max(float(planes[:, :, k].max()), 1e-6) / 32767.0:.8g}") for k in range(planes.shape[2])]
    )
    return (np.round(planes / slopes) * slopes).astype(np.float32)


# ------------------------------------------------------------------------------------------- writing


def split_of(index: int, n: int) -> str:
    """The split of subject ``index`` of ``n``: the last ``max(1, round(n/5))`` are test, the
    ``max(1, round(n/10))`` before them validation (from 3 subjects on; 2 subjects: training and test)."""
    if n == 1:
        return "training"
    n_test = max(1, round(n / 5))
    n_val = max(1, round(n / 10)) if n >= 3 else 0
    if index >= n - n_test:
        return "test"
    return "validation" if index >= n - n_test - n_val else "training"


_PNG_SPLIT_FOLDER = {"training": "train", "validation": "validation", "test": "test"}


def _png_levels(n: int) -> np.ndarray:
    return np.linspace(-20.0, 50.0, n) if n > 1 else np.array([15.0])


def _write_subject(
    root: Path, subject: Subject, split: str, grids: dict[str, Grid], seed: int, png_slices: int
) -> None:
    import nibabel as nib
    from PIL import Image

    name = f"sub-{subject.index:03d}"
    for modality in MODALITIES:
        grid = grids[modality]
        volume = make_volume(subject, modality, grid, seed)
        folder = root / "dicom" / name / _DICOM_MODALITY[modality]
        if modality == "SPECT":
            write_nm_series(folder, subject, grid, volume, seed)
        else:
            write_dicom_series(folder, subject, modality, grid, volume, seed)
        volume = dicom_values(modality, volume)  # NIfTI holds exactly what the DICOM series holds
        data = volume.astype(np.int16) if modality in ("MRI", "CT") else volume.astype(np.float32)
        img = nib.Nifti1Image(data, grid.nifti_affine())
        if modality == "SPECT":  # int16 with a scale factor: a third of the size of float32 noise
            img.set_data_dtype(np.int16)
        img.header.set_xyzt_units("mm", "sec")
        img.set_sform(grid.nifti_affine(), code=1)
        img.set_qform(grid.nifti_affine(), code=1)
        out = root / "nifti" / name / f"{'mri' if modality == 'MRI' else modality.lower()}.nii.gz"
        out.parent.mkdir(parents=True, exist_ok=True)
        nib.save(img, out)
    for z in _png_levels(png_slices):
        stem = f"{name}_z{int(round(z)):+04d}"
        slices = {m: to_png_array(m, v) for m, v in render_slices(subject, float(z), seed).items()}
        for other in ("CT", "PET", "SPECT"):
            task = root / "png" / f"mri_{other.lower()}" / _PNG_SPLIT_FOLDER[split]
            for folder, m in (("MRI", "MRI"), (other, other)):
                path = task / folder / f"{stem}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(slices[m]).save(path)


def _write_datalists(root: Path, names: dict[str, list[str]], seed: int) -> dict[str, str]:
    """Write the datalists of every kind; the DICOM ones are what ``datalist dicom`` finds (tested), made
    here from the known UIDs so that the generator needs no MONAI import."""
    from ..datalist import DATALIST_SPLITS, datalist_from_folders, write_datalist

    written = {}
    lists = root / "datalists"
    for other in ("CT", "PET", "SPECT"):
        task, low = f"mri_{other.lower()}", other.lower()
        folders = {
            s: [f"png/{task}/{_PNG_SPLIT_FOLDER[s]}"]
            for s in DATALIST_SPLITS
            if (root / "png" / task / _PNG_SPLIT_FOLDER[s]).is_dir()
        }
        if folders:
            written[f"png_{low}"] = write_datalist(
                datalist_from_folders(folders, base_dir=root), lists / f"png_{low}.json"
            ).name
        nifti: dict = {"base_dir": str(root.resolve()), "modality": other}
        dicom: dict = {"base_dir": str(root.resolve()), "modality": other, "source": "dicom"}
        for s in DATALIST_SPLITS:
            nifti[s] = [
                {"mri": f"nifti/{n}/mri.nii.gz", "other": f"nifti/{n}/{low}.nii.gz", "modality": other}
                for n in names.get(s, [])
            ]
            dicom[s] = []
            for n in names.get(s, []):
                i = int(n.split("-")[1])
                dicom[s].append(
                    {
                        "mri": f"dicom/{n}/MR",
                        "other": f"dicom/{n}/{_DICOM_MODALITY.get(other, '')}",
                        "modality": other,
                        "mri_series_uid": str(_uid(seed, i, "MRI", "series")),
                        "other_series_uid": str(_uid(seed, i, other, "series")),
                        "study_uid": str(_uid(seed, i, "study")),
                        "patient_id": _patient_id(seed, i),
                    }
                )
        written[f"nifti_{low}"] = write_datalist(nifti, lists / f"nifti_{low}.json").name
        written[f"dicom_{low}"] = write_datalist(dicom, lists / f"dicom_{low}.json").name
    return written


def write_phantom(
    out: str | Path,
    subjects: int = 4,
    seed: int = 0,
    size: str = "standard",
    png_slices: int = 8,
    overwrite: bool = False,
) -> Path:
    """Write the phantom data set to ``out`` (see the module docstring); returns ``out``.

    Args:
        out: output folder; it must not exist, or be empty, unless ``overwrite``.
        subjects: number of subjects (split into training, validation and test by :func:`split_of`).
        seed: the seed of every random choice; the same arguments give the same files.
        size: a key of :data:`PROFILES` (``"standard"``, or ``"small"`` for tests).
        png_slices: PNG pairs per subject and task.
        overwrite: replace an existing non-empty ``out``.

    Raises:
        FileExistsError: ``out`` exists, is not empty (or is a file) and ``overwrite`` is not set.
    """
    out = Path(out)
    if subjects < 1 or png_slices < 0:
        raise ValueError(f"subjects must be >= 1 and png_slices >= 0, got {subjects} and {png_slices}")
    if size not in PROFILES:
        raise ValueError(f"size must be one of {sorted(PROFILES)}, got {size!r}")
    if out.exists() and not overwrite and (out.is_file() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not empty; pass --overwrite to replace it")
    grids = PROFILES[size]

    def write(folder: str) -> None:
        tmp = Path(folder)
        names: dict[str, list[str]] = {"training": [], "validation": [], "test": []}
        for i in range(subjects):
            split = split_of(i, subjects)
            names[split].append(f"sub-{i:03d}")
            _write_subject(tmp, make_subject(seed, i), split, grids, seed, png_slices)
        datalists = _write_datalists(tmp, names, seed)
        manifest = {
            "generator": "hkafusion_monai.data.phantom",
            "version": VERSION,
            "seed": seed,
            "size": size,
            "subjects": names,
            "png_slices_per_subject": png_slices,
            "png": {"size": [PNG_SIZE, PNG_SIZE], "pixel_mm": PNG_PIXEL_MM, "value_ranges": PNG_RANGE},
            "grids": {m: asdict(g) for m, g in grids.items()},
            "tissue_values": TISSUE_VALUES,
            "datalists": sorted(f"datalists/{n}" for n in datalists.values()),
        }
        (tmp / "phantom.json").write_text(json.dumps(manifest, indent=2) + "\n")

    # the whole data set appears at once, or nothing (an empty folder is replaced as if it were absent)
    return atomic_write_dir(out, write, overwrite=overwrite or out.exists())


def ensure_phantom(out: str | Path, subjects: int = 4, seed: int = 0) -> str:
    """The phantom folder ``out``, generated first when it holds no ``phantom.json`` (the demo overlay's data).

    An existing phantom is used as it is, whatever arguments made it; delete the folder to regenerate.
    """
    out = Path(out)
    if not (out / "phantom.json").is_file():
        write_phantom(out, subjects=subjects, seed=seed)
    return str(out)


def _size_of(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m hkafusion_monai.data.phantom",
        description="Write the synthetic MRI/CT/PET/SPECT head phantom: DICOM, NIfTI, PNG pairs, datalists.",
    )
    parser.add_argument("--out", required=True, help="output folder (must not exist or be empty)")
    parser.add_argument("--subjects", type=int, default=4, help="number of subjects (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--size", choices=sorted(PROFILES), default="standard", help="volume grids (default standard)")
    parser.add_argument("--png-slices", type=int, default=8, help="PNG pairs per subject and task (default 8)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing non-empty output folder")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        out = write_phantom(args.out, args.subjects, args.seed, args.size, args.png_slices, args.overwrite)
    except (FileExistsError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    n, size = _size_of(out)
    seconds = time.perf_counter() - start
    print(f"wrote {out}: {args.subjects} subject(s), {n} files, {size / 1e6:.1f} MB in {seconds:.1f} s")
    return 0

