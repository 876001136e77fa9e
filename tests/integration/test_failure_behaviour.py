"""Failure behaviour at the entry points (docs/failure_behaviour.md): what is refused, what is never
overwritten, what an interrupted or failed run leaves behind, and that every error the project raises ends the
command with its own message as the last line of stderr and a non-zero exit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import mlflow
import numpy as np
import pydicom
import pytest
import torch

from hkafusion_monai.handlers import default_tracking_uri
from hkafusion_monai.inference import FusionInferer, load_fuser
from hkafusion_monai.reports.run_status import run_tracked
from hkafusion_monai.utils import CheckpointError, RefusedPairError
from hkafusion_monai.utils.cli import project_error
from tests.helpers import (
    BUNDLE,
    REPO,
    bundle_command,
    bundle_env,
    last_line,
    random_checkpoint,
    run_bundle,
    run_inference,
    training_args,
)

TRAIN_JSON = str(BUNDLE / "configs" / "train.json")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_checkpoint(tmp_path_factory)


def _copy_series(src: Path, dst: Path, **changes: object) -> Path:
    """A copy of a DICOM series folder with some header attributes changed (the source is never modified)."""
    dst.mkdir(parents=True)
    for f in sorted(src.iterdir()):
        ds = pydicom.dcmread(f)
        for key, value in changes.items():
            setattr(ds, key, value)
        ds.save_as(dst / f.name)
    return dst


# ----------------------------------------------------------------------------------- silent wrong results


def test_two_patients_are_refused_at_the_command_line(ckpt: Path, phantom: Path, tmp_path: Path) -> None:
    """An MR of one patient with the PET of another: exit 1, one line naming both IDs, nothing written."""
    out = tmp_path / "out"
    result = run_inference(
        ckpt, out, phantom / "dicom/sub-000/MR", phantom / "dicom/sub-001/PT", "--output_format", "dicom"
    )
    assert result.returncode != 0
    last = last_line(result)
    assert last.startswith("error: ") and "different patients" in last, result.stderr[-2000:]
    assert "PHANTOM-0-000" in last and "PHANTOM-0-001" in last and "allow_patient_mismatch" in last
    assert "Traceback" not in result.stderr  # the traceback only under HKAFUSION_DEBUG=1
    assert not out.exists() or not [p for p in out.iterdir() if "fused" in p.name]


def test_two_patients_are_refused_by_load_fuser_unless_allowed(ckpt: Path, phantom: Path) -> None:
    from hkafusion_monai.transforms import LoadFusionVolumed

    d = LoadFusionVolumed(["mri", "other"])(
        {"mri": phantom / "dicom/sub-000/MR", "other": phantom / "dicom/sub-001/PT"}
    )
    fuser = load_fuser(bundle_dir=BUNDLE, task="mri_pet", weights=ckpt, device="cpu")
    with pytest.raises(RefusedPairError, match="different patients"):
        fuser.fuse_volumes(d["mri"], d["other"], modality="PET", register=False)
    fused = fuser.fuse_volumes(d["mri"], d["other"], modality="PET", register=False, allow_patient_mismatch=True)
    assert fused.shape == d["mri"].shape


def test_another_frame_of_reference_is_registered_by_default(ckpt: Path, phantom: Path, tmp_path: Path) -> None:
    """A secondary series in another frame of reference, and moved: the bundle registers it (as Deploy does)
    unless told --register false, in which case the misaligned volumes are fused as given."""
    from hkafusion_monai.inference import bundle_pipeline

    moved = _copy_series(phantom / "dicom/sub-000/PT", tmp_path / "PT", FrameOfReferenceUID=pydicom.uid.generate_uid())
    item = {"mri": phantom / "dicom/sub-000/MR", "other": moved, "modality": "PET"}
    # inference.json's volume chain up to the resampling, which gives the other volume the MRI's metadata
    steps = list(bundle_pipeline().preprocessing.volume.transforms)
    chain = steps[: [type(t).__name__ for t in steps].index("ResampleToMatchd")]
    data = dict(item)
    for t in chain:
        data = t(data)
    assert "rigid_registration" in data["other"].meta, "a different frame of reference must be registered"
    data = dict(item, register="false")
    for t in chain:
        data = t(data)
    assert "rigid_registration" not in data["other"].meta

    # the command line: registered by default, so the result differs from the unregistered fusion
    out = tmp_path / "auto"
    result = run_inference(ckpt, out, item["mri"], moved, "--task", "mri_pet")
    assert result.returncode == 0, result.stderr[-2000:]
    import nibabel as nib

    from hkafusion_monai.transforms import LoadFusionVolumed

    fused = np.asanyarray(nib.load(next(out.glob("*.nii.gz"))).dataobj)
    d = LoadFusionVolumed(["mri", "other"])({"mri": item["mri"], "other": moved})
    fuser = load_fuser(bundle_dir=BUNDLE, task="mri_pet", weights=ckpt, device="cpu")
    unregistered = fuser.fuse_volumes(d["mri"], d["other"], register=False)[0].numpy()
    assert fused.shape == unregistered.shape and not np.allclose(fused, unregistered, atol=1e-3)


def test_a_secondary_covering_one_mri_slice_is_refused(ckpt: Path, phantom: Path, tmp_path: Path) -> None:
    from hkafusion_monai.transforms import LoadFusionVolumed

    mri = LoadFusionVolumed(["mri"])({"mri": phantom / "dicom/sub-000/MR"})["mri"]
    z_extent = float(mri.affine[2, 2]) * mri.shape[3]
    shifted = []
    src = sorted((phantom / "dicom/sub-000/PT").iterdir())
    dst = tmp_path / "PT"
    dst.mkdir()
    for f in src:  # moved up so that only about one MR slice remains covered
        ds = pydicom.dcmread(f)
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y, z + abs(z_extent) * 0.95]
        ds.save_as(dst / f.name)
        shifted.append(dst / f.name)
    out = tmp_path / "out"
    result = run_inference(ckpt, out, phantom / "dicom/sub-000/MR", dst, "--register", "false")
    assert result.returncode != 0
    last = last_line(result)
    assert last.startswith("error: ") and "of the mri volume" in last and "fused against zeros" in last, last


# ----------------------------------------------------------------------------------- lost or false results


def _train(out: Path, datalist: Path, *extra: str) -> subprocess.CompletedProcess:
    return run_bundle(*training_args(out, datalist), *extra)


def test_training_never_replaces_an_earlier_run(phantom: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    datalist = phantom / "datalists" / "png_pet.json"
    first = _train(out, datalist)
    assert first.returncode == 0, first.stderr[-3000:]
    before = {p.name: p.read_bytes() for p in (out / "checkpoints").glob("*.pt")}
    assert {"model.pt", "model_final.pt"} <= set(before)
    second = _train(out, datalist)
    assert second.returncode != 0
    last = last_line(second)
    assert last.startswith("error: ") and "--resume true" in last and "--overwrite true" in last, last
    assert {p.name: p.read_bytes() for p in (out / "checkpoints").glob("*.pt")} == before
    third = _train(out, datalist, "--overwrite", "true")
    assert third.returncode == 0, third.stderr[-3000:]


def test_training_without_a_batch_is_refused(phantom: Path, tmp_path: Path) -> None:
    """Fewer training pairs than the batch size with drop_last: no 'best' model of an untrained network."""
    out = tmp_path / "run"
    result = _train(out, phantom / "datalists" / "png_pet.json", "--batch_size", "64")
    assert result.returncode != 0
    last = last_line(result)
    assert last.startswith("error: the training data yield no batch") and "batch_size 64" in last, last
    assert not list(out.glob("checkpoints/*.pt"))


def test_failed_and_interrupted_runs_end_failed_and_killed(tmp_path: Path) -> None:
    from ignite.engine import Engine
    from monai.handlers import MLFlowHandler

    from hkafusion_monai.handlers import MLflowRun

    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    client = mlflow.MlflowClient(uri)

    def interrupted() -> None:
        raise KeyboardInterrupt

    def failed() -> None:
        raise RuntimeError("boom")

    steps = (
        (interrupted, KeyboardInterrupt, "KILLED"),
        (failed, RuntimeError, "FAILED"),
        (lambda: sys.exit(143), SystemExit, "KILLED"),
    )
    for i, (step, raised, status) in enumerate(steps):
        handler = MLFlowHandler(tracking_uri=uri, experiment_name="status", run_name=f"run_{i}")
        run = MLflowRun(handler, uri)
        handler.start(Engine(lambda e, b: None))
        run.started()
        run_id = run.run_id
        with pytest.raises(raised):
            run_tracked(run, step)
        assert client.get_run(run_id).info.status == status
        assert not run.active  # nothing marks it FINISHED afterwards


def test_a_failing_evaluation_run_ends_failed(phantom: Path, ckpt: Path, tmp_path: Path) -> None:
    """A corrupt test image: the evaluation exits non-zero with the file named, and its MLflow run is FAILED."""
    data = json.loads((phantom / "datalists" / "png_pet.json").read_text())
    base = (phantom / "datalists" / data.get("base_dir", ".")).resolve()
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    test = [dict(item) for item in data["test"]]
    test.append({**test[0], "mri": str(bad)})
    for item in test:
        for key in ("mri", "other"):
            item[key] = str(base / item[key]) if not Path(item[key]).is_absolute() else item[key]
    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps({**{k: v for k, v in data.items() if k != "base_dir"}, "test": test}))
    evaluate = str(BUNDLE / "configs" / "evaluate.json")
    result = run_bundle(
        "evaluating",
        "--config_file",
        json.dumps([TRAIN_JSON, evaluate]),
        "--bundle_root",
        str(BUNDLE),
        "--output_dir",
        str(tmp_path / "out"),
        "--datalist",
        str(datalist),
        "--ckpt_path",
        str(ckpt),
        "--task",
        "mri_pet",
        "--run_name",
        "broken",
        "--device",
        "$torch.device('cpu')",
    )
    assert result.returncode != 0
    assert last_line(result).startswith("error: ") and "bad.png" in last_line(result), result.stderr[-2000:]
    client = mlflow.MlflowClient(default_tracking_uri())
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert [r.info.status for r in runs if r.info.run_name == "broken"] == ["FAILED"]


SIGTERM_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from hkafusion_monai.utils.cli import install_cli_handlers
    from hkafusion_monai.io.atomic import atomic_write, atomic_write_dir
    install_cli_handlers()
    out = Path(sys.argv[1])
    def half_written(tmp):
        Path(tmp).write_bytes(b"partial")
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not stop the write")
    def half_written_dir(tmp):
        (Path(tmp) / "IM0001.dcm").write_bytes(b"partial")
        os.kill(os.getpid(), signal.SIGTERM)
    target = sys.argv[2]
    if target == "file":
        atomic_write(out / "fused.png", half_written)
    else:
        atomic_write_dir(out / "fused_series", half_written_dir)
    """
)


