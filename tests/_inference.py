"""Shared helpers of the inference tests: a randomly initialised checkpoint (no trained weights exist), and the
bundle's ``python -m monai.bundle run`` in a subprocess with its last stderr line."""

from __future__ import annotations

import os
import subprocess
import sys
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


def last_line(result: subprocess.CompletedProcess) -> str:
    """The last non-blank line a run wrote to stderr (its one-line error)."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else ""
