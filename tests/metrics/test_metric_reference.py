"""The eight metrics against the public reference values in ``shared/reference/fusion_metrics_reference.json``.

The reference scored, for every test_cddfuse pair of the three tasks, three simple fusion rules with
CDDFuse's Evaluator (MI, SF, VIF, AG, Qabf, CC, SSIM) and Liu's metricChen.m (Qcv). The default run checks a
fixed subset; ``-m slow`` sweeps every pair, rule and task.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hkafusion_monai.metrics import METRIC_NAMES, fusion_metrics_batch
from hkafusion_monai.utils.colour import rgb_to_grey

TASKS = {"mri_ct": "CT", "mri_pet": "PET", "mri_spect": "SPECT"}
RULES = ("avg", "max", "srcA")
SPLIT = "test_cddfuse"
SUBSET = {"mri_ct": ("11.png", "24.png"), "mri_pet": ("15.png", "49.png"), "mri_spect": ("11.png", "62.png")}


def tolerance(metric: str) -> float:
    return 1e-3 if metric == "Qcv" else 1e-4


def load_grey(path: Path) -> torch.Tensor:
    """The reference's reading: cv2 GRAY of the 8-bit PNG (identity for grey and equal-channel images)."""
    with Image.open(path) as im:
        array = np.asarray(im if im.mode == "L" else im.convert("RGB"))
    x = torch.from_numpy(array.copy())
    return (x if x.ndim == 2 else rgb_to_grey(x, channel_dim=-1)).to(torch.float64)


def fuse(rule: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The reference's rules on 8-bit images: avg = (A + B + 1) // 2, max, srcA = A."""
    if rule == "avg":
        return torch.div(a + b + 1, 2, rounding_mode="floor")
    if rule == "max":
        return torch.maximum(a, b)
    return a


@pytest.fixture(scope="module")
def reference(reference_dir: Path) -> dict:
    path = reference_dir / "fusion_metrics_reference.json"
    if not path.exists():
        pytest.skip(f"{path} not found")
    return json.loads(path.read_text())["tasks"]


def check_pairs(reference: dict, harvard_dir: Path, task: str, names) -> int:
    """Recompute every metric for ``names`` x every rule; collect and report all disagreements at once.

    The three rules of a pair go through ``fusion_metrics_batch`` as one batch (``compute_fusion_metrics``
    is that function on a batch of one; test_metrics.py checks they agree).
    """
    pairs = reference[task][SPLIT]["pairs"]
    folder = harvard_dir / task / SPLIT
    failures, checked = [], 0
    for name in names:
        a, b = load_grey(folder / "MRI" / name), load_grey(folder / TASKS[task] / name)
        fused = torch.stack([fuse(rule, a, b) for rule in RULES])[:, None]
        values = fusion_metrics_batch(fused, torch.stack([a, b]).expand(len(RULES), -1, -1, -1))
        for i, rule in enumerate(RULES):
            for metric in METRIC_NAMES:
                got, want = values[metric][i].item(), pairs[name][rule][metric]
                checked += 1
                if abs(got - want) > tolerance(metric) * abs(want):
                    failures.append(f"{task}/{name}/{rule}/{metric}: got {got!r}, reference {want!r}")
    assert not failures, "\n".join(failures)
    return checked


@pytest.mark.parametrize("task", list(TASKS))
def test_reference_subset(reference, harvard_dir, task):
    assert check_pairs(reference, harvard_dir, task, SUBSET[task]) == len(SUBSET[task]) * len(RULES) * 8


@pytest.mark.slow
@pytest.mark.parametrize("task", list(TASKS))
def test_reference_all_pairs(reference, harvard_dir, task):
    pairs = reference[task][SPLIT]["pairs"]
    assert len(pairs) == reference[task][SPLIT]["n_pairs"]
    assert check_pairs(reference, harvard_dir, task, sorted(pairs)) == len(pairs) * len(RULES) * 8
