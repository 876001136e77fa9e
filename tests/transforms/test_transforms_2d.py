"""2-D inputs: colour maths, reading at full depth, scaling, Y/CbCr split, stacking, bad input, alignment."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, RandFlipd, RandRotate90d, RandRotated, RandSpatialCropd, Resized
from monai.utils import set_determinism
from PIL import Image

from hkafusion_monai.transforms import (
    FusionPILReader,
    LoadFusionImaged,
    MergeYCbCrd,
    ScaleByBitDepthd,
    SplitYCbCrd,
    StackPaird,
)
from hkafusion_monai.utils import FusionInputError
from hkafusion_monai.utils.colour import is_grey_rgb, rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb

KEYS = ["mri", "other"]


pytestmark = pytest.mark.usefixtures("one_thread")


def phantom(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    """A non-symmetric 8-bit test picture (H, W): gradient, a bright block top-left, noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = 40 + 120 * x / w + 40 * y / h
    img[2 : h // 3, 3 : w // 4] = 250
    img += rng.normal(0, 6, (h, w))
    return np.clip(img, 0, 255).astype(np.uint8)


def pseudo_colour(grey: np.ndarray) -> np.ndarray:
    """A PET-like pseudo-colour RGB (H, W, 3) uint8 image from a grey one."""
    g = grey.astype(np.float32) / 255
    rgb = np.stack([np.clip(2 * g, 0, 1), np.clip(2 * g - 0.5, 0, 1), np.clip(1 - 2 * abs(g - 0.5), 0, 1)], -1)
    return (rgb * 255).round().astype(np.uint8)


def save(path: Path, arr: np.ndarray, mode: str | None = None) -> str:
    (Image.fromarray(arr, mode) if mode else Image.fromarray(arr)).save(path)
    return str(path)


def preprocess(keep_cbcr: bool = True) -> Compose:
    return Compose(
        [
            LoadFusionImaged(KEYS),
            ScaleByBitDepthd(KEYS),
            SplitYCbCrd(KEYS, keep_cbcr=keep_cbcr),
            StackPaird(KEYS, name="image"),
        ]
    )


def unwrap(exc: BaseException, exc_type: type) -> BaseException:
    """MONAI's Compose wraps errors in RuntimeError('applying transform ...'); find ours in the chain."""
    while not isinstance(exc, exc_type) and exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


# --------------------------------------------------------------------------------------------- colour


def test_rgb_to_y_matches_opencv_on_ties():
    # exact .5 ties of 0.299R+0.587G+0.114B; expected: np.round(cv2.cvtColor(BGR float32, COLOR_BGR2GRAY))
    # from OpenCV 5.0.0 (naive float64 rounding gets the first five wrong)
    cases = {
        (7, 115, 43): 75,
        (7, 135, 133): 97,
        (14, 80, 161): 69,
        (21, 115, 94): 85,
        (21, 245, 179): 171,
        (0, 0, 250): 28,
        (0, 60, 20): 38,
        (0, 70, 65): 48,
        (255, 255, 255): 255,
        (255, 0, 0): 76,
    }
    rgb = np.array(list(cases), dtype=np.uint8).T  # (3, N)
    expected = np.array(list(cases.values()), dtype=np.float32)
    np.testing.assert_array_equal(rgb_to_y(rgb, rounded=True), expected)
    np.testing.assert_array_equal(rgb_to_y(torch.from_numpy(rgb), rounded=True).numpy(), expected)


def test_ycbcr_convention_bt601_full_range():
    rgb = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [0.5, 0.5, 0.5]], dtype=np.float32).T  # (3, 4)
    ycbcr = rgb_to_ycbcr(rgb)
    np.testing.assert_allclose(ycbcr[0], [0.299, 0.587, 0.114, 0.5], atol=1e-6)
    np.testing.assert_allclose(
        ycbcr[1], [0.5 - 0.299 * 0.564, 0.5 - 0.587 * 0.564, 0.5 + 0.886 * 0.564, 0.5], atol=1e-6
    )
    np.testing.assert_allclose(
        ycbcr[2], [0.5 + 0.701 * 0.713, 0.5 - 0.587 * 0.713, 0.5 - 0.114 * 0.713, 0.5], atol=1e-6
    )
    # 0..255 data with OpenCV's 8-bit offset
    np.testing.assert_allclose(rgb_to_ycbcr(rgb * 255, delta=128.0)[1:, 3], [128, 128], atol=1e-4)


