"""Inputs that used to give silent wrong results (docs/failure_behaviour.md):

- a DICOM slice that its rescale blanks (RescaleSlope 0) is refused, naming the file;
- a 2-D pair the wrong way round (the pseudo-colour PET as the MRI) is refused, with the fix;
- a PixelSpacing that contradicts ReconstructionDiameter / Rows, and a NIfTI whose qform and sform differ, are
  warnings naming both values;
- bundle inference logs the registration it did and the transform it found, and records it, with the
  hot-spot guard's figures, in its MLflow run.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import mlflow
import nibabel as nib
import numpy as np
import pydicom
import pytest

from hkafusion_monai.handlers import default_tracking_uri
from hkafusion_monai.transforms import LoadFusionVolumed
from hkafusion_monai.utils import FusionInputError
from tests.helpers import BUNDLE, last_line, random_checkpoint, run_inference


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_checkpoint(tmp_path_factory)


def _copy_series(src: Path, dst: Path, edit=None, **changes: object) -> Path:
    """A copy of a DICOM series folder with header attributes changed (``edit(index, ds)`` per file)."""
    dst.mkdir(parents=True)
    for i, f in enumerate(sorted(src.iterdir())):
        ds = pydicom.dcmread(f)
        for key, value in changes.items():
            setattr(ds, key, value)
        if edit is not None:
            edit(i, ds)
        ds.save_as(dst / f.name)
    return dst


# ----------------------------------------------------------------------------------- a blanked slice


def test_a_slice_blanked_by_its_rescale_is_refused_naming_the_file(phantom: Path, ckpt: Path, tmp_path: Path) -> None:
    """One PET slice at RescaleSlope 0 among slices that are not: the command line ends with one line naming
    the file and the slope, and writes nothing."""

    def slope_zero(i: int, ds: pydicom.Dataset) -> None:
        if i == 7:
            ds.RescaleSlope = 0

    pet = _copy_series(phantom / "dicom/sub-000/PT", tmp_path / "PT", slope_zero)
    out = tmp_path / "out"
    result = run_inference(ckpt, out, phantom / "dicom/sub-000/MR", pet, "--task", "mri_pet")
    assert result.returncode != 0
    last = last_line(result)
    assert last.startswith(f"error: {pet / 'IM0008.dcm'}: slice 8 of 20"), result.stderr[-2000:]
    assert "RescaleSlope 0" in last and "Traceback" not in result.stderr
    assert not list(out.glob("*.nii*"))


def test_a_blank_slice_between_two_that_are_not_is_refused_and_a_blank_end_passes(phantom: Path, tmp_path: Path):
    def blank(indices: tuple[int, ...]):
        def edit(i: int, ds: pydicom.Dataset) -> None:
            if i in indices:
                ds.PixelData = np.zeros_like(ds.pixel_array).tobytes()

        return edit

    inner = _copy_series(phantom / "dicom/sub-000/PT", tmp_path / "inner", blank((10,)))
    with pytest.raises(FusionInputError, match=r"IM0011\.dcm: slice 11 of 20 .* every pixel is 0"):
        LoadFusionVolumed(["v"])({"v": inner})
    end = _copy_series(phantom / "dicom/sub-000/PT", tmp_path / "end", blank((0, 1)))  # outside the field of view
    assert LoadFusionVolumed(["v"])({"v": end})["v"].shape[-1] == 20


# ----------------------------------------------------------------------------------- a reversed 2-D pair


def test_a_pseudo_colour_mri_is_refused_with_the_fix(phantom: Path, ckpt: Path, tmp_path: Path) -> None:
    """The PET PNG given as --mri and the MRI as --other: one line naming the file and the fix."""
    item = json.loads((phantom / "datalists" / "png_pet.json").read_text())["test"][0]
    mri, pet = phantom / item["mri"], phantom / item["other"]
    # the MLflow store is named outside the output folder: this checks what the run itself creates there
    store = f"sqlite:///{tmp_path / 'store' / 'mlruns.db'}"
    (tmp_path / "store").mkdir()
    result = run_inference(ckpt, tmp_path / "out", pet, mri, "--task", "mri_pet", "--tracking_uri", store)
    assert result.returncode != 0
    last = last_line(result)
    assert last.startswith(f"error: {pet}: a pseudo-colour image"), result.stderr[-2000:]
    assert "swap --mri and --other" in last and "Traceback" not in result.stderr
    # one error line, the last, and no ignite ERROR line before it (the refused input is said once)
    lines = result.stderr.splitlines()
    assert [line for line in lines if line.startswith("error:")] == [last], result.stderr[-2000:]
    assert not [line for line in lines if " ERROR " in line or line.startswith("ERROR")], result.stderr[-2000:]
    # nothing was created: the output folder did not exist and still does not
    assert not (tmp_path / "out").exists()
    # an existing output folder is left as it was
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "earlier.txt").write_text("kept")
    result = run_inference(ckpt, tmp_path / "out", pet, mri, "--task", "mri_pet", "--tracking_uri", store)
    assert result.returncode != 0 and last_line(result).startswith(f"error: {pet}: a pseudo-colour image")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["earlier.txt"]
    # the notebook path refuses the same pair
    from PIL import Image

    from hkafusion_monai.inference import load_fuser

    fuser = load_fuser(bundle_dir=BUNDLE, task="mri_pet", weights=ckpt, device="cpu")
    rgb, grey = np.asarray(Image.open(pet).convert("RGB")), np.asarray(Image.open(mri).convert("L"))
    with pytest.raises(FusionInputError, match="swap --mri and --other"):
        fuser(rgb, grey)
    assert fuser(grey, rgb).shape == rgb.shape  # the right way round, and a grey MRI stored as RGB, pass
    assert fuser(np.repeat(grey[..., None], 3, axis=-1), rgb).shape == rgb.shape


# ----------------------------------------------------------------------------------- geometry warnings


def test_pixel_spacing_against_the_reconstruction_diameter_is_a_warning(phantom: Path, tmp_path: Path, caplog) -> None:
    """The phantom's PET: 40 rows of 6 mm; a ReconstructionDiameter of 300 mm says 7.5 mm."""
    wrong = _copy_series(phantom / "dicom/sub-000/PT", tmp_path / "wrong", ReconstructionDiameter=300)
    right = _copy_series(phantom / "dicom/sub-000/PT", tmp_path / "right", ReconstructionDiameter=240)
    with caplog.at_level(logging.WARNING, logger="hkafusion_monai"):
        volume = LoadFusionVolumed(["v"])({"v": wrong})["v"]
        LoadFusionVolumed(["v"])({"v": right})
    messages = [r.getMessage() for r in caplog.records if "ReconstructionDiameter" in r.getMessage()]
    assert len(messages) == 1, messages
    assert str(wrong) in messages[0] and "PixelSpacing 6\\6 mm" in messages[0]
    assert "ReconstructionDiameter 300 mm / Rows 40 = 7.5 mm" in messages[0]
    np.testing.assert_allclose(np.abs(np.diag(np.asarray(volume.affine))[:2]), [6.0, 6.0])  # still PixelSpacing


