"""The bundle declares its pipeline: every transform of train.json, evaluate.json and inference.json is a
``_target_`` item, and ``load_fuser`` and the Deploy application parse inference.json's, so a pair fuses to the
same pixels through ``inference.json``, ``load_fuser`` and the evaluation workflow, and one edit in the JSON
changes them all."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser, run
from PIL import Image

from hkafusion_monai import load_fuser
from hkafusion_monai.inference import bundle_pipeline
from hkafusion_monai.transforms.volume import LoadFusionVolumed
from hkafusion_monai.utils import quantise
from tests.helpers import BUNDLE, INFERENCE_JSON, random_checkpoint, small_phantom

CONFIGS = BUNDLE / "configs"
#: the most ``$`` expressions each config may hold: a ``$`` computes a value, it never builds a chain
MAX_EXPRESSIONS = {"train.json": 25, "inference.json": 15, "evaluate.json": 15}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_checkpoint(tmp_path_factory)


@pytest.fixture(scope="module")
def pet_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 256 x 256 phantom MRI + pseudo-colour PET pair (the evaluation's default image size)."""
    base = small_phantom(tmp_path_factory)
    item = json.loads((base / "datalists" / "png_pet.json").read_text())["training"][0]
    return base / item["mri"], base / item["other"]


def _expressions(config: object) -> list[str]:
    if isinstance(config, dict):
        return [e for v in config.values() for e in _expressions(v)]
    if isinstance(config, list):
        return [e for v in config for e in _expressions(v)]
    return [config] if isinstance(config, str) and config.startswith("$") else []


def _targets(config: object) -> list[str]:
    if isinstance(config, dict):
        own = [config["_target_"]] if isinstance(config.get("_target_"), str) else []
        return own + [t for v in config.values() for t in _targets(v)]
    if isinstance(config, list):
        return [t for v in config for t in _targets(v)]
    return []


@pytest.mark.parametrize("name", sorted(MAX_EXPRESSIONS))
def test_configs_declare_their_transforms(name: str) -> None:
    """Every transform is a ``_target_`` item: no ``$`` expression calls package code that builds a chain
    (only ``transforms`` lists may join declared lists, as model-zoo's ``"$@a + @b"``), and ``$`` computes a
    value no more often than the budget."""
    config = json.loads((CONFIGS / name).read_text())
    expressions = _expressions(config)
    assert len(expressions) <= MAX_EXPRESSIONS[name], expressions
    assert len(expressions) == (CONFIGS / name).read_text().count('"$'), "a $ the walk missed"
    for e in expressions:
        assert "transforms." not in e and "Compose(" not in e, f"{name}: a chain built in Python: {e}"


def test_the_configs_declare_both_loaders_slices_and_augmentation() -> None:
    targets = {
        t.rsplit(".", 1)[-1]
        for name in ("train.json", "train_volumes.json", "evaluate.json", "inference.json")
        for t in _targets(json.loads((CONFIGS / name).read_text()))
    }
    for needed in ("LoadFusionImaged", "LoadFusionVolumed", "DropEmptySlicesd", "RandSpatialCropSamplesd"):
        assert needed in targets, needed
    assert {"SqueezeDimd", "RandRotated", "RandFlipd", "FusionPreprocessd", "FusionPostprocessd"} <= targets


def test_same_pixels_inference_json_load_fuser_evaluator(tmp_path: Path, ckpt: Path, pet_pair) -> None:
    mri_path, pet_path = pet_pair
    # 1. the inference workflow, as from the command line
    out_dir = tmp_path / "inference"
    run(
        "inference",
        config_file=str(INFERENCE_JSON),
        bundle_root=str(BUNDLE),
        mri=str(mri_path),
        other=str(pet_path),
        output_dir=str(out_dir),
        ckpt_path=str(ckpt),
        device="$torch.device('cpu')",
        progress=False,
    )
    png = np.asarray(Image.open(out_dir / f"{mri_path.stem}_fused.png"))
    assert png.shape == (256, 256, 3) and png.dtype == np.uint8

    # 2. the notebook API on the same pixels
    fuser = load_fuser(bundle_dir=BUNDLE, task="mri_pet", weights=ckpt, device="cpu")
    mri, pet = np.asarray(Image.open(mri_path)), np.asarray(Image.open(pet_path))
    np.testing.assert_array_equal(fuser(mri, pet), png)
    grey = fuser(mri, pet, colour=False)

    # 3. the evaluation workflow's evaluator (train.json + evaluate.json), on a one-pair test list
    datalist = tmp_path / "one_pair.json"
    datalist.write_text(json.dumps({"test": [{"mri": str(mri_path), "other": str(pet_path), "modality": "PET"}]}))
    parser = ConfigParser()
    parser.read_config([str(BUNDLE / "configs" / "train.json"), str(BUNDLE / "configs" / "evaluate.json")])
    parser.update(
        {
            "bundle_root": str(BUNDLE),
            "datalist": str(datalist),
            "output_dir": str(tmp_path / "eval"),
            "ckpt_path": str(ckpt),
            "device": "$torch.device('cpu')",
            "log_figures": False,
            "val_batch_size": 1,
            "tracking_uri": f"sqlite:///{tmp_path / 'eval.db'}",
        }
    )
    evaluator = parser.get_parsed_content("validate#evaluator")
    preds: list[torch.Tensor] = []
    from ignite.engine import Events

    evaluator.add_event_handler(Events.ITERATION_COMPLETED, lambda e: preds.append(e.state.output["pred"].detach()))
    evaluator.run()
    assert len(preds) == 1
    evaluated = quantise(preds[0][0, 0]).to(torch.uint8).numpy()
    np.testing.assert_array_equal(evaluated, grey)

    # the colour of the written PNG is inference.json's postprocessing of that same luminance
    pipeline = bundle_pipeline()
    pre = pipeline.preprocessing({"mri": str(mri_path), "other": str(pet_path)})
    post = pipeline.postprocessing({**pre, "pred": preds[0][0]})["pred"]
    np.testing.assert_array_equal(np.moveaxis(post.numpy(), 0, -1), png)


