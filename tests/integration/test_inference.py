"""The inference workflow ``bundle/configs/inference.json``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from hkafusion_monai.handlers import default_tracking_uri
from hkafusion_monai.inference import check_outputs, inference_items
from hkafusion_monai.io import atomic_write, output_name
from hkafusion_monai.transforms import LoadFusionVolumed
from tests.helpers import BUNDLE, INFERENCE_JSON, REPO, infer, random_checkpoint


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_checkpoint(tmp_path_factory)


def _item(phantom: Path, datalist: str) -> dict:
    item = json.loads((phantom / "datalists" / datalist).read_text())["training"][0]
    return {k: str(phantom / v) if k in ("mri", "other") else v for k, v in item.items()}


def _chain(error: BaseException) -> str:
    """The messages of an error and its causes: MONAI wraps a config expression's error in a RuntimeError."""
    parts = []
    while error is not None:
        parts.append(f"{type(error).__name__}: {error}")
        error = error.__cause__
    return "\n".join(parts)


def test_command_line_png_pair_and_mlflow(tmp_path: Path, ckpt: Path, phantom: Path) -> None:
    """``python -m monai.bundle run inference --mri A --other B``: a colour PNG and one logged MLflow run."""
    item = _item(phantom, "png_pet.json")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "inference", "--config_file", str(INFERENCE_JSON)]
    cmd += ["--mri", item["mri"], "--other", item["other"], "--output_dir", str(out), "--ckpt_path", str(ckpt)]
    cmd += ["--bundle_root", str(BUNDLE), "--progress", "false"]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    env.pop("MLFLOW_TRACKING_URI", None)
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    png = out / output_name(item["mri"], "2d")
    image = Image.open(png)
    assert image.mode == "RGB" and image.size == (256, 256)
    assert not [p for p in out.iterdir() if ".tmp" in p.name]  # no temporary files left

    client = mlflow.MlflowClient(default_tracking_uri())
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert len(runs) == 1
    params, metrics = runs[0].data.params, runs[0].data.metrics
    assert params["inputs_count"] == "1" and len(params["inputs_sha256"]) == 64
    assert params["model_version"] == json.loads((BUNDLE / "configs" / "metadata.json").read_text())["version"]
    assert len(params["checkpoint_sha256"]) == 64
    assert metrics["inference_seconds"] > 0 and metrics["outputs_written"] == 1
    assert item["mri"] not in json.dumps(params)  # paths can identify patients: only their hash is logged


def test_dicom_volume_pair_to_nifti_with_the_mri_affine(tmp_path: Path, ckpt: Path, phantom: Path) -> None:
    item = _item(phantom, "dicom_pet.json")
    out = tmp_path / "out"
    infer(ckpt, out, mri=item["mri"], other=item["other"])
    written = out / output_name(item["mri"], "volume")
    assert written.name == "sub-000_MR_fused.nii.gz"
    fused = nib.load(written)
    mri = LoadFusionVolumed(["mri"])({"mri": item["mri"]})["mri"]
    assert fused.shape == tuple(mri.shape[1:])
    np.testing.assert_allclose(fused.affine, np.asarray(mri.affine), atol=1e-4)
    values = np.asarray(fused.dataobj)
    assert values.dtype == np.float32 and 0.0 <= values.min() and values.max() <= 1.0


def test_dicom_volume_pair_to_a_derived_dicom_series(tmp_path: Path, ckpt: Path, phantom: Path) -> None:
    """``--output_format dicom``: the derived MR series on the MRI grid, with the pixels of the NIfTI output."""
    import pydicom

    item = _item(phantom, "dicom_pet.json")
    infer(ckpt, tmp_path / "nifti", mri=item["mri"], other=item["other"])
    infer(ckpt, tmp_path / "dicom", mri=item["mri"], other=item["other"], output_format="dicom")
    series = tmp_path / "dicom" / output_name(item["mri"], "dicom")
    files = sorted(series.glob("MR_*.dcm"))
    assert len(files) == len(list(Path(item["mri"]).iterdir()))
    ds = pydicom.dcmread(files[0], stop_before_pixels=True)
    assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"] and "HKAFusion" in ds.DerivationDescription
    fused = LoadFusionVolumed(["v"])({"v": str(series)})["v"]
    mri = LoadFusionVolumed(["v"])({"v": item["mri"]})["v"]
    np.testing.assert_allclose(fused.affine.numpy(), mri.affine.numpy(), atol=1e-4)
    nifti = nib.load(tmp_path / "nifti" / output_name(item["mri"], "volume")).get_fdata()
    assert np.abs(fused.as_tensor().numpy()[0] / 65535.0 - nifti).max() <= 1.0 / 65535.0 + 1e-6
    with pytest.raises(ValueError, match="DICOM series folders"):
        png = _item(phantom, "png_pet.json")
        inference_items(mri=png["mri"], other=png["other"], output_format="dicom")


