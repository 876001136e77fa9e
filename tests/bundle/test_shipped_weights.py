"""The shipped weights (bundle/models): what they are, that every entry point uses them by default, and that
they fuse (docs/results.md has the full benchmark)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hkafusion_monai.inference import load_fuser, shipped_weights
from hkafusion_monai.networks import HKAFusion
from tests.helpers import BUNDLE

MODELS = BUNDLE / "models"
METADATA = json.loads((BUNDLE / "configs" / "metadata.json").read_text())


def test_weights_are_a_small_state_dict_loaded_weights_only() -> None:
    path = MODELS / "model.pt"
    assert path.is_file(), "bundle/models/model.pt is the shipped joint model"
    assert path.stat().st_size < 10 * 2**20
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())
    HKAFusion(in_channels=2, out_channels=1).load_state_dict(state, strict=True)
    recorded = METADATA["weights"]["model.pt"]["sha256"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == recorded


def test_torchscript_export_matches_the_checkpoint() -> None:
    scripted = torch.jit.load(str(MODELS / "model.ts"), map_location="cpu").eval()
    eager = HKAFusion(in_channels=2, out_channels=1)
    eager.load_state_dict(torch.load(MODELS / "model.pt", map_location="cpu", weights_only=True))
    eager.eval()
    x = torch.rand(1, 2, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), eager(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("task", ["mri_ct", "mri_pet", "mri_spect"])
def test_every_task_defaults_to_the_shipped_weights(task: str) -> None:
    """A task's own model (``model_<task>.pt``) where one is shipped, else the joint ``model.pt``; the inference
    and evaluation configs choose by the same rule, and load_fuser loads those weights."""
    own = MODELS / f"model_{task}.pt"
    expected = own if own.is_file() else MODELS / "model.pt"
    assert shipped_weights(BUNDLE, task) == expected
    for config in ("inference.json", "evaluate.json"):
        text = (BUNDLE / "configs" / config).read_text()
        assert "hkafusion_monai.inference.shipped_weights(@bundle_root" in text, config
    fuser = load_fuser(BUNDLE, task=task, device="cpu")
    assert fuser.task == task
    state = torch.load(expected, map_location="cpu", weights_only=True)
    loaded = fuser.network.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())


def test_mri_ct_ships_its_own_model_recorded_with_its_lineage() -> None:
    meta = json.loads((BUNDLE / "configs" / "metadata.json").read_text())["weights"]
    for name in ("model_mri_ct.pt", "model_mri_ct.ts"):
        assert (MODELS / name).is_file()
        assert meta[name]["sha256"] == hashlib.sha256((MODELS / name).read_bytes()).hexdigest()
    assert meta["model_mri_ct.pt"]["lineage"][0]["started_from"].startswith("the joint weights 0.4.0")


def test_shipped_model_fuses_a_phantom_pair_between_its_sources(phantom: Path) -> None:
    """A trained model keeps the MRI's structure and adds the PET's activity: its output follows the MRI, it
    correlates with the PET clearly more than the MRI itself does (a random, collapsed or MRI-copying model
    does not), and it is not a copy of either source."""
    item = json.loads((phantom / "datalists" / "png_pet.json").read_text())["test"][0]
    arrays = []
    for key in ("mri", "other"):
        with Image.open(phantom / item[key]) as im:
            arrays.append(np.asarray(im.convert("RGB") if im.mode != "L" else im))
    fused = load_fuser(BUNDLE, task="mri_pet", device="cpu")(*arrays, colour=False).astype(np.float64)
    mri = arrays[0].astype(np.float64) if arrays[0].ndim == 2 else arrays[0][..., 0].astype(np.float64)
    pet_y = arrays[1].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    head = (mri > 10) | (pet_y > 10)
    r_mri = np.corrcoef(fused[head], mri[head])[0, 1]
    r_pet = np.corrcoef(fused[head], pet_y[head])[0, 1]
    r_sources = np.corrcoef(mri[head], pet_y[head])[0, 1]
    assert r_mri > 0.5 and r_pet > r_sources + 0.05, (r_mri, r_pet, r_sources)
    assert np.abs(fused - mri).mean() > 2 and np.abs(fused - pet_y).mean() > 2
