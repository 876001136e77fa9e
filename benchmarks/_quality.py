"""Shared by the quality benchmark and the ablations: the Harvard test pairs, the reference scoring, the tables.

Scoring follows the reference implementation (tests/test_metric_reference.py): 8-bit images read as grey
(RGB PET/SPECT through the BT.601 luma, rounded), fused outputs quantised with ``round(255 * clip(x))``, the
eight metrics of :func:`hkafusion_monai.metrics.compute_fusion_metrics` on the 0-255 scale.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from _report import git_commit, machine_summary, write_section
from hkafusion_monai.data.datalist import datalist_from_splits
from hkafusion_monai.metrics import LOWER_IS_BETTER, METRIC_NAMES, compute_fusion_metrics, paired_comparison, rgb_to_grey

TASKS = ("mri_ct", "mri_pet", "mri_spect")
#: the metrics CDDFuse published for the medical model (peer_results.json), which the target names
TARGET_PEER_METRICS = ("MI", "SF", "VIF", "Qabf", "SSIM")

Pair = tuple[str, Path, Path]


def test_pairs(harvard: Path, task: str) -> list[Pair]:
    """``(name, mri_path, other_path)`` of the task's ``test`` split in ``splits.json`` (the test_cddfuse sets)."""
    datalist = datalist_from_splits(harvard / "splits.json", task)
    base = Path(datalist["base_dir"])
    return [(Path(item["mri"]).name, base / item["mri"], base / item["other"]) for item in datalist["test"]]


def load_uint8(path: Path) -> np.ndarray:
    """An 8-bit PNG as uint8 ``(H, W)`` (grey) or ``(H, W, 3)`` (RGB)."""
    with Image.open(path) as im:
        return np.asarray(im if im.mode == "L" else im.convert("RGB")).copy()


def grey(x: np.ndarray) -> torch.Tensor:
    """The reference's grey reading of a uint8 image: identity for grey, rounded BT.601 luma for RGB."""
    t = torch.from_numpy(np.asarray(x))
    return (t if t.ndim == 2 else rgb_to_grey(t, channel_dim=-1)).to(torch.float64)


def rule_average(mri: np.ndarray, other: np.ndarray) -> torch.Tensor:
    a, b = grey(mri), grey(other)
    return torch.div(a + b + 1, 2, rounding_mode="floor")


def rule_max(mri: np.ndarray, other: np.ndarray) -> torch.Tensor:
    return torch.maximum(grey(mri), grey(other))


def rule_mri(mri: np.ndarray, other: np.ndarray) -> torch.Tensor:
    return grey(mri)


def score_method(pairs: Sequence[Pair], fuse: Callable[[np.ndarray, np.ndarray], object]) -> dict[str, np.ndarray]:
    """Per-pair metrics of one method: ``fuse(mri_uint8, other_uint8)`` returns the fused grey image on the
    0-255 integer scale (uint8 array or tensor)."""
    out: dict[str, list[float]] = {m: [] for m in METRIC_NAMES}
    for _, mri_path, other_path in pairs:
        mri, other = load_uint8(mri_path), load_uint8(other_path)
        fused = fuse(mri, other)
        fused = torch.as_tensor(np.asarray(fused)).to(torch.float64)
        if fused.ndim == 3:
            raise ValueError("score_method: the fused image must be grey (H, W); pass colour=False")
        values = compute_fusion_metrics(fused, grey(mri), grey(other))
        for m in METRIC_NAMES:
            out[m].append(values[m])
    return {m: np.asarray(v) for m, v in out.items()}


def _fmt(x: float) -> str:
    return f"{x:.4g}" if abs(x) < 1000 else f"{x:.1f}"