def test_preprocessing_picks_the_chain(tmp_path_factory: pytest.TempPathFactory) -> None:
    base = small_phantom(tmp_path_factory)
    pre = bundle_pipeline().preprocessing
    png = json.loads((base / "datalists" / "png_pet.json").read_text())["training"][0]
    vol = json.loads((base / "datalists" / "nifti_pet.json").read_text())["training"][0]
    d2 = pre({k: str(base / v) if k in ("mri", "other") else v for k, v in png.items()})
    d3 = pre({k: str(base / v) if k in ("mri", "other") else v for k, v in vol.items()})
    assert d2["image"].shape == (2, 256, 256) and d2["other_cbcr"].shape == (2, 256, 256)
    assert d2["image"].meta["fusion_kind"] == "2d" and d3["image"].meta["fusion_kind"] == "volume"
    assert d3["image"].shape == (2, 64, 64, 32) and d3["image"].dtype == torch.float32
    assert 0.0 <= float(d3["image"].min()) and float(d3["image"].max()) <= 1.0


def test_one_more_transform_in_inference_json_changes_load_fuser_and_deploy(
    tmp_path: Path, ckpt: Path, pet_pair, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A copy of the bundle whose ``inference.json`` preprocessing gets one more transform (an intensity flip of
    the MRI channel): ``load_fuser`` and :meth:`Fuser.fuse_volumes` (what the Deploy application runs) follow the
    JSON, with no Python edited; the original bundle's output is unchanged."""
    copy = tmp_path / "bundle"
    (copy / "configs").mkdir(parents=True)
    config = json.loads(INFERENCE_JSON.read_text())
    flip = {"_target_": "ScaleIntensityRanged", "keys": "image", "a_min": 0.0, "a_max": 1.0, "b_min": 1.0, "b_max": 0.0}
    for chain in ("pair", "volume"):
        steps = config["preprocessing"][chain]["transforms"]
        steps.insert(len(steps) - 1, flip)
    (copy / "configs" / "inference.json").write_text(json.dumps(config))
    (copy / "configs" / "metadata.json").write_text((CONFIGS / "metadata.json").read_text())

    mri_path, pet_path = pet_pair
    mri, pet = np.asarray(Image.open(mri_path)), np.asarray(Image.open(pet_path))
    shipped = load_fuser(bundle_dir=BUNDLE, task="mri_pet", weights=ckpt, device="cpu")
    edited = load_fuser(bundle_dir=copy, task="mri_pet", weights=ckpt, device="cpu")
    assert not np.array_equal(shipped(mri, pet), edited(mri, pet))
    np.testing.assert_array_equal(
        shipped(mri, pet), load_fuser(bundle_dir=BUNDLE, task="mri_pet", weights=ckpt, device="cpu")(mri, pet)
    )

    base = small_phantom(tmp_path_factory)
    load = LoadFusionVolumed(["v"])
    mr, pt = (load({"v": str(base / "dicom" / "sub-000" / s)})["v"] for s in ("MR", "PT"))
    assert not torch.equal(shipped.fuse_volumes(mr, pt), edited.fuse_volumes(mr, pt))


def test_a_bundle_folder_given_to_deploy_is_the_bundle_it_runs(tmp_path: Path) -> None:
    """``-m`` naming a bundle folder, or a weights file in its ``models/``, makes the Deploy application run that
    bundle's ``inference.json``; any other model path, the installed bundle's."""
    from hkafusion_monai.io.bundle import bundle_dir_of

    (tmp_path / "copy" / "configs").mkdir(parents=True)
    (tmp_path / "copy" / "models").mkdir()
    (tmp_path / "copy" / "configs" / "inference.json").write_text("{}")
    assert bundle_dir_of(tmp_path / "copy") == tmp_path / "copy"
    assert bundle_dir_of(tmp_path / "copy" / "models" / "model.pt") == tmp_path / "copy"
    assert bundle_dir_of(tmp_path / "model.pt") is None and bundle_dir_of(None) is None
