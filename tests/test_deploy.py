"""The MONAI Deploy application end to end on phantom studies, and each selection/geometry failure.

Runs ``python -m hkafusion_monai.deploy`` as a user or a MAP would. Needs requirements-deploy.txt
(monai-deploy-app-sdk): skipped without it locally, failed under CI.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from _inference import random_checkpoint
from conftest import REPO_ROOT, require_module

from hkafusion_monai.inference import load_fuser
from hkafusion_monai.transforms.volume import LoadFusionVolumed

MODALITY = {"CT": "CT", "PT": "PET"}


@pytest.fixture(scope="module", autouse=True)
def _sdk():
    require_module("monai.deploy.core", "requirements-deploy.txt: monai-deploy-app-sdk")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return random_checkpoint(tmp_path_factory)


def _study(root: Path, subject: Path, series: list[str]) -> Path:
    """A study folder holding copies of the subject's named series folders."""
    root.mkdir(parents=True)
    for name in series:
        shutil.copytree(subject / name, root / name)
    return root


def _deploy(inp: Path, out: Path, model: Path, map_env: bool = False) -> subprocess.CompletedProcess:
    """Run the application's command line; ``map_env`` passes the paths as a MAP does (``HOLOSCAN_*_PATH``)."""
    environ = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "hkafusion_monai.deploy"]
    if map_env:
        environ.update(HOLOSCAN_INPUT_PATH=str(inp), HOLOSCAN_OUTPUT_PATH=str(out), HOLOSCAN_MODEL_PATH=str(model))
    else:
        cmd += ["-i", str(inp), "-o", str(out), "-m", str(model)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO_ROOT, env=environ)


def _load(folder: Path) -> torch.Tensor:
    return LoadFusionVolumed(["v"])({"v": str(folder)})["v"]


@pytest.mark.parametrize("secondary", ["CT", "PT"])
def test_end_to_end(phantom: Path, tmp_path: Path, checkpoint: Path, secondary: str):
    subject = phantom / "dicom" / "sub-001"
    study = _study(tmp_path / "in", subject, ["MR", secondary])
    before = {p: p.read_bytes() for p in study.rglob("*") if p.is_file()}
    out = tmp_path / "out"
    proc = _deploy(study, out, checkpoint, map_env=secondary == "CT")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert {p: p.read_bytes() for p in study.rglob("*") if p.is_file()} == before, "an input was modified"
    (series_dir,) = [p for p in out.iterdir() if not p.name.startswith(".")]
    files = sorted(series_dir.glob("MR_*.dcm"))
    mr_files = sorted((study / "MR").iterdir())
    assert len(files) == len(mr_files)

    # UIDs: same patient, study and frame of reference; a new series of new instances
    src = pydicom.dcmread(mr_files[0], stop_before_pixels=True)
    other = pydicom.dcmread(next((study / secondary).iterdir()), stop_before_pixels=True)
    out_ds = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    assert {d.StudyInstanceUID for d in out_ds} == {src.StudyInstanceUID}
    assert {d.PatientID for d in out_ds} == {src.PatientID}
    assert {d.FrameOfReferenceUID for d in out_ds} == {src.FrameOfReferenceUID}
    (new_series,) = {d.SeriesInstanceUID for d in out_ds}
    assert new_series not in (src.SeriesInstanceUID, other.SeriesInstanceUID)
    src_uids = {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in mr_files}
    assert not src_uids & {d.SOPInstanceUID for d in out_ds}
    assert {i.SeriesInstanceUID for i in out_ds[0].ReferencedSeriesSequence} == {
        src.SeriesInstanceUID, other.SeriesInstanceUID
    }

    # geometry: the fused series lies exactly on the MR grid
    fused = _load(series_dir)
    mri, sec = _load(study / "MR"), _load(study / secondary)
    np.testing.assert_allclose(fused.affine.numpy(), mri.affine.numpy(), atol=1e-4)
    assert fused.shape == mri.shape

    # pixels: what load_fuser gives on the same volumes, within the 16-bit quantisation
    fuser = load_fuser(weights=checkpoint, task="mri_pet", device="cpu")
    expected = fuser.fuse_volumes(mri, sec, modality=MODALITY[secondary]).as_tensor()
    got = fused.as_tensor().float() / 65535.0
    assert expected.shape == got.shape
    assert float((got - expected).abs().max()) <= 1.0 / 65535.0 + 1e-6
    assert float(expected.max() - expected.min()) > 0.01  # not a constant (a random network varies little)


