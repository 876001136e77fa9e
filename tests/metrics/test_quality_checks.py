"""What the quality report adds: the Laplacian-pyramid baseline, the two reader's checks (bone brightness and
hot-spot contrast kept), the painted hot spots, the min-max stretch, and string booleans from the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hkafusion_monai.metrics import (
    BoneBrightnessMetric,
    bone_brightness_kept,
    hot_spot_contrast,
    hot_spot_contrast_kept,
)
from hkafusion_monai.networks import LaplacianPyramidFusion, PixelMax
from hkafusion_monai.transforms.contract import FusionPostprocessd, min_max_stretch
from hkafusion_monai.transforms.hot_spots import RandLesiond, paint_hot_spot, paint_lesion
from hkafusion_monai.utils import as_bool, path_or_flag


def _head(size: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A disc-shaped 'head': MRI with texture, a PET-like smooth uptake, both uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - size / 2, xx - size / 2)
    inside = r < size * 0.42
    mri = np.where(inside, 90 + 40 * np.sin(xx / 4.0) + rng.normal(0, 5, (size, size)), 0)
    pet = np.where(inside, 60 + 30 * np.exp(-((r / (size * 0.3)) ** 2)), 0)
    return np.clip(mri, 0, 255).astype(np.uint8), np.clip(pet, 0, 255).astype(np.uint8)


def test_laplacian_pyramid_of_identical_sources_is_the_source() -> None:
    """Fusing an image with itself reconstructs it exactly (the pyramid is a perfect code)."""
    mri, _ = _head(100)  # not a multiple of 2**levels: padded and cropped back
    x = torch.from_numpy(mri).float()[None, None] / 255.0
    out = LaplacianPyramidFusion(levels=4)(torch.cat([x, x], 1))
    assert out.shape == (1, 1, 100, 100)
    assert torch.allclose(out, x, atol=1e-6)


def test_laplacian_pyramid_keeps_the_detail_of_either_source() -> None:
    """An edge present in only one source survives, at full strength, in the fused image."""
    a = torch.zeros(1, 1, 64, 64)
    a[..., :, 32:] = 1.0  # a vertical step in A only
    b = torch.full((1, 1, 64, 64), 0.2)
    b[..., 20:24, 10:14] = 0.9  # a small bright square in B only
    out = LaplacianPyramidFusion()(torch.cat([a, b], 1))[0, 0]
    assert float(out[:, 34:].mean() - out[:, :30].mean()) > 0.7
    assert float(out[21, 11]) > 0.8
    with pytest.raises(ValueError, match="levels"):
        LaplacianPyramidFusion(levels=0)


def test_bone_brightness_kept() -> None:
    ct = torch.tensor([[0.0, 250.0], [220.0, 10.0]])
    assert float(bone_brightness_kept(ct, ct)) == pytest.approx(1.0)
    assert float(bone_brightness_kept(ct / 2, ct)) == pytest.approx(0.5)
    assert torch.isnan(bone_brightness_kept(ct, torch.zeros(2, 2)))  # no bone: not a number, not 0
    metric = BoneBrightnessMetric()
    image = torch.stack([torch.zeros(2, 2), ct / 255.0])[None]
    metric(y_pred=image[:, 1:] * 0.75, y=image)
    assert float(metric.aggregate()) == pytest.approx(0.75, abs=0.01)


def test_hot_spot_contrast_kept() -> None:
    core = torch.zeros(8, 8, dtype=torch.bool)
    core[3:5, 3:5] = True
    ring = ~core
    pet = torch.where(core, 200.0, 50.0)
    assert float(hot_spot_contrast(pet, core, ring)) == pytest.approx(150.0)
    fused = torch.where(core, 200.0, 125.0)  # the surround brightened by the MRI: half the contrast left
    assert float(hot_spot_contrast_kept(fused, pet, core, ring)) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="not positive"):
        hot_spot_contrast_kept(fused, torch.full((8, 8), 50.0), core, ring)


def test_painted_hot_spot_is_a_hot_spot_inside_the_brain_and_reproducible() -> None:
    mri, pet = _head()
    before = pet.copy()
    spot = paint_hot_spot(mri, pet, seed=3)
    np.testing.assert_array_equal(pet, before)  # the input is never modified
    assert spot.painted.dtype == np.uint8 and spot.painted.shape == pet.shape
    assert spot.core.any() and spot.surround.any() and not (spot.core & spot.surround).any()
    assert (mri[spot.core] > 30).all()  # inside the brain
    assert float(hot_spot_contrast(spot.painted, spot.core, spot.surround)) >= 40
    np.testing.assert_array_equal(paint_hot_spot(mri, pet, seed=3).painted, spot.painted)
    assert not np.array_equal(paint_hot_spot(mri, pet, seed=4).core, spot.core)
    # the pixel-max rule hides a hot spot exactly where the MRI surround is brighter than the PET's
    fused = np.maximum(mri, spot.painted)
    assert 0 < float(hot_spot_contrast_kept(fused, spot.painted, spot.core, spot.surround)) <= 1.0


def test_painting_colour_keeps_the_chroma() -> None:
    """Adding the same value to R, G and B moves the luma only (away from clipping)."""
    from hkafusion_monai.utils.colour import rgb_to_ycbcr

    mri, pet = _head()
    rgb = np.stack([pet // 2, pet // 3, pet // 4], -1).astype(np.uint8)
    spot = paint_hot_spot(mri, rgb, seed=1, level=120.0, min_contrast=20.0)
    before = rgb_to_ycbcr(rgb.astype(np.float32) / 255.0, channel_dim=-1)
    after = rgb_to_ycbcr(spot.painted.astype(np.float32) / 255.0, channel_dim=-1)
    assert float(np.abs(after[..., 1:] - before[..., 1:])[spot.core].max()) < 3 / 255
    assert float((after[..., 0] - before[..., 0])[spot.core].min()) > 0.1


def test_painted_lesion_is_dark_on_the_mri_and_hot_and_blurred_on_the_pet() -> None:
    mri, pet = _head(size=160)
    rgb = np.stack([pet, pet // 2, pet // 3], -1).astype(np.uint8)
    before = (mri.copy(), rgb.copy())
    lesion = paint_lesion(mri, rgb, seed=5)
    np.testing.assert_array_equal(mri, before[0])  # the inputs are never modified
    np.testing.assert_array_equal(rgb, before[1])
    assert lesion.mri.dtype == np.uint8 and lesion.other.shape == rgb.shape
    assert lesion.core.any() and lesion.surround.any() and not (lesion.core & lesion.surround).any()
    luma = 0.299 * lesion.other[..., 0] + 0.587 * lesion.other[..., 1] + 0.114 * lesion.other[..., 2]
    assert float(hot_spot_contrast(luma, lesion.core, lesion.surround)) >= 40  # hot on the PET
    assert float(hot_spot_contrast(lesion.mri, lesion.core, lesion.surround)) < 0  # dark on the MRI
    # sharp on the MRI, blurred on the PET: the MRI changes only on the disc, the PET beyond it
    changed_mri = lesion.mri.astype(int) != mri
    changed_pet = lesion.other[..., 0].astype(int) != rgb[..., 0]
    assert changed_pet.sum() > changed_mri.sum()
    np.testing.assert_array_equal(paint_lesion(mri, rgb, seed=5).mri, lesion.mri)  # reproducible
    # a fusion that follows the MRI inverts it; pixel max keeps part of it
    assert float(hot_spot_contrast_kept(lesion.mri, luma, lesion.core, lesion.surround)) < 0
    fused = np.maximum(lesion.mri, luma)
    assert 0 < float(hot_spot_contrast_kept(fused, luma, lesion.core, lesion.surround)) <= 1.0


def test_rand_lesion_paints_both_channels_of_a_training_pair() -> None:
    mri, pet = _head()
    image = torch.stack([torch.from_numpy(mri), torch.from_numpy(pet)]).float() / 255.0
    out = RandLesiond(keys="image", prob=1.0)
    out.set_random_state(0)
    painted = out({"image": image})["image"]
    assert painted.shape == image.shape and painted.dtype == image.dtype
    assert (painted[0] < image[0] - 1e-3).any() and (painted[1] > image[1] + 1e-3).any()
    assert not (painted[0] > image[0] + 1e-6).any() and not (painted[1] < image[1] - 1e-6).any()
    skip = RandLesiond(keys="image", prob=0.0)
    assert torch.equal(skip({"image": image})["image"], image)
    several = RandLesiond(keys="image", prob=1.0, max_lesions=3, radius_range=(3.0, 4.0))
    several.set_random_state(1)
    counts = set()
    for _ in range(6):
        out = several({"image": image})["image"]
        counts.add(len(several._seeds))
        assert (out[0] <= image[0] + 1e-6).all() and (out[1] >= image[1] - 1e-6).all()
    assert counts <= {1, 2, 3} and len(counts) > 1
    with pytest.raises(ValueError, match="max_lesions"):
        RandLesiond(keys="image", max_lesions=0)


def test_no_room_for_a_hot_spot_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no place inside the brain"):
        paint_hot_spot(np.zeros((64, 64), np.uint8), np.zeros((64, 64), np.uint8), seed=0)


def test_min_max_stretch_per_image_and_per_volume() -> None:
    x = torch.tensor([[0.2, 0.4], [0.6, 0.3]])
    torch.testing.assert_close(min_max_stretch(x), (x - 0.2) / 0.4)
    flat = torch.full((2, 2), 0.5)
    assert torch.equal(min_max_stretch(flat), flat)
    # a volume is stretched as a whole: a dim slice stays dim relative to a bright one
    vol = torch.stack([torch.full((4, 4), 0.2), torch.full((4, 4), 0.6)], -1)[None]
    vol[0, 0, 0, 0] = 0.1
    from monai.data import MetaTensor

    ref = MetaTensor(torch.zeros(2, 4, 4, 2), affine=torch.eye(4), meta={"original_affine": np.eye(4)})
    out = FusionPostprocessd("pred", uint8=False, stretch=True)({"pred": vol, "image": ref})
    assert float(out["pred"].max()) == pytest.approx(1.0)
    assert float(out["pred"][..., 0].max()) < 0.5


def test_string_booleans_mean_what_they_say() -> None:
    for text in ("false", "False", "0", "no", "off", "", None, False, 0):
        assert as_bool(text) is False
    for text in ("true", "TRUE", "1", "yes", "on", True, 1):
        assert as_bool(text) is True
    with pytest.raises(ValueError, match="register: expected a boolean"):
        as_bool("maybe", "register")
    assert path_or_flag("false", "default.pt") is None
    assert path_or_flag("true", "default.pt") == "default.pt"
    assert path_or_flag(True, "default.pt") == "default.pt"
    assert path_or_flag("my/model.pt", "default.pt") == "my/model.pt"


def test_register_false_from_the_command_line_is_off() -> None:
    """``--register false`` arrives as the string 'false'; it must not switch registration on."""
    from hkafusion_monai.transforms.registration import RigidRegisterd

    assert RigidRegisterd(["mri", "other"], enabled="false").enabled is False
    assert RigidRegisterd(["mri", "other"], enabled="true").enabled is True
    data = {"mri": torch.zeros(1, 4, 4, 4), "other": torch.zeros(1, 4, 4, 4), "register": "no"}
    assert RigidRegisterd(["mri", "other"], enabled=True)(data)["other"] is data["other"]


def test_max_rule_keeps_bone_fully(one_thread) -> None:
    mri, ct = _head()
    ct = ct.copy()
    ct[10:20, 40:60] = 250
    image = torch.from_numpy(np.stack([mri, ct])).float()[None] / 255.0
    fused = torch.round(PixelMax()(image)[0, 0] * 255)
    assert float(bone_brightness_kept(fused, torch.from_numpy(ct).double())) == pytest.approx(1.0)
