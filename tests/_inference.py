"""Shared helpers of the inference tests: a randomly initialised checkpoint (no trained weights exist), and the
bundle's ``python -m monai.bundle run`` in a subprocess with its last stderr line."""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from hkafusion_monai.networks import HKAFusion

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundle"
INFERENCE_JSON = BUNDLE / "configs" / "inference.json"


def random_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<basetemp>/random-ckpt/model.pt``: the state dict of a seeded, randomly initialised HKAFusion."""
    path = tmp_path_factory.getbasetemp() / "random-ckpt" / "model.pt"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        torch.save(HKAFusion(in_channels=2, out_channels=1).state_dict(), path)
    return path


def run_bundle(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python -m monai.bundle run ...`` in a subprocess (CPU, one thread, no tracking server)."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("HKAFUSION_DEBUG", None)
    cmd = [sys.executable, "-m", "monai.bundle", "run", *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def run_inference(ckpt: Path, out: Path, mri: Path, other: Path, *extra: str) -> subprocess.CompletedProcess:
    """The bundle's ``inference`` workflow on one pair, through :func:`run_bundle`."""
    return run_bundle(
        "inference",
        "--config_file",
        str(INFERENCE_JSON),
        "--bundle_root",
        str(BUNDLE),
        "--ckpt_path",
        str(ckpt),
        "--mri",
        str(mri),
        "--other",
        str(other),
        "--output_dir",
        str(out),
        "--progress",
        "false",
        *extra,
    )


def infer(ckpt: Path, out: Path, **options: object) -> None:
    """The bundle's ``inference`` workflow in this process (``monai.bundle.run``, CPU, no progress bar)."""
    from monai.bundle import run

    run(
        "inference",
        config_file=str(INFERENCE_JSON),
        bundle_root=str(BUNDLE),
        ckpt_path=str(ckpt),
        output_dir=str(out),
        progress="false",
        device="$torch.device('cpu')",
        **options,
    )


#: the training configs of the in-process tests: train.json with the smoke overlay (1 epoch of 2 steps)
SMOKE_TRAIN = [str(BUNDLE / "configs" / "train.json"), str(REPO / "configs" / "smoke.json")]


def train(out: Path, datalist: Path, **options: object) -> None:
    """The bundle's ``training`` workflow in this process: the smoke overlay, 64x64 crops, CPU, no figures."""
    from monai.bundle import run

    run(
        "training",
        config_file=SMOKE_TRAIN,
        bundle_root=str(BUNDLE),
        output_dir=str(out),
        datalist=str(datalist),
        task="mri_pet",
        log_figures="false",
        batch_size=2,
        roi_size=[64, 64],
        device="$torch.device('cpu')",
        **options,
    )


def ending_line(call: Callable[[], object]) -> str:
    """The one line the command ends with when ``call()`` raises (the test fails with the traceback of a bug,
    which keeps its traceback)."""
    from hkafusion_monai.utils.cli import error_line

    with pytest.raises(BaseException) as info:
        call()
    line = error_line(info.value)
    assert line is not None, "".join(traceback.format_exception(info.value))[-3000:]
    return line


def last_line(result: subprocess.CompletedProcess) -> str:
    """The last non-blank line a run wrote to stderr (its one-line error)."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else ""