@pytest.mark.parametrize("target", ["file", "dir"])
def test_sigterm_leaves_no_partial_output(tmp_path: Path, target: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SIGTERM_SCRIPT, str(tmp_path), target], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 128 + signal.SIGTERM, result.stderr[-2000:]
    assert list(tmp_path.iterdir()) == [], "a temporary file or folder was left behind"


# ----------------------------------------------------------------------------------- security and privacy


@pytest.mark.parametrize("content", [b"", b"just some text\n", b"PK\x03\x04truncated"])
def test_a_bad_checkpoint_is_one_clear_line(content: bytes, phantom: Path, tmp_path: Path) -> None:
    bad = tmp_path / "model.pt"
    bad.write_bytes(content)
    with pytest.raises(CheckpointError, match="model.pt"):
        load_fuser(bundle_dir=BUNDLE, task="mri_pet", weights=bad, device="cpu")
    if content:  # one command-line run is enough: the same function reads the file
        return
    item = json.loads((phantom / "datalists" / "png_pet.json").read_text())["test"][0]
    base = phantom
    result = run_inference(bad, tmp_path / "out", base / item["mri"], base / item["other"])
    assert result.returncode != 0
    assert last_line(result).startswith(f"error: {bad}: empty file"), result.stderr[-2000:]
    assert "weights_only=False" not in result.stderr


