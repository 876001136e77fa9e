"""Faults of the machine, not of the input (docs/failure_behaviour.md): two runs at once, a run killed while
MLflow builds its store, a full or read-only disk."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import mlflow
import pydicom
import pytest
import torch
from monai.bundle import run

from hkafusion_monai.handlers import default_tracking_uri, tracking_uri
from hkafusion_monai.io import output_name
from tests.helpers import (
    BUNDLE,
    REPO,
    SMOKE_TRAIN,
    bundle_command,
    bundle_env,
    ending_line,
    infer,
    inference_args,
    random_checkpoint,
    train,
)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_checkpoint(tmp_path_factory)


def _inference(ckpt: Path, out: Path, mri: Path, other: Path) -> subprocess.Popen:
    cmd = bundle_command(*inference_args(ckpt, out, mri, other))
    return subprocess.Popen(
        cmd, cwd=REPO, env=bundle_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


# ------------------------------------------------------------------------------------------ the MLflow store


def test_two_runs_at_once_into_one_folder_both_succeed(ckpt: Path, phantom: Path, tmp_path: Path) -> None:
    """Two inference runs into one output folder, started half a second apart, before any MLflow store exists:
    both finish, each in a run of its own in the per-user store, and the output folder holds outputs only."""
    out = tmp_path / "out"
    pairs = sorted((phantom / "png/mri_pet/test/MRI").glob("*.png"))[:2]
    assert len(pairs) == 2
    procs = []
    for mri in pairs:
        procs.append(_inference(ckpt, out, mri, mri.parent.parent / "PET" / mri.name))
        time.sleep(0.5)
    logs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(log[-2000:] for log in logs)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{m.stem}_fused.png" for m in pairs)
    client = mlflow.MlflowClient(default_tracking_uri())
    runs = client.search_runs([client.get_experiment_by_name("hkafusion").experiment_id])
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    assert len({r.info.run_name for r in runs}) == 2


KILLED_BUILD = textwrap.dedent(
    """
    import sys, time
    import mlflow.store.db.utils as db_utils
    from hkafusion_monai.handlers import tracking_uri

    def upgrade(engine):  # MLflow's migrations, stopped after the first tables exist
        print("migrating", flush=True)
        time.sleep(600)

    db_utils._upgrade_db = upgrade
    tracking_uri()
    """
)


def test_a_run_killed_while_the_store_is_built_leaves_later_runs_working(tmp_path: Path) -> None:
    """SIGKILL while MLflow migrates a new store: the half-built file never has the store's name, and the next
    run builds the store whole (and clears the left-over) and logs to it."""
    store = Path(default_tracking_uri()[len("sqlite:///") :])
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_BUILD], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "migrating"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not store.exists() and list(store.parent.glob(".mlruns.db.*.tmp"))  # half-built, under a hidden name

    uri = tracking_uri()
    assert uri == default_tracking_uri() and store.is_file()
    assert not list(store.parent.glob(".mlruns.db.*"))
    client = mlflow.MlflowClient(uri)
    run = client.create_run(client.create_experiment("after_the_kill"))
    client.set_terminated(run.info.run_id)
    assert client.get_run(run.info.run_id).info.status == "FINISHED"


# ------------------------------------------------------------------------------ a full or read-only disk


def _pair(phantom: Path) -> tuple[Path, Path]:
    mri = sorted((phantom / "png/mri_pet/test/MRI").glob("*.png"))[0]
    return mri, mri.parent.parent / "PET" / mri.name


def _png_datalist(phantom: Path, path: Path) -> Path:
    spec = json.loads((phantom / "datalists" / "png_pet.json").read_text())
    base = (phantom / "datalists" / spec.get("base_dir", ".")).resolve()
    lists = {
        k: [{**it, "mri": str(base / it["mri"]), "other": str(base / it["other"])} for it in spec[k]]
        for k in ("training", "validation", "test")
    }
    path.write_text(json.dumps(lists))
    return path


def _read_only(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Opening a file for writing under ``folder`` fails as on a read-only file system."""
    real_open = os.open

    def fake_open(path, flags, *args, **kwargs):
        if str(path).startswith(str(folder)) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)