def test_a_nifti_whose_qform_and_sform_differ_is_a_warning(phantom: Path, tmp_path: Path, caplog) -> None:
    img = nib.load(phantom / "nifti" / "sub-000" / "pet.nii.gz")
    sform = img.affine.copy()
    sform[0, 3] += 40.0
    moved = nib.Nifti1Image(np.asanyarray(img.dataobj), None, img.header)
    moved.set_qform(img.affine, code=1)
    moved.set_sform(sform, code=1)
    path = tmp_path / "pet.nii.gz"
    nib.save(moved, path)
    with caplog.at_level(logging.WARNING, logger="hkafusion_monai"):
        volume = LoadFusionVolumed(["v"])({"v": path})["v"]
        LoadFusionVolumed(["v"])({"v": phantom / "nifti" / "sub-000" / "pet.nii.gz"})  # equal forms: quiet
    messages = [r.getMessage() for r in caplog.records if "qform" in r.getMessage()]
    assert len(messages) == 1, messages
    q, s = img.affine[0, 3], sform[0, 3]
    assert str(path) in messages[0] and "40.0 mm apart" in messages[0] and "the sform is used" in messages[0]
    assert f"qform [{img.affine[0, 0]:.4g} 0 0 {q:.4g};" in messages[0]
    assert f"sform [{sform[0, 0]:.4g} 0 0 {s:.4g};" in messages[0]
    np.testing.assert_allclose(np.asarray(volume.affine), sform, atol=1e-4)


# ----------------------------------------------------------------------------------- what a run records


def test_inference_logs_and_records_the_registration_and_the_hot_spot_guard(phantom: Path, ckpt: Path, tmp_path: Path):
    """A PET series in another frame of reference: the run logs that it registered the pair, with the
    transform, and the hot-spot guard's verdict; its MLflow run holds both (metrics per pair and the artifact
    ``inference_checks.json``), and names no file."""
    import pydicom.uid

    pet = _copy_series(phantom / "dicom/sub-000/PT", tmp_path / "PT", FrameOfReferenceUID=pydicom.uid.generate_uid())
    out = tmp_path / "out"
    result = run_inference(ckpt, out, phantom / "dicom/sub-000/MR", pet, "--task", "mri_pet")
    assert result.returncode == 0, result.stderr[-3000:]
    log = (result.stdout + result.stderr).splitlines()  # MONAI's logging.conf logs to stdout
    registered = [line for line in log if "registered" in line and "rigidly" in line]
    assert len(registered) == 1 and "rotation" in registered[0] and "world matrix" in registered[0], log[-20:]
    guard = [line for line in log if "hot-spot guard" in line]
    assert len(guard) == 1 and "hot spot(s) of the PET" in guard[0], log[-20:]
    client = mlflow.MlflowClient(default_tracking_uri())
    (run,) = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    metrics = run.data.metrics
    assert {"registration_rotation_deg", "registration_shift_mm", "registration_metric"} <= set(metrics)
    assert metrics["registration_rotation_deg"] < 5.0 and metrics["registration_shift_mm"] < 5.0
    assert metrics["hot_spots_found"] >= 1 and "hot_spots_lost" in metrics
    assert run.data.params["hot_spot_min_kept"] == "0.5"
    local = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id,
        artifact_path="inference_checks.json",
        tracking_uri=default_tracking_uri(),
        dst_path=str(tmp_path / "artifacts"),
    )
    text = Path(local).read_text()
    record = json.loads(text)["pairs"][0]
    assert np.asarray(record["registration"]["matrix"]).shape == (4, 4) and record["modality"] == "PET"
    spot = record["hot_spots"][0]
    assert {"position", "radius", "contrast", "kept", "lost", "mri_voxel", "ras_mm"} <= set(spot)
    assert str(phantom) not in text and str(tmp_path) not in text  # no file or folder names