def metric_table(results: dict[str, dict[str, np.ndarray]], peer: dict[str, float] | None = None) -> str:
    """Markdown: one row per method, mean ± std per metric (the published peer: means only)."""
    lines = ["| method | " + " | ".join(f"{m}{' ↓' if m in LOWER_IS_BETTER else ''}" for m in METRIC_NAMES) + " |"]
    lines.append("|---|" + "---|" * len(METRIC_NAMES))
    for method, per in results.items():
        cells = [f"{_fmt(per[m].mean())} ± {_fmt(per[m].std())}" for m in METRIC_NAMES]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    if peer:
        cells = [f"{peer[m]:.2f}" if m in peer else "–" for m in METRIC_NAMES]
        lines.append("| CDDFuse_MIF (published) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ci_table(results: dict[str, dict[str, np.ndarray]], ours: str, others: Sequence[str]) -> str:
    """Markdown: the paired mean difference ours − other with its 95 % bootstrap interval, per metric."""
    lines = ["| ours − rule | " + " | ".join(METRIC_NAMES) + " |", "|---|" + "---|" * len(METRIC_NAMES)]
    for other in others:
        cells = []
        for m in METRIC_NAMES:
            d, lo, hi, verdict = paired_comparison(results[ours][m], results[other][m], m)
            mark = {1: " **+**", -1: " **−**"}.get(verdict, "")
            cells.append(f"{_fmt(d)} [{_fmt(lo)}, {_fmt(hi)}]{mark}")
        lines.append(f"| {ours} − {other} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def target_check(results: dict[str, dict[str, np.ndarray]], ours: str, peer: dict[str, float] | None) -> list[str]:
    """The issue's two targets, checked on the means: beat CDDFuse_MIF on MI, SF, VIF, Qabf and SSIM; beat the
    max rule on at least 6 of the 8 metrics."""
    lines = []
    mean = {m: float(results[ours][m].mean()) for m in METRIC_NAMES}
    if peer:
        short = [f"{m} ({mean[m]:.3f} vs {peer[m]:.2f}, {mean[m] - peer[m]:+.3f})" for m in TARGET_PEER_METRICS if mean[m] <= peer[m]]
        verdict = "met" if not short else "not met: below on " + ", ".join(short)
        lines.append(f"- beat CDDFuse_MIF (published) on MI, SF, VIF, Qabf, SSIM: **{verdict}**")
    wins = [
        m for m in METRIC_NAMES
        if (mean[m] < results["max"][m].mean()) == (m in LOWER_IS_BETTER) and mean[m] != results["max"][m].mean()
    ]
    lines.append(
        f"- beat the max rule on ≥ 6 of 8 metrics: **{'met' if len(wins) >= 6 else 'not met'}** "
        f"({len(wins)}/8: {', '.join(wins) or 'none'})"
    )
    return lines


def write_ablation_section(results: dict[str, dict[str, np.ndarray]], budget: dict, task: str, variants: dict) -> None:
    n = len(next(iter(results.values()))["MI"]) if results else 0
    body = [
        "## Ablations (paper Table II)",
        "",
        f"Task {task}, the {n} test pairs of `splits.json`; each variant trained from scratch with the same budget: "
        f"{budget['epochs'] * budget['epoch_length']} steps of {budget['batch_size']} random "
        f"{budget['roi_size'][0]}×{budget['roi_size'][1]} crops, Adam, lr {budget['learning_rate']:g} cosine to "
        f"{budget['min_learning_rate']:g}, seed {budget['seed']}. This is a small fraction of the main model's "
        "budget (below): the table compares variants at equal cost, not against the published numbers.",
        "",
        "Command: `OMP_NUM_THREADS=1 python benchmarks/ablations.py train && python benchmarks/ablations.py score`; "
        f"commit {git_commit()}; {machine_summary()}.",
        "",
        metric_table(results),
        "",
        "Variants as constructor arguments: "
        + "; ".join(f"{name}: `{args or 'defaults'}`" for name, args in variants.items() if name in results)
        + ".",
    ]
    write_section("results.md", "ablations", "\n".join(body), title="# Results")


def write_attempts_section(rows: dict[str, dict[str, float]], budget: dict, task: str) -> None:
    """The loss-weight attempts, judged on the validation split (the test pairs are not used for choices)."""
    names = [m for m in METRIC_NAMES if all(m.lower() in r for r in rows.values())]
    table = ["| loss weights | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for name, metrics in rows.items():
        table.append(f"| {name} | " + " | ".join(_fmt(metrics[m.lower()]) for m in names) + " |")
    body = [
        "## Attempts at the target: loss weights (validation)",
        "",
        f"Task {task}, validation split, the ablation budget ({budget['epochs'] * budget['epoch_length']} steps of "
        f"{budget['batch_size']} random {budget['roi_size'][0]}×{budget['roi_size'][1]} crops, lr "
        f"{budget['learning_rate']:g} cosine, seed {budget['seed']}); each row trained from scratch.",
        "",
        "Command: `OMP_NUM_THREADS=1 python benchmarks/ablations.py attempts`; "
        f"commit {git_commit()}.",
        "",
        *table,
    ]
    write_section("results.md", "attempts", "\n".join(body), title="# Results")