def test_a_pickle_with_code_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    bad = tmp_path / "evil.pt"
    torch.save({"model": Evil()}, bad)
    with pytest.raises(CheckpointError, match="refused for safety"):
        load_fuser(bundle_dir=BUNDLE, task="mri_pet", weights=bad, device="cpu")
    assert not marker.exists()


# ----------------------------------------------------------------------------------- robustness


def test_ctrl_c_stops_a_training(phantom: Path, tmp_path: Path) -> None:
    """Ctrl-C (SIGINT) works with the Deploy SDK installed (Holoscan takes SIGINT over when monai is imported)."""
    datalist = phantom / "datalists" / "png_pet.json"
    cmd = bundle_command(*training_args(tmp_path / "run", datalist), "--epochs", "1000", "--epoch_length", "1000")
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=bundle_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.time() + 240
        for line in proc.stdout:  # wait until the training iterates
            if "Iter:" in line or time.time() > deadline:
                break
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode not in (0, None), "Ctrl-C was ignored"
    assert "interrupted" in rest.splitlines()[-1]
    client = mlflow.MlflowClient(default_tracking_uri())
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert runs and all(r.info.status == "KILLED" for r in runs)


def test_large_planes_fuse_in_tiles_within_tolerance(ckpt: Path, one_thread) -> None:
    """Tiles (SlidingWindowInferer, 25 % overlap, Gaussian blending) give the whole-plane result within the
    documented tolerance: mean absolute difference under one grey level, 99 % of pixels within 4."""
    from hkafusion_monai.inference import load_weights
    from hkafusion_monai.networks import HKAFusion

    network = load_weights(HKAFusion(), BUNDLE / "models" / "model.pt")
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(512.0), torch.arange(512.0), indexing="ij")
    head = ((yy - 256) ** 2 + (xx - 256) ** 2 < 220**2).float()
    mri = head * (0.4 + 0.2 * torch.sin(xx / 9) * torch.cos(yy / 13)) + 0.02 * torch.rand(512, 512, generator=g)
    pet = head * (0.3 + 0.4 * torch.exp(-((yy - 200) ** 2 + (xx - 300) ** 2) / 4000))
    image = torch.stack([mri, pet])[None].clamp(0, 1)
    with torch.no_grad():
        whole = FusionInferer(max_pixels=512 * 512)(image, network)
        tiled = FusionInferer(max_pixels=256 * 256, tile_size=256)(image, network)
    diff = ((whole - tiled).abs() * 255)[0, 0]
    assert tiled.shape == whole.shape
    assert float(diff.mean()) < 1.0 and float(torch.quantile(diff.flatten(), 0.99)) <= 4.0, (
        float(diff.mean()),
        float(diff.max()),
    )


def test_project_errors_are_found_through_monai_wrappers() -> None:
    inner = RefusedPairError("a.dcm and b.dcm belong to different patients")
    try:
        try:
            raise inner
        except RefusedPairError as e:
            raise RuntimeError('Failed to evaluate ConfigExpression: "$@evaluator.run()"') from e
    except RuntimeError as outer:
        assert project_error(outer) is inner
    assert project_error(RuntimeError("a bug")) is None
