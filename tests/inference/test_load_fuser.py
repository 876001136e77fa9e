"""The notebook API ``from hkafusion_monai import load_fuser``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hkafusion_monai import load_fuser
from hkafusion_monai.inference import Fuser
from tests.helpers import BUNDLE, REPO, random_checkpoint


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_checkpoint(tmp_path_factory)


@pytest.fixture(scope="module")
def fuser(ckpt: Path) -> Fuser:
    return load_fuser(bundle_dir=BUNDLE, task="mri_pet", weights=ckpt, device="cpu")


def _pair(h: int = 40, w: int = 56) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    mri = rng.integers(0, 256, (h, w), dtype=np.uint8)
    pet = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return mri, pet


def test_import_is_lazy() -> None:
    code = "import sys, hkafusion_monai; assert 'hkafusion_monai.inference' not in sys.modules; print('ok')"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True).stdout == "ok\n"


def test_2d_uint8_in_uint8_out_float_in_float_out(fuser: Fuser) -> None:
    mri, pet = _pair()
    before = (mri.copy(), pet.copy())
    rgb = fuser(mri, pet)
    assert rgb.shape == (40, 56, 3) and rgb.dtype == np.uint8
    grey = fuser(mri, pet, colour=False)
    assert grey.shape == (40, 56) and grey.dtype == np.uint8
    assert fuser(mri, pet[..., 0]).shape == (40, 56)  # grey other: grey result
    as_float = fuser(mri.astype(np.float32) / 255, pet.astype(np.float32) / 255)
    assert as_float.dtype == np.float32 and as_float.shape == (40, 56, 3)
    assert 0.0 <= as_float.min() and as_float.max() <= 1.0
    # the same pixels: uint8 out is the one quantisation of the float result
    np.testing.assert_array_equal(np.round(as_float * 255).astype(np.uint8), rgb)
    assert fuser(torch.from_numpy(mri), torch.from_numpy(pet)).shape == (40, 56, 3)  # tensors too
    np.testing.assert_array_equal(mri, before[0])
    np.testing.assert_array_equal(pet, before[1])  # inputs never modified


def test_volumes_slice_by_slice(fuser: Fuser) -> None:
    rng = np.random.default_rng(1)
    mri = rng.normal(500, 100, (32, 40, 3)).astype(np.float32)  # raw intensities
    pet = rng.gamma(2.0, 1000.0, (32, 40, 3)).astype(np.float64)
    fused = fuser(mri, pet)
    assert fused.shape == (32, 40, 3) and fused.dtype == np.float32
    assert 0.0 <= fused.min() and fused.max() <= 1.0
    # slice by slice along the last axis: equal slices in, equal slices out
    same = fuser(mri[..., 1:2].repeat(3, axis=2), pet[..., 1:2].repeat(3, axis=2))
    np.testing.assert_array_equal(same[..., 0], same[..., 2])
    int_volume = fuser(mri.astype(np.int16), pet.astype(np.int32))
    assert int_volume.dtype == np.float32
    # (H, W, 3) uint8 is a picture, never a volume: a grey one (a colour MRI is refused, docs/failure_behaviour.md)
    grey_rgb = (mri[..., :1] / 4).astype(np.uint8).repeat(3, axis=2)
    assert fuser(grey_rgb, pet.astype(np.uint8)).dtype == np.uint8


def test_volume_slices_reach_the_network_as_given() -> None:
    """An (H, W, D) array volume is fused slice by slice with each (H, W) slice as given (its affine carries the
    chain's own axis codes, so the orientation step transposes nothing)."""

    class Same(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[:, :1]

    class ShiftRows(torch.nn.Module):  # not transpose-equivariant: moves each slice down one row (along H)
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.roll(x[:, :1], 1, dims=-2)

    rng = np.random.default_rng(2)
    mri = rng.normal(500, 100, (24, 40, 2)).astype(np.float32)
    pet = rng.gamma(2.0, 1000.0, (24, 40, 2)).astype(np.float32)
    same = Fuser(Same())(mri, pet)
    np.testing.assert_allclose(Fuser(ShiftRows())(mri, pet), np.roll(same, 1, axis=0))


def test_checkpoint_saver_dict_and_missing_weights(tmp_path: Path, ckpt: Path) -> None:
    full = tmp_path / "checkpoint_epoch=1.pt"
    torch.save({"model": torch.load(ckpt, weights_only=True), "optimizer": {}}, full)
    mri, pet = _pair(32, 32)
    a = load_fuser(BUNDLE, weights=full, device="cpu")(mri, pet)
    b = load_fuser(BUNDLE, weights=ckpt, device="cpu")(mri, pet)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(FileNotFoundError, match="no HKAFusion checkpoint at"):
        load_fuser(tmp_path / "bundle-without-weights")
    wrong = tmp_path / "wrong.pt"
    torch.save({"conv.weight": torch.zeros(1)}, wrong)
    with pytest.raises(ValueError, match="not a checkpoint of this network"):
        load_fuser(BUNDLE, weights=wrong)


_M, _P = _pair(16, 24)


@pytest.mark.parametrize(
    "mri, other, error, message",
    [
        (_M, _P[:8], ValueError, "shape mismatch"),
        (_M.astype(np.float32) * np.nan, _P, ValueError, "NaN"),
        (np.full((16, 24), np.inf, np.float32), _P, ValueError, "inf"),
        (_M[0], _P, ValueError, "expected 2-D images"),
        (_M[None, None], _P, ValueError, "expected 2-D images"),
        (_M, np.concatenate([_P, _P[..., :1]], axis=-1), ValueError, "RGBA"),
        (np.zeros((0, 24), np.uint8), _P, ValueError, "empty"),
        (_M.tolist(), _P, TypeError, "numpy array"),
        (_M.astype(bool), _P, TypeError, "dtype bool"),
        (_M.astype(np.float32), _P, ValueError, r"must lie in \[0, 1\]"),
        (np.zeros((8, 8, 4)), np.zeros((8, 8, 5)), ValueError, "shape mismatch"),
    ],
)
def test_bad_input(fuser: Fuser, mri, other, error, message: str) -> None:
    with pytest.raises(error, match=message):
        fuser(mri, other)