def test_round_trip_within_one_grey_level_numpy_and_torch():
    rng = np.random.default_rng(1)
    rgb8 = rng.integers(0, 256, (3, 64, 64), dtype=np.uint8)
    rgb8[:, 0, :8] = [[0], [0], [0]]  # extremes
    rgb8[:, 1, :8] = [[255], [255], [255]]
    back = ycbcr_to_rgb(rgb_to_ycbcr(rgb8 / np.float32(255))) * 255
    assert np.abs(back - rgb8).max() <= 0.5  # rounds back to the input
    np.testing.assert_array_equal(np.round(back), rgb8)
    back_t = ycbcr_to_rgb(rgb_to_ycbcr(torch.from_numpy(rgb8).float() / 255)) * 255
    assert isinstance(back_t, torch.Tensor) and back_t.dtype == torch.float32
    assert (back_t - torch.from_numpy(rgb8)).abs().max() <= 0.5
    # channel-last works too
    hwc = np.moveaxis(rgb8, 0, -1) / 255.0
    np.testing.assert_allclose(ycbcr_to_rgb(rgb_to_ycbcr(hwc, channel_dim=-1), channel_dim=-1), hwc, atol=2e-3)


def test_round_trip_on_harvard_colour_images(harvard_dir):
    files = sorted((harvard_dir / "mri_pet" / "test_cddfuse" / "PET").glob("*.png"))[:5]
    files += sorted((harvard_dir / "mri_spect" / "test" / "SPECT").glob("*.png"))[:5]
    assert files
    for f in files:
        rgb8 = np.moveaxis(np.asarray(Image.open(f)), -1, 0)
        back = ycbcr_to_rgb(rgb_to_ycbcr(rgb8 / np.float32(255))) * 255
        assert np.abs(back - rgb8).max() <= 1.0, f


def test_is_grey_rgb():
    g = phantom()
    assert is_grey_rgb(np.stack([g, g, g]))
    assert is_grey_rgb(torch.from_numpy(np.stack([g, g, g])))
    c = np.moveaxis(pseudo_colour(g), -1, 0)
    assert not is_grey_rgb(c)  # uint8: differences must not wrap around
    near = np.stack([g, g, g]).astype(np.int16)
    near[1, 0, 0] += 1
    assert not is_grey_rgb(near) and is_grey_rgb(near, atol=1)


# ------------------------------------------------------------------------------------ reading, depth


def test_grey_png_not_transposed_and_scaled(tmp_path):
    g = phantom(40, 64)  # non-square: a transposition would change the shape
    d = LoadFusionImaged(["mri"])({"mri": save(tmp_path / "a.png", g)})
    img = d["mri"]
    assert isinstance(img, MetaTensor) and img.shape == (1, 40, 64) and img.dtype == torch.float32
    np.testing.assert_array_equal(img[0].numpy(), g)  # raw values, PIL's orientation
    assert img.meta["bit_depth_max"] == 255.0 and tuple(img.meta["spatial_shape"]) == (40, 64)
    scaled = ScaleByBitDepthd(["mri"])(d)["mri"]
    np.testing.assert_allclose(scaled[0].numpy(), g / 255.0, atol=1e-7)


