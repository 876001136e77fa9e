"""Optional rigid registration (SimpleITK, Mattes MI): a phantom pair moved by a known rigid transform is
brought back within 1 mm and 1 degree; the switch (transform argument, datalist field) works."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Orientationd

from hkafusion_monai.data.phantom import PROFILES, make_subject, make_volume
from hkafusion_monai.transforms import LoadFusionVolumed, RigidRegisterd, ScaleIntensityByModalityd, to_sitk_image

pytestmark = pytest.mark.usefixtures("one_thread")


def rigid(angles_deg, shift_mm) -> np.ndarray:
    """A 4x4 rotation about x, then y, then z (degrees), then a shift (mm)."""
    a, b, c = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    out = np.eye(4)
    out[:3, :3] = rz @ ry @ rx
    out[:3, 3] = shift_mm
    return out


def residual(recovered: np.ndarray, truth: np.ndarray, mri: MetaTensor) -> tuple[float, float]:
    """Rotation angle (degrees) and shift at the MRI's centre (mm) of ``recovered @ truth``'s error."""
    error = recovered @ truth
    angle = np.degrees(np.arccos(np.clip((np.trace(error[:3, :3]) - 1) / 2, -1.0, 1.0)))
    centre = mri.affine.numpy() @ np.r_[(np.asarray(mri.shape[1:]) - 1) / 2, 1.0]
    return float(angle), float(np.linalg.norm(error @ centre - centre))


def prepared_pair(phantom: Path, other: str) -> dict:
    """The chain up to registration: loaded, oriented and scaled to [0, 1]."""
    item = {
        "mri": phantom / "nifti" / "sub-000" / "mri.nii.gz",
        "other": phantom / "nifti" / "sub-000" / f"{other}.nii.gz",
    }
    d = LoadFusionVolumed(["mri", "other"])(item)
    d["modality"] = other.upper()
    return ScaleIntensityByModalityd()(Orientationd(["mri", "other"], axcodes="PLS", labels=None)(d))


def test_sitk_image_has_the_same_world_geometry(phantom):
    d = prepared_pair(phantom, "pet")
    img = d["other"]
    sitk_img = to_sitk_image(img)
    for index in ((0, 0, 0), (5, 7, 3), (39, 2, 19)):
        ras = (img.affine.numpy() @ np.r_[index, 1.0])[:3]
        lps = np.asarray(sitk_img.TransformIndexToPhysicalPoint(index))
        np.testing.assert_allclose(lps, ras * [-1, -1, 1], atol=1e-4)
        assert sitk_img.GetPixel(index) == pytest.approx(float(img[0][index]))


def test_registration_recovers_a_known_rigid_motion(phantom):
    d = prepared_pair(phantom, "pet")  # PET: other in-plane resolution and slice spacing than the MRI
    original = d["other"].affine.numpy().copy()
    truth = rigid([4.0, -3.0, 6.0], [5.0, -4.0, 3.0])
    moved = d["other"].clone()
    moved.affine = torch.as_tensor(truth @ original)
    start = residual(np.eye(4), truth, d["mri"])
    assert start[0] > 7 and start[1] > 6  # really misaligned to begin with
    out = RigidRegisterd(["mri", "other"], enabled=True, num_threads=1)({**d, "other": moved})
    registered = out["other"]
    angle, shift = residual(registered.meta["rigid_registration"], truth, d["mri"])
    assert angle < 1.0 and shift < 1.0, (angle, shift)
    np.testing.assert_allclose(registered.affine.numpy(), registered.meta["rigid_registration"] @ truth @ original)
    torch.testing.assert_close(registered.as_tensor(), moved.as_tensor())  # voxels untouched: one resampling later
    assert registered.meta["registration_metric"] < 0


def test_registration_is_off_by_default_and_switched_by_argument_or_datalist_field(phantom):
    d = prepared_pair(phantom, "pet")
    quick = {"shrink_factors": (2,), "smoothing_sigmas": (1.0,), "iterations": 3, "num_threads": 1}
    out = RigidRegisterd(["mri", "other"], **quick)(d)
    assert out["other"] is d["other"] and "rigid_registration" not in out["other"].meta
    out = RigidRegisterd(["mri", "other"], **quick)({**d, "register": True})  # the datalist field
    assert "rigid_registration" in out["other"].meta
    assert not np.allclose(out["other"].affine.numpy(), d["other"].affine.numpy())
    out = RigidRegisterd(["mri", "other"], enabled=True, **quick)({**d, "register": "false"})  # the item wins
    assert "rigid_registration" not in out["other"].meta
    out = RigidRegisterd(["mri", "other"], enabled=True, flag_key=None, **quick)({**d, "register": False})
    assert "rigid_registration" in out["other"].meta
    with pytest.raises(ValueError, match="init must be"):
        RigidRegisterd(["mri", "other"], enabled=True, init="nonsense")(d)


def _volume(subject, modality: str, grid) -> MetaTensor:
    return MetaTensor(
        torch.from_numpy(make_volume(subject, modality, grid, seed=0))[None],
        affine=torch.as_tensor(grid.nifti_affine()),
    )


@pytest.mark.slow
@pytest.mark.parametrize("size", ["small", "standard"])
def test_registration_recovers_known_motions_ct_and_pet(size):
    grids = PROFILES[size]
    for index in range(2):
        subject = make_subject(0, index)
        mri = _volume(subject, "MRI", grids["MRI"])
        for modality in ("CT", "PET"):
            d = ScaleIntensityByModalityd()(
                {"mri": mri, "other": _volume(subject, modality, grids[modality]), "modality": modality}
            )
            for truth in (rigid([4, -3, 6], [5, -4, 3]), rigid([-5, 4, -3], [-3, 6, -2])):
                moved = d["other"].clone()
                moved.affine = torch.as_tensor(truth @ d["other"].affine.numpy())
                out = RigidRegisterd(["mri", "other"], enabled=True, num_threads=1)({**d, "other": moved})
                angle, shift = residual(out["other"].meta["rigid_registration"], truth, mri)
                assert angle < 1.0 and shift < 1.0, (size, index, modality, angle, shift)