def test_existing_outputs_are_kept_unless_overwrite(tmp_path: Path, ckpt: Path, phantom: Path) -> None:
    item = _item(phantom, "png_ct.json")
    out = tmp_path / "out"
    target = out / output_name(item["mri"], "2d")
    out.mkdir()
    target.write_bytes(b"keep me")
    with pytest.raises(Exception) as info:
        infer(ckpt, out, mri=item["mri"], other=item["other"])
    assert "OutputExistsError: " in _chain(info.value)
    assert "1 output(s) exist and are kept; pass --overwrite true" in _chain(info.value)
    assert target.read_bytes() == b"keep me"
    infer(ckpt, out, mri=item["mri"], other=item["other"], overwrite="true")  # as the command line passes it
    assert Image.open(target).mode == "L"  # a grey CT source gives a grey result


def test_missing_weights_are_named(tmp_path: Path, phantom: Path) -> None:
    item = _item(phantom, "png_pet.json")
    with pytest.raises(Exception) as info:
        infer(tmp_path / "absent.pt", tmp_path / "out", mri=item["mri"], other=item["other"])
    message = _chain(info.value)
    assert "CheckpointNotFoundError: no HKAFusion checkpoint at" in message and "--ckpt_path" in message
    assert not (tmp_path / "out" / output_name(item["mri"], "2d")).exists()


def test_inference_items(tmp_path: Path, phantom: Path) -> None:
    datalist = phantom / "datalists" / "dicom_pet.json"
    items = inference_items(datalist=str(datalist), split="training", output_dir=tmp_path)
    assert items[0]["output"] == str(tmp_path / "sub-000_MR_fused.nii.gz")
    png = _item(phantom, "png_pet.json")
    (one,) = inference_items(png["mri"], png["other"], task="mri_spect", output_dir=tmp_path)
    assert one["modality"] == "SPECT" and one["output"].endswith("_fused.png")
    with pytest.raises(ValueError, match="give both"):
        inference_items(mri=png["mri"])
    with pytest.raises(ValueError, match="nothing to fuse"):
        inference_items()
    with pytest.raises(FileNotFoundError, match="missing --other input"):
        inference_items(png["mri"], str(tmp_path / "nope.png"))
    with pytest.raises(ValueError, match="two 2-D images or two volumes"):
        inference_items(png["mri"], _item(phantom, "nifti_pet.json")["other"])
    with pytest.raises(ValueError, match="would both write"):
        check_outputs([one, dict(one)])


def test_atomic_write_never_clobbers(tmp_path: Path) -> None:
    target = tmp_path / "a.png"
    atomic_write(target, lambda tmp: Path(tmp).write_bytes(b"one"))
    with pytest.raises(FileExistsError, match="--overwrite"):
        atomic_write(target, lambda tmp: Path(tmp).write_bytes(b"two"))
    assert target.read_bytes() == b"one"

    def fail(tmp: str) -> None:
        Path(tmp).write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, fail, overwrite=True)
    assert target.read_bytes() == b"one" and sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_the_task_follows_the_secondary_modality(phantom: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A DICOM CT series is fused as MRI-CT without --task; a 2-D pair with no clue says what it assumed."""
    from hkafusion_monai.inference import task_of

    items = inference_items(mri=phantom / "dicom/sub-000/MR", other=phantom / "dicom/sub-000/CT", output_dir=".")
    assert items[0]["modality"] == "CT" and task_of(items) == "mri_ct"
    item = _item(phantom, "png_ct.json")
    assert task_of(inference_items(mri=item["mri"], other=item["other"], task="mri_ct")) == "mri_ct"
    with caplog.at_level("WARNING"):
        items = inference_items(mri=item["mri"], other=item["other"])
    assert task_of(items) == "mri_pet" and "assuming PET (task mri_pet)" in caplog.text
    spect = inference_items(mri=phantom / "dicom/sub-000/MR", other=phantom / "dicom/sub-000/NM")
    assert task_of(spect) == "mri_spect"
