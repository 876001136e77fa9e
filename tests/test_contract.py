"""One preprocessing/postprocessing contract: a pair fuses to the same pixels through ``inference.json``,
``load_fuser`` and the evaluation workflow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from _inference import BUNDLE, INFERENCE_JSON, random_checkpoint
from _phantom import small_phantom
from monai.bundle import ConfigParser, run
from PIL import Image

from hkafusion_monai import load_fuser
from hkafusion_monai.transforms import contract
from hkafusion_monai.utils import quantise


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_checkpoint(tmp_path_factory)


@pytest.fixture(scope="module")
def pet_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 256 x 256 phantom MRI + pseudo-colour PET pair (the evaluation's default image size)."""
    base = small_phantom(tmp_path_factory)
    item = json.loads((base / "datalists" / "png_pet.json").read_text())["training"][0]
    return base / item["mri"], base / item["other"]


def test_configs_use_the_contract() -> None:
    """The evaluation chain is the contract's, not a copy: ``load_pair`` calls ``pair_transforms``."""
    train = json.loads((BUNDLE / "configs" / "train.json").read_text())
    assert "contract.pair_transforms(" in train["load_pair"]
    evaluate = json.loads((BUNDLE / "configs" / "evaluate.json").read_text())
    # evaluate.json is a thin override: it keeps train.json's validate#preprocessing unless it declares its own
    assert "@load_pair" in evaluate.get("validate#preprocessing", train["validate"]["preprocessing"])["transforms"]
    inference = json.loads(INFERENCE_JSON.read_text())
    assert "contract.preprocessing(" in inference["preprocessing"]
    assert "contract.postprocessing(" in json.dumps(inference["postprocessing"])


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

    # the colour of the written PNG is the contract's postprocessing of that same luminance
    pre = contract.preprocessing()({"mri": str(mri_path), "other": str(pet_path)})
    post = contract.postprocessing()({**pre, "pred": preds[0][0]})["pred"]
    np.testing.assert_array_equal(np.moveaxis(post.numpy(), 0, -1), png)


def test_preprocessing_picks_the_chain(tmp_path_factory: pytest.TempPathFactory) -> None:
    base = small_phantom(tmp_path_factory)
    pre = contract.preprocessing()
    png = json.loads((base / "datalists" / "png_pet.json").read_text())["training"][0]
    vol = json.loads((base / "datalists" / "nifti_pet.json").read_text())["training"][0]
    d2 = pre({k: str(base / v) if k in ("mri", "other") else v for k, v in png.items()})
    d3 = pre({k: str(base / v) if k in ("mri", "other") else v for k, v in vol.items()})
    assert d2["image"].shape == (2, 256, 256) and d2["other_cbcr"].shape == (2, 256, 256)
    assert d2["image"].meta["fusion_kind"] == "2d" and d3["image"].meta["fusion_kind"] == "volume"
    assert d3["image"].shape == (2, 64, 64, 32) and d3["image"].dtype == torch.float32
    assert 0.0 <= float(d3["image"].min()) and float(d3["image"].max()) <= 1.0
