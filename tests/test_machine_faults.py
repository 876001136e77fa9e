"""Faults of the machine, not of the input (docs/failure_behaviour.md): two runs at once, a run killed while
MLflow builds its store, a full or read-only disk."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import mlflow
import pytest
from _inference import BUNDLE, INFERENCE_JSON, REPO, random_checkpoint

from hkafusion_monai.handlers import default_tracking_uri, tracking_uri


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_checkpoint(tmp_path_factory)


def _inference(ckpt: Path, out: Path, mri: Path, other: Path) -> subprocess.Popen:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [sys.executable, "-m", "monai.bundle", "run", "inference", "--config_file", str(INFERENCE_JSON)]
    cmd += ["--bundle_root", str(BUNDLE), "--ckpt_path", str(ckpt), "--mri", str(mri), "--other", str(other)]
    cmd += ["--output_dir", str(out), "--progress", "false"]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


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
