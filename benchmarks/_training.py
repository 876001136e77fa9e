"""One training run through the bundle, as the benchmark drivers (recipes, ablations, full schedule) start it.

The run is ``python -m monai.bundle run training`` over ``bundle/configs/train.json``, one overlay of the
project's ``configs/`` and the run's own ``overlay.json`` (written into its output folder), so every run is
logged to MLflow like any other training of the bundle, in a store of its own, ``<out>/mlruns.db``, where the
benchmarks' reports read it (the bundle's default is the per-user store).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

__all__ = ["run_training"]


def run_training(out: Path, overlay: dict, base: str, resume: bool = False, log_mode: str = "a") -> tuple[int, float]:
    """Train with ``train.json`` + ``base`` + ``overlay``, the output and log (``train.log``) in ``out``.

    Args:
        out: the run's folder; ``overlay.json`` and ``train.log`` are written there.
        overlay: the run's overrides (``output_dir`` included).
        base: the overlay between ``train.json`` and the run's, e.g. ``"configs/joint.json"``.
        resume: continue the run from its latest checkpoint (``--resume true``).
        log_mode: ``"a"`` appends to ``train.log`` (a resumed run keeps its history), ``"w"`` replaces it.

    Returns:
        the exit status and the wall-clock seconds.
    """
    out.mkdir(parents=True, exist_ok=True)
    store = f"sqlite:///{out.resolve()}/mlruns.db"
    overlay = {"tracking_uri": f"$hkafusion_monai.handlers.tracking_uri({store!r})", **overlay}
    (out / "overlay.json").write_text(json.dumps(overlay, indent=2, ensure_ascii=False))
    configs = ["bundle/configs/train.json", base, str(out / "overlay.json")]
    cmd = [sys.executable, "-m", "monai.bundle", "run", "training", "--config_file", json.dumps(configs)]
    if resume:
        cmd += ["--resume", "true"]
    start = time.perf_counter()
    with open(out / "train.log", log_mode) as log:
        proc = subprocess.run(cmd, check=False, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env={**os.environ})
    return proc.returncode, time.perf_counter() - start