def _shift(folder: Path, mm: float) -> None:
    for f in folder.iterdir():
        ds = pydicom.dcmread(f)
        ds.ImagePositionPatient = [float(v) + mm for v in ds.ImagePositionPatient]
        ds.save_as(f)


def _drop_position(folder: Path) -> None:
    f = sorted(folder.iterdir())[0]
    ds = pydicom.dcmread(f)
    del ds.ImagePositionPatient
    ds.save_as(f)


@pytest.mark.parametrize(
    "series, edit, message",
    [
        (["CT"], None, "no MR series matches"),
        (["MR"], None, "no CT, PET \\(PT\\) or SPECT \\(NM\\) series matches"),
        (["MR", "CT", "PT"], None, "2 series match the 'secondary' selection rule"),
        (["MR", "PT"], "shift", "do not overlap"),
        (["MR", "PT"], "no-position", "no valid ImagePositionPatient"),
    ],
    ids=["no-mr", "no-secondary", "two-candidates", "no-overlap", "slice-without-position"],
)
def test_selection_and_geometry_failures(phantom, tmp_path, checkpoint, capfd, series, edit, message):
    study = _study(tmp_path / "in", phantom / "dicom" / "sub-000", series)
    if edit == "shift":
        _shift(study / "PT", 2000.0)
    elif edit == "no-position":  # the SDK would drop this slice and fuse a shorter series
        _drop_position(study / "MR")
    out = tmp_path / "out"
    # in this process (the entry point's main(), as the command line calls it): no interpreter start-up per case
    from hkafusion_monai.deploy.__main__ import main

    code = main(["-i", str(study), "-o", str(out), "-m", str(checkpoint)])
    stderr = capfd.readouterr().err
    assert code == 1, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert errors, stderr[-3000:]
    assert re.search(message, stderr), stderr[-3000:]
    assert str(study) in stderr or "series" in stderr
    assert not out.exists() or not any(out.iterdir()), "something was written"


def test_rules_decide_between_candidates(phantom, tmp_path, checkpoint, monkeypatch):
    """Several candidates pass when the rules name the modality; the written series references PET."""
    import json

    from hkafusion_monai.deploy.operators import DEFAULT_RULES

    study = _study(tmp_path / "in", phantom / "dicom" / "sub-000", ["MR", "CT", "PT"])
    rules = json.loads(DEFAULT_RULES.read_text())
    rules["selections"][1]["conditions"]["Modality"] = "(?i)^PT$"
    rules["fusion"]["colour_series"] = True
    rules_file = tmp_path / "rules.json"
    rules_file.write_text(json.dumps(rules))
    out = tmp_path / "out"
    monkeypatch.setenv("HKAFUSION_RULES", str(rules_file))
    from hkafusion_monai.deploy.__main__ import main

    assert main(["-i", str(study), "-o", str(out), "-m", str(checkpoint)]) == 0
    (series_dir,) = list(out.iterdir())
    ds = pydicom.dcmread(sorted(series_dir.glob("MR_*.dcm"))[0], stop_before_pixels=True)
    assert "MR+PT" in ds.SeriesDescription
    sc = sorted(series_dir.glob("SC_*.dcm"))
    assert len(sc) == len(list(series_dir.glob("MR_*.dcm")))
    assert pydicom.dcmread(sc[0]).PhotometricInterpretation == "RGB"


def test_app_yaml_matches_the_bundle():
    """The MAP settings name this bundle's version, and the application folder has what the packager needs."""
    import json

    import yaml

    deploy = REPO_ROOT / "hkafusion_monai" / "deploy"
    settings = yaml.safe_load((deploy / "app.yaml").read_text())
    version = json.loads((REPO_ROOT / "bundle" / "configs" / "metadata.json").read_text())["version"]
    assert str(settings["application"]["version"]) == version
    assert settings["application"]["inputFormats"] == ["file"] and settings["application"]["outputFormats"] == ["file"]
    assert {"cpu", "memory"} <= set(settings["resources"])
    assert (deploy / "__main__.py").is_file()
    requirements = (deploy / "requirements.txt").read_text()
    assert f"hkafusion-monai=={version}" in requirements and "monai-deploy-app-sdk==4.0.0" in requirements
