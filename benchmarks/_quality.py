"""Shared by the quality benchmark and the ablations: the Harvard test pairs, the reference scoring, the tables.

Scoring follows the reference implementation (tests/test_metric_reference.py): 8-bit images read as grey
(RGB PET/SPECT through the BT.601 luma, rounded), fused outputs quantised with ``round(255 * clip(x))``, the
eight metrics of :func:`hkafusion_monai.metrics.compute_fusion_metrics` on the 0-255 scale.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from _report import git_commit, machine_summary, write_section
from hkafusion_monai.data.datalist import datalist_from_splits
from hkafusion_monai.metrics import (
    LOWER_IS_BETTER,
    METRIC_NAMES,
    bone_brightness_kept,
    compute_fusion_metrics,
    hot_spot_contrast,
    hot_spot_contrast_kept,
    paired_comparison,
    rgb_to_grey,
)
from hkafusion_monai.networks import LaplacianPyramidFusion
from hkafusion_monai.transforms.hot_spots import paint_hot_spot

TASKS = ("mri_ct", "mri_pet", "mri_spect")
#: the metrics CDDFuse published for the medical model (peer_results.json), which the target names
TARGET_PEER_METRICS = ("MI", "SF", "VIF", "Qabf", "SSIM")

Pair = tuple[str, Path, Path]


def test_pairs(harvard: Path, task: str, split: str = "test") -> list[Pair]:
    """``(name, mri_path, other_path)`` of the task's ``split`` in ``splits.json`` (``test``: the test_cddfuse
    sets; ``validation`` for every choice of recipe)."""
    datalist = datalist_from_splits(harvard / "splits.json", task)
    base = Path(datalist["base_dir"])
    return [(Path(item["mri"]).name, base / item["mri"], base / item["other"]) for item in datalist[split]]


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


_LAPLACIAN = LaplacianPyramidFusion(levels=4)


def rule_laplacian(mri: np.ndarray, other: np.ndarray) -> torch.Tensor:
    """The 4-level Laplacian pyramid fusion (:class:`~hkafusion_monai.networks.LaplacianPyramidFusion`)."""
    image = torch.stack([grey(mri), grey(other)])[None].float() / 255.0
    return torch.round(_LAPLACIAN(image)[0, 0].double() * 255.0)


def _grey_output(fused: object) -> torch.Tensor:
    fused = torch.as_tensor(np.asarray(fused)).to(torch.float64)
    if fused.ndim == 3:
        raise ValueError("score_method: the fused image must be grey (H, W); pass colour=False")
    return fused


def score_method(
    pairs: Sequence[Pair], fuse: Callable[[np.ndarray, np.ndarray], object], task: str | None = None
) -> dict[str, np.ndarray]:
    """Per-pair metrics of one method: ``fuse(mri_uint8, other_uint8)`` returns the fused grey image on the
    0-255 integer scale (uint8 array or tensor).

    With ``task``, also the two checks (:mod:`hkafusion_monai.metrics.checks`): ``"Bone"`` (MRI-CT: bone
    brightness kept) or ``"Lesion"`` (MRI-PET/SPECT: the contrast kept of one hot spot painted into each
    pair's PET/SPECT luminance with seed = the pair's index, fused again)."""
    out: dict[str, list[float]] = {m: [] for m in METRIC_NAMES}
    for index, (_, mri_path, other_path) in enumerate(pairs):
        mri, other = load_uint8(mri_path), load_uint8(other_path)
        fused = _grey_output(fuse(mri, other))
        values = compute_fusion_metrics(fused, grey(mri), grey(other))
        if task == "mri_ct":
            values["Bone"] = float(bone_brightness_kept(fused, grey(other)))
        elif task in ("mri_pet", "mri_spect"):
            # painted into the luminance, as the evaluation workflow does (FusionChecksHandler): the same spots
            spot = paint_hot_spot(grey(mri).numpy(), grey(other).numpy().astype(np.uint8), seed=index)
            fused_spot = _grey_output(fuse(mri, spot.painted))
            values["Lesion"] = float(hot_spot_contrast_kept(fused_spot, spot.painted, spot.core, spot.surround))
        for m, v in values.items():
            out.setdefault(m, []).append(v)
    return {m: np.asarray(v) for m, v in out.items()}


#: the bars of the two checks (issue: hot spots keep >= 75 % of their contrast, CT bone >= 90 % of its brightness)
CHECK_TARGETS = {"Lesion": 0.75, "Bone": 0.90}


def choice_score(ours: dict[str, np.ndarray], laplacian: dict[str, np.ndarray]) -> float:
    """The validation score that picks a recipe: the mean of Qabf, SF and VIF each as a ratio to the Laplacian
    pyramid's on the same pairs, and of the task's check (hot-spot contrast or bone brightness kept) as a
    ratio to its bar, capped at 1 (a check only has to be met)."""
    ratios = [float(ours[m].mean() / laplacian[m].mean()) for m in ("Qabf", "SF", "VIF")]
    for check, bar in CHECK_TARGETS.items():
        if check in ours:
            ratios.append(min(1.0, float(np.nanmean(ours[check])) / bar))
    return float(np.mean(ratios))


_VALIDATION_BASELINES: dict[tuple[str, str], dict[str, np.ndarray]] = {}


def score_validation(harvard: Path, weights: Path, network_kwargs: dict | None = None) -> dict:
    """Fuse every task's *validation* pairs with ``weights`` and score them: per task the means of the eight
    metrics and the check, the Laplacian pyramid's on the same pairs, and :func:`choice_score`; ``summary``
    holds the score averaged over the tasks."""
    from hkafusion_monai.inference import Fuser, load_weights
    from hkafusion_monai.networks import HKAFusion

    network = load_weights(HKAFusion(**(network_kwargs or {})), weights)
    out: dict = {"tasks": {}}
    for task in TASKS:
        pairs = test_pairs(harvard, task, split="validation")
        fuser = Fuser(network, task=task, device="cpu")
        ours = score_method(pairs, lambda m, o, f=fuser: f(m, o, colour=False), task)
        key = (str(harvard), task)
        if key not in _VALIDATION_BASELINES:
            _VALIDATION_BASELINES[key] = score_method(pairs, rule_laplacian, task)
        lap = _VALIDATION_BASELINES[key]
        out["tasks"][task] = {
            "n": len(pairs),
            "ours": {m: float(np.nanmean(v)) for m, v in ours.items()},
            "laplacian": {m: float(np.nanmean(v)) for m, v in lap.items()},
            "score": choice_score(ours, lap),
            # the first bar on validation: how many of the eight metrics beat the pyramid's mean (not in the score)
            "laplacian_wins": sum(_better(m, float(np.nanmean(ours[m])), float(np.nanmean(lap[m]))) for m in METRIC_NAMES),
        }
        if "Lesion" in ours:
            # the bar also asks that no hot spot keeps under half its contrast: the mean alone hides those
            for method, per in (("ours", ours), ("laplacian", lap)):
                out["tasks"][task][method]["Lesion_min"] = float(np.nanmin(per["Lesion"]))
                out["tasks"][task][method]["Lesion_under_half"] = int(np.sum(per["Lesion"] < 0.5))
    out["summary"] = {
        "score": float(np.mean([t["score"] for t in out["tasks"].values()])),
        **{f"{task}_{m}": round(t["ours"][m], 4) for task, t in out["tasks"].items() for m in ("Qabf", "SF", "VIF")},
        **{f"{task}_{c}": round(t["ours"][c], 4) for task, t in out["tasks"].items() for c in CHECK_TARGETS if c in t["ours"]},
        **{f"{task}_{c}": round(t["ours"][c], 4) for task, t in out["tasks"].items() for c in ("Lesion_min", "Lesion_under_half") if c in t["ours"]},
        **{f"{task}_laplacian_wins": t["laplacian_wins"] for task, t in out["tasks"].items()},
    }
    return out


def _fmt(x: float) -> str:
    return f"{x:.4g}" if abs(x) < 1000 else f"{x:.1f}"


def metric_table(results: dict[str, dict[str, np.ndarray]], peer: dict[str, float] | None = None) -> str:
    """Markdown: one row per method, mean ± std per metric (the published peer: means only)."""
    names = list(METRIC_NAMES) + [c for c in CHECK_TARGETS if all(c in per for per in results.values())]
    lines = ["| method | " + " | ".join(f"{m}{' ↓' if m in LOWER_IS_BETTER else ''}" for m in names) + " |"]
    lines.append("|---|" + "---|" * len(names))
    for method, per in results.items():
        cells = [f"{_fmt(np.nanmean(per[m]))} ± {_fmt(np.nanstd(per[m]))}" for m in names]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    if peer:
        cells = [f"{peer[m]:.2f}" if m in peer else "–" for m in names]
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


def _better(m: str, ours: float, other: float) -> bool:
    return ours < other if m in LOWER_IS_BETTER else ours > other


def target_check(results: dict[str, dict[str, np.ndarray]], ours: str, peer: dict[str, float] | None) -> list[str]:
    """The quality issue's bars, checked on the means (the last line: the goal beyond them)."""
    lines = []
    mean = {m: float(np.nanmean(v)) for m, v in results[ours].items()}

    def verdict(ok: bool) -> str:
        return "**met**" if ok else "**not met**"

    if "laplacian" in results:
        wins = [m for m in METRIC_NAMES if _better(m, mean[m], float(results["laplacian"][m].mean()))]
        lines.append(f"- better than the Laplacian pyramid on ≥ 6 of 8: {verdict(len(wins) >= 6)} ({len(wins)}/8: {', '.join(wins) or 'none'})")
    if "max" in results:
        need = ("SF", "AG", "Qabf", "Qcv")
        lost = [m for m in need if not _better(m, mean[m], float(results["max"][m].mean()))]
        lines.append(f"- better than pixel max on SF, AG, Qabf and Qcv: {verdict(not lost)}" + (f" (not on {', '.join(lost)})" if lost else ""))
    if peer:
        short = [f"{m} {mean[m]:.3f} vs {peer[m]:.2f}" for m in ("SF", "Qabf") if mean[m] <= peer[m]]
        lines.append(f"- above CDDFuse_MIF's published SF and Qabf: {verdict(not short)}" + (f" ({'; '.join(short)})" if short else ""))
    if "Lesion" in mean:
        values = results[ours]["Lesion"]
        low = int((values < 0.5).sum())
        ok = mean["Lesion"] >= CHECK_TARGETS["Lesion"] and low == 0
        lines.append(f"- hot spots keep ≥ 75 % of their contrast on average, none below 50 %: {verdict(ok)} "
                     f"(mean {mean['Lesion']:.1%}, lowest {float(values.min()):.1%}, {low} of {len(values)} below 50 %)")
    if "Bone" in mean:
        lines.append(f"- CT bone keeps ≥ 90 % of its brightness: {verdict(mean['Bone'] >= CHECK_TARGETS['Bone'])} ({mean['Bone']:.1%})")
    if peer:
        gaps = ", ".join(f"{m} {mean[m] - peer[m]:+.3f}" for m in TARGET_PEER_METRICS)
        lines.append(f"- the goal beyond: CDDFuse_MIF's published MI, SF, VIF, Qabf, SSIM; ours − theirs: {gaps}")
    return lines