def _forward_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the network's forward passes (the work a pre-flight check saves)."""
    from hkafusion_monai.networks import HKAFusion

    calls: list[int] = []
    real = HKAFusion.forward
    monkeypatch.setattr(HKAFusion, "forward", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    return calls


def test_inference_into_a_read_only_folder_stops_before_fusing(
    ckpt: Path, phantom: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    _read_only(monkeypatch, out)
    calls = _forward_calls(monkeypatch)
    mri, other = _pair(phantom)
    line = ending_line(lambda: infer(ckpt, out, mri=str(mri), other=str(other)))
    assert (
        line == f"error: {out}: cannot be written: the file system is read-only (Read-only file system); "
        "choose a writable place"
    ), line
    assert not calls and not list(out.iterdir())


def test_inference_on_a_disk_that_fills_up_names_the_output(
    ckpt: Path, phantom: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PIL's buffered write on a full disk raises ENOSPC without a file name: the line names the output, and no
    part of it is left."""
    from PIL import Image

    def full(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b"\x89PNG half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Image.Image, "save", full)
    out = tmp_path / "out"
    mri, other = _pair(phantom)
    line = ending_line(lambda: infer(ckpt, out, mri=str(mri), other=str(other)))
    target = out / output_name(str(mri), "2d")
    assert (
        line == f"error: {target}: cannot be written: the file system is full (No space left on device); "
        "free some space"
    ), line
    assert not list(out.iterdir())


def test_evaluation_checks_the_room_before_it_starts(
    ckpt: Path, phantom: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=5 << 20))
    calls = _forward_calls(monkeypatch)
    out = tmp_path / "eval"
    datalist = _png_datalist(phantom, tmp_path / "png.json")
    line = ending_line(
        lambda: run(
            "evaluating",
            config_file=[*SMOKE_TRAIN, str(BUNDLE / "configs" / "evaluate.json")],
            bundle_root=str(BUNDLE),
            output_dir=str(out),
            datalist=str(datalist),
            task="mri_pet",
            ckpt_path=str(ckpt),
            run_name="room",
            device="$torch.device('cpu')",
        )
    )
    eval_dir = out / "evaluation" / "room"
    assert line.startswith(f"error: --output_dir {eval_dir}: only 5.0 MB free on its file system"), line
    assert "the run needs at least 64 MB" in line and not calls and not eval_dir.exists()


def test_training_whose_checkpoint_meets_a_full_disk_names_the_folder(
    phantom: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch's writer fails on a full disk with a RuntimeError and no errno (here the best checkpoint, saved
    by MONAI's ``CheckpointSaver``): the line names the output folder, and MLflow's run ends FAILED."""
    usage = shutil.disk_usage(tmp_path)
    filled: list[int] = []
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=4096 if filled else usage.free))

    def full(obj, f, *args, **kwargs):
        filled.append(1)
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")

    monkeypatch.setattr(torch, "save", full)
    out = tmp_path / "train"
    datalist = _png_datalist(phantom, tmp_path / "png.json")
    line = ending_line(lambda: train(out, datalist))
    assert (
        line == f"error: {out}: cannot be written: the file system is full (No space left on device); free some space"
    ), line
    assert not [p for p in (out / "checkpoints").iterdir() if p.suffix == ".pt"]
    client = mlflow.MlflowClient(default_tracking_uri())
    runs = client.search_runs([client.get_experiment_by_name("hkafusion").experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]


def test_a_full_mlflow_store_is_one_line_naming_it(
    ckpt: Path, phantom: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's "database or disk is full", under SQLAlchemy and MLflow, names the store."""
    import sqlalchemy.exc

    def full(self, *args, **kwargs):
        raise sqlalchemy.exc.OperationalError(
            "INSERT INTO runs", {}, sqlite3.OperationalError("database or disk is full")
        )

    monkeypatch.setattr(mlflow.MlflowClient, "create_run", full)
    out = tmp_path / "out"
    mri, other = _pair(phantom)
    line = ending_line(lambda: infer(ckpt, out, mri=str(mri), other=str(other)))
    store = default_tracking_uri()[len("sqlite:///") :]
    assert (
        line == f"error: {store}: cannot be written: the file system is full (database or disk is full); "
        "free some space"
    ), line


def test_deploy_into_a_read_only_folder_is_one_line_before_the_sdk_loads(
    phantom: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    from tests.helpers import make_study, run_main

    study = make_study(tmp_path / "in", phantom / "dicom" / "sub-000", ["MR", "PT"])
    out = tmp_path / "out"
    out.mkdir()
    _read_only(monkeypatch, out)
    code = run_main(["-i", str(study), "-o", str(out), "-m", str(random_checkpoint_path(tmp_path))])
    err = capfd.readouterr().err.strip().splitlines()
    assert code == 1 and err[-1] == (
        f"error: {out}: cannot be written: the file system is read-only (Read-only file system); "
        "choose a writable place"
    ), err[-5:]
    assert not list(out.iterdir())


def random_checkpoint_path(tmp_path: Path) -> Path:
    path = tmp_path / "model.pt"
    path.write_bytes(b"PK")  # never read: the output folder is refused first
    return path


# ------------------------------------------------------------------------------ DICOM as archives hold it


def _series_copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _bare(path: Path, **changes: object) -> None:
    """Rewrite ``path`` as a bare dataset: no 128-byte preamble, no file meta (older archives, CD exports)."""
    ds = pydicom.dcmread(path)
    for key, value in changes.items():
        if value is None:
            delattr(ds, key)
        else:
            setattr(ds, key, value)
    ds.preamble = None
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    pydicom.dcmwrite(path, ds, implicit_vr=True, little_endian=True, enforce_file_format=False)
    assert not pydicom.misc.is_dicom(path)


def test_a_slice_without_the_preamble_is_read(ckpt: Path, phantom: Path, tmp_path: Path) -> None:
    """The MR's top slice as a bare dataset (pydicom reads its header with ``force=True``): it is read, and the
    fused volume has all 32 slices, not 31."""
    import nibabel as nib

    mr = _series_copy(phantom / "dicom/sub-000/MR", tmp_path / "MR")
    files = sorted(mr.iterdir())
    _bare(files[-1])
    out = tmp_path / "out"
    infer(ckpt, out, mri=str(mr), other=str(phantom / "dicom/sub-000/PT"), task="mri_pet")
    (fused,) = out.glob("*.nii.gz")
    assert nib.load(fused).shape[:3] == (64, 64, len(files)) == (64, 64, 32)


def test_a_bare_dataset_without_geometry_is_refused_by_name(ckpt: Path, phantom: Path, tmp_path: Path) -> None:
    mr = _series_copy(phantom / "dicom/sub-000/MR", tmp_path / "MR")
    top = sorted(mr.iterdir())[-1]
    _bare(top, ImagePositionPatient=None)
    out = tmp_path / "out"
    line = ending_line(lambda: infer(ckpt, out, mri=str(mr), other=str(phantom / "dicom/sub-000/PT"), task="mri_pet"))
    assert line.startswith(
        f"error: {top}: a DICOM dataset without the Part-10 preamble and without ImagePositionPatient"
    )
    assert not out.exists() or not list(out.iterdir())


@pytest.mark.parametrize("lost", ["the last PT slice", "the top MR slice"])
def test_a_series_that_lost_an_end_slice_is_an_error(ckpt: Path, phantom: Path, tmp_path: Path, lost: str) -> None:
    """A lost end slice keeps the spacing even: the PET's NumberOfSlices tells, and so do the MR's instance
    numbers where the scanner did not number in space (here an interleaved order, 1 + 7 i mod 32)."""
    mr = _series_copy(phantom / "dicom/sub-000/MR", tmp_path / "MR")
    pt = _series_copy(phantom / "dicom/sub-000/PT", tmp_path / "PT")
    folder = pt if lost == "the last PT slice" else mr
    by_number = {int(pydicom.dcmread(p, stop_before_pixels=True).InstanceNumber): p for p in folder.iterdir()}
    if folder is pt:
        expected = f"error: {pt}: 19 slice file(s), but the series has 20 (NumberOfSlices or ImagesInAcquisition)"
    else:
        for n, f in by_number.items():
            ds = pydicom.dcmread(f)
            ds.InstanceNumber = 1 + (7 * (n - 1)) % 32
            ds.save_as(f)
        expected = f"error: {mr}: InstanceNumber 26 missing among 1..32 (31 file(s))"
    by_number[max(by_number)].unlink()
    out = tmp_path / "out"
    line = ending_line(lambda: infer(ckpt, out, mri=str(mr), other=str(pt), task="mri_pet"))
    assert line.startswith(expected) and "a series that lost a file" in line, line


def test_deploy_reads_a_slice_without_the_preamble_and_refuses_a_lost_one(
    phantom: Path, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    """Deploy: the MR's top slice as a bare dataset is read (a 32-instance derived series, not 31); a PET that
    lost its last slice is refused with one line naming it."""
    from tests.helpers import require_module

    require_module("monai.deploy.core", "requirements-deploy.txt: monai-deploy-app-sdk")
    from tests.helpers import make_study, run_main, series_folders

    model = random_checkpoint_path(tmp_path)
    torch.save(__import__("hkafusion_monai.networks", fromlist=["HKAFusion"]).HKAFusion().state_dict(), model)
    study = make_study(tmp_path / "in", phantom / "dicom" / "sub-000", ["MR", "PT"])
    _bare(sorted((study / "MR").iterdir())[-1])
    out = tmp_path / "out"
    assert run_main(["-i", str(study), "-o", str(out), "-m", str(model)]) == 0, capfd.readouterr().err[-3000:]
    (series,) = series_folders(out).values()
    assert len(list(series.glob("*.dcm"))) == 32

    lost = make_study(tmp_path / "lost", phantom / "dicom" / "sub-000", ["MR", "PT"])
    by_number = {int(pydicom.dcmread(p, stop_before_pixels=True).InstanceNumber): p for p in (lost / "PT").iterdir()}
    by_number[max(by_number)].unlink()
    capfd.readouterr()
    assert run_main(["-i", str(lost), "-o", str(tmp_path / "out2"), "-m", str(model)]) == 1
    last = capfd.readouterr().err.strip().splitlines()[-1]
    assert "19 slice file(s), but the series has 20" in last and "a series that lost a file" in last, last
