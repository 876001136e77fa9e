"""Resume: a training killed with SIGKILL after its second checkpoint continues with ``--resume`` to the planned
iteration count, in the same MLflow run, with no gap in its loss history."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import torch

from hkafusion_monai.handlers import default_tracking_uri
from tests.integration.test_bundle_workflows import BUNDLE, TRAIN_JSON, _write_pairs

EPOCHS, PAIRS, BATCH = 6, 4, 2
ITERATIONS = EPOCHS * PAIRS // BATCH


def _train(overlay: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "monai.bundle", "run", "training", "--config_file", f"['{TRAIN_JSON}','{overlay}']"]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return subprocess.Popen([*cmd, *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def test_sigkill_then_resume_finishes_without_gap(tmp_path: Path) -> None:
    items = _write_pairs(tmp_path / "pairs", PAIRS + 2, size=64)
    datalist = tmp_path / "pairs" / "datalist.json"
    datalist.write_text(json.dumps({"training": items[:PAIRS], "validation": items[PAIRS:], "test": items[PAIRS:]}))
    out = tmp_path / "out"
    overlay = tmp_path / "overlay.json"
    overlay.write_text(
        json.dumps(
            {
                "bundle_root": str(BUNDLE),
                "datalist": str(datalist),
                "output_dir": str(out),
                "task": "resume",
                "image_size": [64, 64],
                "roi_size": [64, 64],
                "batch_size": BATCH,
                "num_workers": 0,
                "epochs": EPOCHS,
                "val_interval": 100,
                "log_figures": False,
            }
        )
    )
    ckpt_dir = out / "checkpoints"

    first = _train(overlay)
    deadline = time.monotonic() + 240
    while not (ckpt_dir / "checkpoint_epoch=2.pt").exists() and not (ckpt_dir / "checkpoint_epoch=3.pt").exists():
        assert first.poll() is None, f"training ended early:\n{first.stdout.read()[-3000:]}"
        assert time.monotonic() < deadline, "no second checkpoint in time"
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = max(int(p.stem.split("=")[1]) for p in ckpt_dir.glob("checkpoint_epoch=*.pt"))
    assert killed_at < EPOCHS, "the first run finished before it could be killed"
    assert not (ckpt_dir / "model_final.pt").exists()

    second = _train(overlay, "--resume", "true")
    log, _ = second.communicate(timeout=300)
    assert second.returncode == 0, log[-3000:]

    final = torch.load(ckpt_dir / "model_final.pt", weights_only=True)
    assert final["trainer"]["iteration"] == ITERATIONS and final["trainer"]["max_epochs"] == EPOCHS
    assert set(final) >= {"model", "optimizer", "lr_scheduler", "mu", "rng", "trainer"}

    client = mlflow.MlflowClient(default_tracking_uri())
    experiment = client.get_experiment_by_name("hkafusion")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1, "the resumed training must continue the same MLflow run"
    steps = {m.step for m in client.get_metric_history(runs[0].info.run_id, "loss")}
    assert steps == set(range(1, ITERATIONS + 1)), f"loss history has gaps: {sorted(steps)}"
    mu_epochs = {m.step for m in client.get_metric_history(runs[0].info.run_id, "mu")}
    assert mu_epochs == set(range(1, EPOCHS + 1))
    assert runs[0].info.status == "FINISHED"


def test_resume_without_checkpoint_fails_clearly(tmp_path: Path) -> None:
    from hkafusion_monai.handlers.checkpoint_loader import TrainingStateLoader

    with pytest.raises(FileNotFoundError, match="no checkpoint_epoch=N.pt"):
        TrainingStateLoader(True, str(tmp_path), {"model": torch.nn.Linear(1, 1)})
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        TrainingStateLoader(str(tmp_path / "missing.pt"), str(tmp_path), {"model": torch.nn.Linear(1, 1)})


def test_rng_state_round_trip() -> None:
    import random

    import numpy as np

    from hkafusion_monai.handlers.checkpoint_saver import RNGState

    state = RNGState().state_dict()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.rand(5), np.random.rand(5), random.random()
    RNGState().load_state_dict(state)
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], again[0]) and np.array_equal(expected[1], again[1]) and expected[2] == again[2]