def write_ablation_section(results: dict[str, dict[str, np.ndarray]], budget: dict, task: str, variants: dict) -> None:
    n = len(next(iter(results.values()))["MI"]) if results else 0
    body = [
        "## Ablations (paper Table II)",
        "",
        f"Task {task}, the {n} test pairs of `splits.json`; each variant trained from scratch with the same budget: "
        f"{budget['epochs'] * budget['epoch_length']} steps of {budget['batch_size']} random "
        f"{budget['roi_size'][0]}×{budget['roi_size'][1]} crops, Adam, lr {budget['learning_rate']:g} cosine to "
        f"{budget['min_learning_rate']:g}, seed {budget['seed']}, loss weights λ = ({budget.get('loss#lambda_s', 1)}, "
        f"{budget.get('loss#lambda_grad', 1)}, {budget.get('loss#lambda_inten', 0.5)}), hot-spot augmentation "
        f"{budget.get('hot_spot_prob', 0)}. This is a small fraction of the main model's "
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


def _check_cell(t: dict, task: str) -> str:
    """The task's check; for hot spots also the lowest kept (the bar wants none under half)."""
    if task == "mri_ct":
        return _fmt(t["Bone"])
    return _fmt(t["Lesion"]) + (f" (min {_fmt(t['Lesion_min'])})" if "Lesion_min" in t else "")


def write_recipes_section(
    rows: dict[str, dict], budget: dict, recipes: dict[str, dict], section: str = "recipes"
) -> None:
    """A comparison of recipes on the validation pairs (docs/results.md): ``section`` "recipes" (round 2, from
    the 0.2.0 weights, crops unless a recipe says otherwise) or "continuations" (round 3, whole slices, from the
    shipped weights)."""
    tasks = list(TASKS)
    head = ["recipe", "score"]
    for task in tasks:
        head += [f"{task} Qabf", f"{task} SF", f"{task} VIF", f"{task} {'Bone' if task == 'mri_ct' else 'Lesion'}"]
    table = ["| " + " | ".join(head) + " |", "|---|" + "---|" * (len(head) - 1)]
    lap = next(iter(rows.values()))["tasks"] if rows else {}
    if lap:
        cells = ["Laplacian pyramid (reference)", "–"]
        for task in tasks:
            t = lap[task]["laplacian"]
            cells += [_fmt(t["Qabf"]), _fmt(t["SF"]), _fmt(t["VIF"]), _check_cell(t, task)]
        table.append("| " + " | ".join(cells) + " |")
    phantom = any("phantom" in row for row in rows.values())
    with_min = any("Lesion_min" in t["ours"] for row in rows.values() for t in row["tasks"].values())
    if phantom:
        table[0] += " phantom PET lesions | phantom SPECT lesions |"
        table[1] += "---|---|"
        table[2] += " – | – |"  # the pyramid's row: the phantom is scored for the weights only
    for name, row in sorted(rows.items(), key=lambda kv: -kv[1]["summary"]["score"]):
        cells = [name, f"{row['summary']['score']:.4f}"]
        for task in tasks:
            t = row["tasks"][task]["ours"]
            cells += [_fmt(t["Qabf"]), _fmt(t["SF"]), _fmt(t["VIF"]), _check_cell(t, task)]
        if phantom:
            p = row.get("phantom", {})
            cells += [
                f"{_fmt(p[f'phantom_{m}_lesion_mean'])} (min {_fmt(p[f'phantom_{m}_lesion_min'])})" if p else "–"
                for m in ("PET", "SPECT")
            ]
        table.append("| " + " | ".join(cells) + " |")
    steps = budget["epochs"] * budget["epoch_length"]
    if section == "continuations":
        title, data, command = (
            "## Continuations of the shipped weights (validation, round 3)",
            f"{steps} steps of 2 whole 256×256 slices (`configs/joint.json`)",
            (
                "python benchmarks/recipes.py train --set continuations --start CKPT && "
                "python benchmarks/recipes.py score --set continuations --phantom demo_data"
            ),
        )
    else:
        title, data, command = (
            "## Recipe comparison (validation)",
            (
                f"{steps} steps of {budget['batch_size']} random {budget['roi_size'][0]}×{budget['roi_size'][1]} "
                "crops (unless the recipe says otherwise)"
            ),
            "python benchmarks/recipes.py train && python benchmarks/recipes.py score",
        )
    body = [
        title,
        "",
        f"The joint validation pairs of `splits.json` (the test pairs are never used for a choice). Each recipe: "
        f"{data}, Adam, lr "
        f"{budget['learning_rate']:g} cosine to {budget['min_learning_rate']:g}, seed {budget['seed']}, warm-started "
        "from the weights shipped before the comparison. Score: the mean over tasks of (Qabf, SF and VIF as ratios "
        "to the Laplacian pyramid's on the same pairs, and the task's check as a ratio to its bar, capped at 1). "
        "Bone: CT bone brightness kept; Lesion: contrast kept of a hot spot painted into each PET/SPECT pair"
        + (" (min: the lowest; the bar wants none under half)" if with_min else "")
        + (
            "; phantom lesions: contrast kept of the phantom's PET/SPECT lesions (dark on its MRI) through the "
            "volume path, mean (min)."
            if phantom
            else "."
        ),
        "",
        f"Command: `{command}`; commit {git_commit()}.",
        "",
        *table,
        "",
        "Recipes as overrides of `train.json` + `configs/joint.json`: "
        + "; ".join(
            f"{name}: `{json.dumps(recipes[name], ensure_ascii=False) if recipes[name] else 'none (the paper)'}`"
            for name in rows
            if not recipes[name].get("_no_training")
        )
        + ".",
    ]
    write_section("results.md", section, "\n".join(body), title="# Results")


def phantom_lesions(fuser: object, modality: str, root: str | Path, seed: int = 0) -> np.ndarray:
    """Contrast kept of the phantom's known lesions (hot in PET and SPECT) by a :class:`Fuser`'s volume path.

    For every subject in the phantom folder ``root`` (``nifti/sub-*/``, written with ``seed``), the MRI and the
    PET or SPECT volume go through ``fuser.fuse_volumes`` (the bundle's volume contract: per-modality scaling,
    resampling onto the MRI grid); each lesion's contrast is measured on the MRI grid, in the fused volume
    and in the scaled secondary resampled there: core = lesion voxels within 0.7 r of its centre, surround =
    head voxels outside any lesion between 2 r and 3 r (r: the lesion's radius)."""
    from hkafusion_monai.data import phantom as ph
    from hkafusion_monai.transforms import LoadFusionVolumed

    loader = LoadFusionVolumed(["mri", "other"])
    kept = []
    for folder in sorted(Path(root, "nifti").glob("sub-*")):
        index = int(folder.name.split("-")[1])
        subject = ph.make_subject(seed, index)
        d = loader({"mri": folder / "mri.nii.gz", "other": folder / f"{modality.lower()}.nii.gz"})
        fused, other = fuser.fuse_volumes(d["mri"], d["other"], modality=modality, return_other=True)
        shape = fused.shape[1:]
        ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, 3)
        ras = ijk @ np.asarray(fused.affine)[:3, :3].T + np.asarray(fused.affine)[:3, 3]
        lps = ras * np.array([-1.0, -1.0, 1.0])  # the phantom's scanner coordinates are LPS
        labels = ph.tissue_labels(subject, lps).reshape(shape)
        inverse = np.linalg.inv(subject.rotation / subject.scale)
        f, o = fused[0].numpy(), other[0].numpy()
        for lesion in subject.lesions:
            centre = lesion[:3] @ inverse + subject.translation
            r = float(lesion[3] * np.mean(subject.scale))
            dist = np.linalg.norm(lps - centre, axis=1).reshape(shape)
            core = (labels == ph.LESION) & (dist <= 0.7 * r)
            surround = (dist >= 2 * r) & (dist <= 3 * r) & (labels != ph.LESION) & (labels != ph.AIR)
            flat = [x.reshape(1, -1) for x in (f, o, core, surround)]  # the checks reduce over (H, W)
            if core.sum() < 4 or surround.sum() < 8 or hot_spot_contrast(*flat[1:]) <= 0:
                continue
            kept.append(float(hot_spot_contrast_kept(*flat)))
    return np.asarray(kept)