@pytest.mark.parametrize("suffix", ["png", "tif"])
def test_16_bit_read_at_full_depth(tmp_path, suffix):
    rng = np.random.default_rng(2)
    a = rng.integers(0, 65536, (32, 48), dtype=np.uint16)
    a[0, 0], a[0, 1] = 0, 65535
    path = tmp_path / f"a16.{suffix}"
    Image.fromarray(a).save(path)
    assert Image.open(path).mode.startswith("I;16")
    d = ScaleByBitDepthd(["mri"])(LoadFusionImaged(["mri"])({"mri": str(path)}))
    img = d["mri"]
    assert img.meta["bit_depth_max"] == 65535.0
    np.testing.assert_allclose(img[0].numpy(), a / 65535.0, rtol=1e-6)  # not truncated to 8 bits
    assert float(img.max()) == 1.0 and float(img.min()) == 0.0


def test_16_bit_colour_png_warns_and_reads_8_bit(tmp_path):
    import struct
    import zlib

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)

    a = np.random.default_rng(3).integers(0, 65536, (4, 5, 3)).astype(">u2")
    raw = b"".join(b"\x00" + a[r].tobytes() for r in range(4))
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 5, 4, 16, 2, 0, 0, 0))
    path = tmp_path / "rgb16.png"
    path.write_bytes(png + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    with pytest.warns(UserWarning, match="rgb16.png: 16-bit colour"):
        img = LoadFusionImaged(["x"])({"x": str(path)})["x"]
    assert img.shape == (3, 4, 5) and img.meta["bit_depth_max"] == 255.0
    np.testing.assert_array_equal(img.numpy(), np.moveaxis(a >> 8, -1, 0))  # Pillow keeps the high byte


def test_float_tiff_and_jpeg(tmp_path):
    f = np.linspace(0, 1, 24 * 32, dtype=np.float32).reshape(24, 32)
    Image.fromarray(f).save(tmp_path / "f.tif")
    img = ScaleByBitDepthd(["x"])(LoadFusionImaged(["x"])({"x": str(tmp_path / "f.tif")}))["x"]
    np.testing.assert_array_equal(img[0].numpy(), f)
    Image.fromarray(phantom()).save(tmp_path / "g.jpg", quality=95)
    img = LoadFusionImaged(["x"])({"x": str(tmp_path / "g.jpg")})["x"]
    assert img.shape == (1, 48, 64) and img.meta["bit_depth_max"] == 255.0


def test_palette_and_grey_rgb_and_colour(tmp_path):
    g = phantom()
    rgb = pseudo_colour(g)
    paths = {
        "pal": save(
            tmp_path / "p.png", np.asarray(Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE).convert("RGB"))
        ),
        "grey_rgb": save(tmp_path / "gr.png", np.stack([g, g, g], -1)),
        "colour": save(tmp_path / "c.png", rgb),
    }
    Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE).save(tmp_path / "pal_mode.png")
    paths["pal_mode"] = str(tmp_path / "pal_mode.png")
    keys = list(paths)
    d = Compose([LoadFusionImaged(keys), ScaleByBitDepthd(keys), SplitYCbCrd(keys)])(paths)
    assert d["grey_rgb"].shape == (1, 48, 64) and d["grey_rgb"].meta["colour"] == "grey_rgb"
    np.testing.assert_allclose(d["grey_rgb"][0].numpy(), g / 255.0, atol=1e-7)
    assert "grey_rgb_cbcr" not in d
    c = d["colour"]
    assert c.shape == (1, 48, 64) and c.meta["colour"] == "ycbcr"
    assert d["colour_cbcr"].shape == (2, 48, 64)
    np.testing.assert_allclose(c[0].numpy(), rgb_to_y(np.moveaxis(rgb, -1, 0)) / 255.0, atol=1e-6)
    assert d["pal_mode"].shape == (1, 48, 64)  # palette -> RGB -> Y
    # dropping CbCr for training
    d2 = Compose(
        [LoadFusionImaged(["colour"]), ScaleByBitDepthd(["colour"]), SplitYCbCrd(["colour"], keep_cbcr=False)]
    )(paths)
    assert "colour_cbcr" not in d2


