"""The analytic head phantom: subjects (pose and anatomy from the seed), tissue labels at scanner points, and
the voxel grids of each modality."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "AIR",
    "CSF",
    "DEEP_GM",
    "DIPLOE",
    "EYE",
    "GM",
    "LESION",
    "MODALITIES",
    "PROFILES",
    "SCALP",
    "SKULL",
    "VENTRICLE",
    "VERSION",
    "WM",
    "Grid",
    "Subject",
    "make_subject",
    "tissue_labels",
]

VERSION = 1  # the data set's version: in every UID's entropy and in phantom.json
MODALITIES = ("MRI", "CT", "PET", "SPECT")

# tissue labels of the analytic phantom
AIR, SCALP, SKULL, DIPLOE, CSF, GM, WM, DEEP_GM, VENTRICLE, EYE, LESION = range(11)


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
        head: np.ndarray = q @ (self.rotation / self.scale).astype(np.float32)
        return head


def _rotation(angles_deg: np.ndarray) -> np.ndarray:
    a, b, c = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    rotation: np.ndarray = rz @ ry @ rx
    return rotation


def make_subject(seed: int, index: int) -> Subject:
    """The ``index``-th phantom subject of ``seed``."""
    rng = np.random.default_rng([seed, index])
    n_lesions = int(rng.integers(2, 4))
    lesions: list[list[float]] = []
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
    pattern: np.ndarray = np.mean(np.sin(u @ waves[:, :3].T + waves[:, 3]), axis=1) * 1.6
    return pattern


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
