"""The full 2-D training data chain, declared in JSON and built by ``monai.bundle.ConfigParser``."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.utils import set_determinism
from PIL import Image

from hkafusion_monai.data.datalist import datalist_from_splits, write_datalist
from hkafusion_monai.utils.colour import rgb_to_y

# The training chain as a bundle config would declare it (JSON text, parsed as such).
TRAIN_JSON = """
{
  "imports": ["$import torch"],
  "datalist": "<set by the test>",
  "max_pairs": 1000,
  "keys": ["mri", "other"],
  "image_size": [256, 256],
  "roi_size": [128, 128],
  "rotate_range": 0.26,
  "rotate_prob": 0.5,
  "rotate90_prob": 0.5,
  "flip_prob": 0.5,
  "batch_size": 4,
  "train": {
    "items": {"_target_": "hkafusion_monai.data.load_fusion_datalist", "datalist": "@datalist", "split": "training"},
    "preprocessing": {
      "_target_": "Compose",
      "transforms": [
        {"_target_": "hkafusion_monai.transforms.LoadFusionImaged", "keys": "@keys"},
        {"_target_": "hkafusion_monai.transforms.ScaleByBitDepthd", "keys": "@keys"},
        {"_target_": "hkafusion_monai.transforms.SplitYCbCrd", "keys": "@keys", "keep_cbcr": false},
        {"_target_": "hkafusion_monai.transforms.StackPaird", "keys": "@keys", "name": "image"},
        {"_target_": "Resized", "keys": "image", "spatial_size": "@image_size", "mode": "bilinear"},
        {"_target_": "RandRotated", "keys": "image", "range_x": "@rotate_range", "prob": "@rotate_prob",
         "mode": "bilinear", "padding_mode": "zeros"},
        {"_target_": "RandRotate90d", "keys": "image", "prob": "@rotate90_prob", "spatial_axes": [0, 1]},
        {"_target_": "RandFlipd", "keys": "image", "prob": "@flip_prob", "spatial_axis": 0},
        {"_target_": "RandFlipd", "keys": "image", "prob": "@flip_prob", "spatial_axis": 1},
        {"_target_": "RandSpatialCropd", "keys": "image", "roi_size": "@roi_size", "random_size": false},
        {"_target_": "ScaleIntensityRanged", "keys": "image", "a_min": 0.0, "a_max": 1.0, "b_min": 0.0,
         "b_max": 1.0, "clip": true},
        {"_target_": "EnsureTyped", "keys": "image", "dtype": "$torch.float32"}
      ]
    },
    "dataset": {
      "_target_": "CacheDataset",
      "data": "$@train#items[:@max_pairs]",
      "transform": "@train#preprocessing",
      "cache_rate": 1.0,
      "num_workers": 1,
      "progress": false
    },
    "dataloader": {
      "_target_": "DataLoader",
      "dataset": "@train#dataset",
      "batch_size": "@batch_size",
      "shuffle": true,
      "num_workers": 0
    }
  }
}
"""


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    set_determinism(seed=0)
    yield
    set_determinism(seed=None)
    torch.set_num_threads(n)


def build(datalist: Path, **overrides) -> ConfigParser:
    config = json.loads(TRAIN_JSON)
    config["datalist"] = str(datalist)
    config.update(overrides)
    return ConfigParser(config)


def check_batches(loader, batch_size: int, roi: tuple[int, int], n_pairs: int, identical: bool = False) -> None:
    """Shape, dtype, range; with ``identical``, channel 0 == channel 1 exactly (same-image pairs)."""
    seen = 0
    for batch in loader:
        image = batch["image"]
        assert image.ndim == 4 and image.shape[1:] == (2, *roi) and image.dtype == torch.float32
        assert image.shape[0] <= batch_size
        assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
        assert float(image.amax(dim=(2, 3)).min()) > 0.0  # both channels carry content
        if identical:
            torch.testing.assert_close(image[:, 0], image[:, 1], rtol=0, atol=0)
        seen += image.shape[0]
    assert seen == n_pairs


# ------------------------------------------------------------------------------------ generated pairs


def _picture(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = 0.2 + 0.5 * x / w + 0.2 * np.sin(y / 7.0) + rng.normal(0, 0.03, (h, w))
    img[h // 8 : h // 3, w // 6 : w // 3] = 0.95
    return np.clip(img, 0, 1)


def _colour(g: np.ndarray) -> np.ndarray:
    return np.stack([np.clip(2 * g, 0, 1), np.clip(2 * g - 0.6, 0, 1), np.clip(1.2 - g, 0, 1)], -1)


def make_generated(root: Path, same_image: bool = False) -> Path:
    """Six generated pairs of mixed formats and sizes (resized to 256x256 by the chain)."""
    specs = [  # (name, size, mri writer, other writer)
        ("p8", (200, 180), "L", "RGB"),
        ("p16", (256, 256), "I;16", "L"),
        ("ptif", (160, 224), "L", "I;16"),
        ("pgrey_rgb", (256, 256), "RGB_GREY", "RGB"),
        ("pj", (128, 128), "L", "L"),
        ("pfloat", (96, 120), "L", "F"),
    ]
    items = []
    for i, (name, (h, w), m_kind, o_kind) in enumerate(specs):
        paths = {}
        for key, kind, seed in (("mri", m_kind, i), ("other", o_kind, 100 + i)):
            g = _picture(h, w, seed)
            if kind == "L":
                arr, ext = (g * 255).round().astype(np.uint8), ".png"
            elif kind == "I;16":
                arr, ext = (g * 65535).round().astype(np.uint16), (".tif" if name == "ptif" else ".png")
            elif kind == "F":
                arr, ext = g.astype(np.float32), ".tif"
            elif kind == "RGB_GREY":
                arr, ext = np.repeat((g * 255).round().astype(np.uint8)[..., None], 3, -1), ".png"
            else:
                arr, ext = (_colour(g) * 255).round().astype(np.uint8), ".png"
            path = root / key / f"{name}{ext}"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(path)
            paths[key] = path.relative_to(root).as_posix()
        if same_image:
            paths["other"] = paths["mri"]
        items.append({**paths, "modality": "PET"})
    datalist = root / "datalist.json"
    datalist.write_text(json.dumps({"base_dir": ".", "training": items, "validation": [], "test": []}))
    return datalist


def test_json_chain_on_generated_pairs(tmp_path):
    parser = build(make_generated(tmp_path))
    check_batches(parser.get_parsed_content("train#dataloader"), 4, (128, 128), 6)


def test_json_chain_keeps_one_image_pairs_aligned(tmp_path):
    # every augmentation on, several epochs: a pair made of one image must stay identical in both channels
    parser = build(make_generated(tmp_path, same_image=True), rotate_prob=1.0, rotate90_prob=1.0, flip_prob=1.0)
    loader = parser.get_parsed_content("train#dataloader")
    for _ in range(3):
        check_batches(loader, 4, (128, 128), 6, identical=True)


def test_json_chain_without_augmentation_puts_mri_in_channel_0(tmp_path):
    datalist = make_generated(tmp_path)
    parser = build(datalist, rotate_prob=0.0, rotate90_prob=0.0, flip_prob=0.0, roi_size=[256, 256], batch_size=1)
    parser["train"]["dataloader"]["shuffle"] = False
    items = json.loads(datalist.read_text())["training"]
    loader = parser.get_parsed_content("train#dataloader")
    full_scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0, np.dtype(np.float32): 1.0}
    for item, batch in zip(items, loader, strict=True):
        for channel, key in ((0, "mri"), (1, "other")):
            src = np.asarray(Image.open(tmp_path / item[key]))
            ref = rgb_to_y(np.moveaxis(src, -1, 0)) if src.ndim == 3 else src.astype(np.float32)
            ref = torch.from_numpy(ref / full_scale[src.dtype]).float()[None, None]
            ref = torch.nn.functional.interpolate(ref, size=(256, 256), mode="bilinear", align_corners=False)[0, 0]
            got = batch["image"][0, channel]
            assert float((got - ref).abs().mean()) < 0.02, (item[key], channel)


# ------------------------------------------------------------------------------------ Harvard pairs


@pytest.mark.parametrize("task", ["mri_ct", "mri_pet", "mri_spect"])
def test_json_chain_on_harvard_pairs(harvard_dir, tmp_path, task):
    datalist = write_datalist(datalist_from_splits(harvard_dir / "splits.json", task), tmp_path / f"{task}.json")
    parser = build(datalist, max_pairs=12)
    check_batches(parser.get_parsed_content("train#dataloader"), 4, (128, 128), 12)


def test_json_chain_keeps_harvard_one_image_pairs_aligned(harvard_dir, tmp_path):
    dl = datalist_from_splits(harvard_dir / "splits.json", "mri_spect")
    dl["training"] = [{**it, "mri": it["other"]} for it in dl["training"][:8]]  # colour SPECT in both channels
    datalist = write_datalist(dl, tmp_path / "same.json")
    parser = build(datalist, max_pairs=8, rotate_prob=1.0, rotate90_prob=1.0, flip_prob=1.0)
    loader = parser.get_parsed_content("train#dataloader")
    for _ in range(2):
        check_batches(loader, 4, (128, 128), 8, identical=True)


@pytest.mark.slow
def test_json_chain_full_harvard_training_set_with_workers(harvard_dir, tmp_path):
    datalist = write_datalist(datalist_from_splits(harvard_dir / "splits.json", "mri_pet"), tmp_path / "pet.json")
    config = json.loads(TRAIN_JSON)
    config["datalist"] = str(datalist)
    config["train"]["dataloader"]["num_workers"] = 2
    loader = ConfigParser(copy.deepcopy(config)).get_parsed_content("train#dataloader")
    check_batches(loader, 4, (128, 128), 245)