def test_stack_pair_contract_and_metadata(tmp_path):
    g = phantom()
    rgb = pseudo_colour(phantom(seed=3))
    d = preprocess()({"mri": save(tmp_path / "m.png", g), "other": save(tmp_path / "o.png", rgb), "modality": "PET"})
    img = d["image"]
    assert isinstance(img, MetaTensor) and img.shape == (2, 48, 64) and img.dtype == torch.float32
    assert 0.0 <= float(img.min()) and float(img.max()) <= 1.0
    np.testing.assert_allclose(img[0].numpy(), g / 255.0, atol=1e-7)  # channel 0 is the MRI
    np.testing.assert_allclose(img[1].numpy(), rgb_to_y(np.moveaxis(rgb, -1, 0)) / 255.0, atol=1e-6)
    m = img.meta
    assert tuple(m["original_size"]) == (48, 64)
    assert m["mri_filename"].endswith("m.png") and m["other_filename"].endswith("o.png")
    assert m["modality"] == "PET" and m["other_colour"] == "ycbcr" and m["mri_colour"] == "grey"
    assert "mri" not in d and "other" not in d and d["other_cbcr"].shape == (2, 48, 64)


def test_merge_ycbcr_restores_the_colour_file(tmp_path):
    rgb = pseudo_colour(phantom(seed=4))
    d = preprocess()({"mri": save(tmp_path / "m.png", phantom()), "other": save(tmp_path / "o.png", rgb)})
    d["pred"] = d["image"][1:2]  # a "fusion" that returns the other image's Y
    out = MergeYCbCrd(["pred"], cbcr_key="other_cbcr")(d)["pred"]
    assert out.shape == (3, 48, 64)
    back = np.moveaxis(out.numpy(), 0, -1) * 255
    assert np.abs(back - rgb).max() <= 1.0  # within one grey level
    # a grey source (no CbCr) passes unchanged
    grey = preprocess()(
        {"mri": save(tmp_path / "m2.png", phantom()), "other": save(tmp_path / "o2.png", phantom(seed=5))}
    )
    grey["pred"] = grey["image"][1:2]
    assert MergeYCbCrd(["pred"])(grey)["pred"].shape == (1, 48, 64)


# ----------------------------------------------------------------------------------------- bad input


def _pair(tmp_path: Path, other: str) -> dict:
    return {"mri": save(tmp_path / "mri.png", phantom()), "other": other}


def _expect_error(data: dict, exc_type: type, *fragments: str) -> None:
    with pytest.raises(Exception) as info:
        preprocess()(data)
    err = unwrap(info.value, exc_type)
    assert isinstance(err, exc_type), repr(err)
    for fragment in fragments:
        assert fragment in str(err), f"{fragment!r} not in {err}"


def test_error_missing_file(tmp_path):
    missing = str(tmp_path / "nope.png")
    _expect_error(_pair(tmp_path, missing), FileNotFoundError, missing, "missing file")


def test_error_not_an_image(tmp_path):
    p = tmp_path / "notes.png"
    p.write_text("this is not a picture\n")
    _expect_error(_pair(tmp_path, str(p)), FusionInputError, str(p), "not an image file")


def test_error_truncated_image(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(good)
    bad = tmp_path / "truncated.png"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    _expect_error(_pair(tmp_path, str(bad)), FusionInputError, str(bad), "truncated")


def test_error_mismatched_pair_sizes(tmp_path):
    other = save(tmp_path / "small.png", phantom(32, 32))
    _expect_error(_pair(tmp_path, other), FusionInputError, "mri.png", other, "size mismatch", "48x64", "32x32")


def test_error_rgba(tmp_path):
    rgba = np.dstack([pseudo_colour(phantom()), np.full((48, 64), 255, np.uint8)])
    p = save(tmp_path / "rgba.png", rgba, "RGBA")
    _expect_error(_pair(tmp_path, p), FusionInputError, p, "RGBA", "alpha")


@pytest.mark.parametrize("value, word", [(np.nan, "NaN"), (np.inf, "inf")])
def test_error_nan_or_inf_in_tiff(tmp_path, value, word):
    f = np.full((48, 64), 0.5, dtype=np.float32)
    f[5, 7] = value
    p = tmp_path / "bad.tif"
    Image.fromarray(f).save(p)
    _expect_error(_pair(tmp_path, str(p)), FusionInputError, str(p), word, "(5, 7)")


def test_error_empty_file_and_blank_image(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    _expect_error(_pair(tmp_path, str(empty)), FusionInputError, str(empty), "empty file")
    blank = save(tmp_path / "blank.png", np.zeros((48, 64), np.uint8))
    _expect_error(_pair(tmp_path, blank), FusionInputError, blank, "blank image")
    assert LoadFusionImaged(["x"], allow_blank=True)({"x": blank})["x"].shape == (1, 48, 64)


def test_error_zero_pixel_image(tmp_path):
    # PIL cannot write a 0x0 file, so the array check is exercised directly
    reader = FusionPILReader()
    with pytest.raises(FusionInputError, match=r"zero\.png: empty image"):
        reader._check_values(np.zeros((0, 5), np.uint8), "zero.png", 255.0)


def test_error_float_out_of_range_and_unscaled_colour(tmp_path):
    p = tmp_path / "f255.tif"
    Image.fromarray(np.full((8, 8), 200.0, np.float32) * np.linspace(0.5, 1, 8, dtype=np.float32)).save(p)
    _expect_error(_pair(tmp_path, str(p)), FusionInputError, str(p), "[0, 1]")
    c = save(tmp_path / "c.png", pseudo_colour(phantom()))
    with pytest.raises(ValueError, match="ScaleByBitDepthd"):
        SplitYCbCrd(["x"])(LoadFusionImaged(["x"])({"x": c}))


# ----------------------------------------------------------------------------------------- alignment


def _same_image_pair(tmp_path: Path) -> dict:
    rgb = pseudo_colour(phantom(64, 80))
    p = save(tmp_path / "same.png", rgb)
    return preprocess(keep_cbcr=False)({"mri": p, "other": p})


@pytest.mark.parametrize(
    "augment",
    [
        RandRotated("image", range_x=0.6, prob=1.0, mode="bilinear", padding_mode="zeros"),
        RandRotate90d("image", prob=1.0, max_k=3),
        RandFlipd("image", prob=1.0, spatial_axis=0),
        RandFlipd("image", prob=1.0, spatial_axis=1),
        RandSpatialCropd("image", roi_size=[32, 32], random_size=False),
        Resized("image", spatial_size=[256, 256], mode="bilinear"),
    ],
    ids=["rotate", "rotate90", "flip0", "flip1", "crop", "resize"],
)
def test_one_image_pair_stays_identical_after_each_augmentation(tmp_path, augment):
    d = _same_image_pair(tmp_path)
    before = d["image"].clone()
    torch.testing.assert_close(before[0], before[1], rtol=0, atol=0)
    augment.set_random_state(seed=7) if hasattr(augment, "set_random_state") else None
    out = augment(d)["image"]
    torch.testing.assert_close(out[0], out[1], rtol=0, atol=0)
    assert out.shape != before.shape or not torch.equal(out, before)  # the augmentation did something


def test_one_image_pair_stays_identical_through_random_chains(tmp_path):
    d = _same_image_pair(tmp_path)
    chain = Compose(
        [
            RandRotated("image", range_x=0.4, prob=0.7, mode="bilinear"),
            RandRotate90d("image", prob=0.5),
            RandFlipd("image", prob=0.5, spatial_axis=0),
            RandFlipd("image", prob=0.5, spatial_axis=1),
            RandSpatialCropd("image", roi_size=[40, 40], random_size=False),
        ]
    )
    set_determinism(seed=11)
    try:
        for _ in range(12):
            out = chain({"image": d["image"].clone()})["image"]
            assert out.shape == (2, 40, 40)
            torch.testing.assert_close(out[0], out[1], rtol=0, atol=0)
    finally:
        set_determinism(seed=None)
