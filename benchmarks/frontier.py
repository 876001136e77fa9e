"""One model per task, chosen on the (Qabf, lesion) frontier of the validation pairs.

    python benchmarks/frontier.py score [--tasks mri_pet ...]   # every candidate on its task's validation pairs
    python benchmarks/frontier.py choose                        # the rule below, the table and the plot -> docs/

A candidate is a checkpoint and, for PET/SPECT, the restoration after the network
(:class:`hkafusion_monai.inference.RestoreLesionContrast`) with its settings, or none. Each is scored on its
task's *validation* pairs of ``splits.json`` (never the test pairs) with the project's metrics: Qabf, SF and VIF;
on MRI-CT the bone brightness kept; on MRI-PET/SPECT the contrast kept of a hypointense-hot lesion painted into
both sources (:func:`~hkafusion_monai.transforms.paint_lesion`), of a bright blob painted into the PET/SPECT only
(:func:`~hkafusion_monai.transforms.paint_hot_spot`), and of the phantom's lesions through the volume path.
Pixel max and the Laplacian pyramid are scored on the same pairs.

**The choice rule** (:func:`frontier_key`), fixed before the per-task runs were scored:

1. the lesion bar: on MRI-PET/SPECT the painted hypointense-hot lesions keep at least pixel max's mean
   contrast, none inverted, and the phantom's lesions at least pixel max's; on MRI-CT the bone keeps >= 90 %;
2. then the highest Qabf;
3. then SF + VIF, each relative to the pyramid's.

A candidate that misses the lesion bar ranks below every one that meets it, by its lesion shortfall.
Scores are cached per candidate in ``bundle/eval/frontier/scores/``; ``choose`` writes the table to
docs/results.md and the plot to ``docs/images/frontier.png``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from _quality import (  # noqa: E402
    HYPO_LESION,
    TASKS,
    _per_pair_summary,
    phantom_lesions,
    rule_laplacian,
    rule_max,
    score_method,
    test_pairs,
)
from _report import git_commit, write_section  # noqa: E402

OUT = REPO / "bundle" / "eval" / "frontier"
WEIGHTS = REPO / "bundle" / "eval" / "weights"
MODALITY = {"mri_ct": "CT", "mri_pet": "PET", "mri_spect": "SPECT"}
#: the restoration settings compared (RestoreLesionContrast's arguments)
RESTORATIONS: dict[str, dict] = {
    "restored": {"target": 1.0, "min_contrast": 25.0, "min_isolation": 0.0},
}
#: the networks compared per task: the two shipped before per-task models, and each task's own continuation
NETWORKS: dict[str, dict[str, Path]] = {
    task: {
        "0.4.0": WEIGHTS / "model_0.4.0.pt",
        "0.5.0": WEIGHTS / "model_0.5.0.pt",
        **{f"{task} run: {run.name}": run / "checkpoints" / "model_final.pt" for run in sorted((OUT / task).glob("*"))},
    }
    for task in TASKS
}


def candidates(task: str) -> dict[str, tuple[Path, dict | None]]:
    """Every (network, restoration) candidate of ``task`` whose checkpoint exists: MRI-CT without restoration
    (bone is no lesion), MRI-PET/SPECT with and without each of :data:`RESTORATIONS`."""
    out: dict[str, tuple[Path, dict | None]] = {}
    for name, path in NETWORKS[task].items():
        if not path.is_file():
            continue
        out[name] = (path, None)
        if task != "mri_ct":
            for label, settings in RESTORATIONS.items():
                out[f"{name} + {label}"] = (path, settings)
    return out


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")


def _fuser(weights: Path, task: str, restoration: dict | None):
    from hkafusion_monai.inference import RestoreLesionContrast, load_fuser

    return load_fuser(
        bundle_dir=REPO / "bundle",
        task=task,
        weights=str(weights),
        device="cpu",
        restoration=RestoreLesionContrast(**restoration) if restoration else None,
    )


def _summary(per: dict[str, np.ndarray], phantom: np.ndarray | None) -> dict:
    out = _per_pair_summary(per)
    if phantom is not None and phantom.size:
        out["phantom"], out["phantom_min"] = float(phantom.mean()), float(phantom.min())
    return out


def score(tasks: list[str], harvard: Path, phantom: Path) -> None:
    """Score every candidate (cached) and the two rules of each task on its validation pairs."""
    for task in tasks:
        pairs = test_pairs(harvard, task, split="validation")
        folder = OUT / "scores" / task
        folder.mkdir(parents=True, exist_ok=True)
        rules = {"pixel max": rule_max, "Laplacian pyramid": rule_laplacian}
        for name, rule in rules.items():
            cache = folder / f"{slug(name)}.json"
            if cache.is_file():
                continue
            per = score_method(pairs, rule, task)
            lesions = None
            if task != "mri_ct" and name == "pixel max":
                from hkafusion_monai.inference import Fuser
                from hkafusion_monai.networks.baselines import PixelMax

                lesions = phantom_lesions(Fuser(PixelMax(), task=task), MODALITY[task], phantom)
            cache.write_text(json.dumps({"name": name, "n": len(pairs), **_summary(per, lesions)}, indent=1))
        for name, (weights, restoration) in candidates(task).items():
            cache = folder / f"{slug(name)}.json"
            sha = _sha(weights)
            if cache.is_file() and json.loads(cache.read_text()).get("sha256") == sha:
                continue
            start = time.perf_counter()
            fuser = _fuser(weights, task, restoration)
            per = score_method(pairs, lambda m, o, f=fuser: f(m, o, colour=False), task)
            lesions = phantom_lesions(fuser, MODALITY[task], phantom) if task != "mri_ct" else None
            row = {
                "name": name,
                "weights": str(weights.relative_to(REPO)),
                "sha256": sha,
                "restoration": restoration,
                "n": len(pairs),
                **_summary(per, lesions),
            }
            cache.write_text(json.dumps(row, indent=1))
            print(f"{task} {name}: Qabf {row['Qabf']:.4f} ({time.perf_counter() - start:.0f} s)", flush=True)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def lesion_bar(row: dict, pmax: dict, task: str) -> tuple[bool, float]:
    """Whether ``row`` meets its task's lesion bar (see the module docstring), and by how much it falls short
    (0 when met): the relative shortfalls of the painted and phantom lesions against pixel max's, or of the
    bone against 90 %."""
    if task == "mri_ct":
        return row["Bone"] >= 0.9, max(0.0, 1.0 - row["Bone"] / 0.9)
    short = max(0.0, 1.0 - row[HYPO_LESION] / pmax[HYPO_LESION])
    short += max(0.0, 1.0 - row.get("phantom", 0.0) / pmax["phantom"])
    inverted = row[f"{HYPO_LESION}_inverted"] > 0 or row.get("phantom_min", 0.0) < 0
    return short == 0.0 and not inverted, short + float(inverted)


def frontier_key(row: dict, pmax: dict, pyramid: dict, task: str) -> tuple[int, float, float, float]:
    """The choice rule: the lesion bar met first (then the smallest shortfall), then Qabf, then SF + VIF
    relative to the pyramid's. Larger is better."""
    met, short = lesion_bar(row, pmax, task)
    detail = row["SF"] / pyramid["SF"] + row["VIF"] / pyramid["VIF"]
    return int(met), -short, row["Qabf"], detail


def _load(task: str) -> tuple[dict, dict, dict[str, dict]]:
    folder = OUT / "scores" / task
    rows = {json.loads(p.read_text())["name"]: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}
    return rows.pop("pixel max"), rows.pop("Laplacian pyramid"), rows


def choose() -> dict[str, str]:
    """Apply the rule per task, write the table into docs/results.md and the plot; returns the choice per task."""
    chosen: dict[str, str] = {}
    lines = [
        "Each task's candidates on its own *validation* pairs of `splits.json` (the test pairs are never used "
        "for a choice), with pixel max and the Laplacian pyramid on the same pairs. Lesion: a lesion dark on the "
        "MRI and hot and blurred on the PET/SPECT painted into both (`paint_lesion`), contrast kept, mean (min, "
        "inverted); blobs: a bright blob painted into the PET/SPECT only (mean, count under half); phantom: the "
        "phantom's lesions through the volume path (mean, min). The rule, fixed before the per-task runs were "
        "scored (`benchmarks/frontier.py`, `frontier_key`): the lesion bar first (MRI-PET/SPECT: painted and "
        "phantom lesions at least pixel max's, none inverted; MRI-CT: bone at least 90 %), then the highest "
        "Qabf, then SF + VIF against the pyramid's.",
        "",
        "Command: `python benchmarks/frontier.py score && python benchmarks/frontier.py choose`; "
        f"commit {git_commit()}.",
        "",
    ]
    for task in TASKS:
        if not (OUT / "scores" / task).is_dir():
            continue
        pmax, pyramid, rows = _load(task)
        if not rows:
            continue
        ranked = sorted(rows, key=lambda n: frontier_key(rows[n], pmax, pyramid, task), reverse=True)
        chosen[task] = ranked[0]
        lines += [f"### {task} ({pmax['n']} validation pairs)", ""]
        if task == "mri_ct":
            lines += ["| candidate | lesion bar | Qabf | SF | VIF | bone |", "|---|---|---|---|---|---|"]
        else:
            lines += [
                "| candidate | lesion bar | Qabf | SF | VIF | lesion | phantom | blobs |",
                "|---|---|---|---|---|---|---|---|",
            ]
        for name in [*ranked, "pixel max", "Laplacian pyramid"]:
            row = rows.get(name) or (pmax if name == "pixel max" else pyramid)
            mark = "**" if name == chosen[task] else ""
            bar = (
                "–"
                if name in ("pixel max", "Laplacian pyramid")
                else ("met" if lesion_bar(row, pmax, task)[0] else "not met")
            )
            head = f"| {mark}{name}{mark} | {bar} | {row['Qabf']:.4f} | {row['SF']:.2f} | {row['VIF']:.4f}"
            if task == "mri_ct":
                lines.append(f"{head} | {row['Bone']:.3f} |")
            else:
                phantom = f"{row['phantom']:.3f} (min {row['phantom_min']:.3f})" if "phantom" in row else "–"
                low, inverted = row[f"{HYPO_LESION}_min"], row[f"{HYPO_LESION}_inverted"]
                lesion = f"{row[HYPO_LESION]:.3f} (min {low:.3f}, {inverted} inv.)"
                blobs = f"{row['Lesion']:.3f} ({row['Lesion_under_half']} under half)"
                lines.append(f"{head} | {lesion} | {phantom} | {blobs} |")
        lines.append("")
    lines.append("Chosen: " + "; ".join(f"{t}: {n}" for t, n in chosen.items()) + ".")
    lines += [
        "",
        "![The (Qabf, lesion) plane of each task's validation pairs: circles the networks, stars with the lesion "
        "restoration, squares pixel max and the pyramid](images/frontier.png)",
    ]
    write_section(
        "results.md", "frontier", "## The (Qabf, lesion) frontier, per task (validation)\n\n" + "\n".join(lines)
    )
    plot(REPO / "docs" / "images" / "frontier.png")
    return chosen


def plot(path: Path) -> None:
    """The (Qabf, lesion) plane of every task: each candidate, pixel max and the pyramid (MRI-CT: bone)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in TASKS if (OUT / "scores" / t).is_dir()]
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.2 * len(tasks), 7.0), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        pmax, pyramid, rows = _load(task)
        y_key = "Bone" if task == "mri_ct" else HYPO_LESION
        # points are numbered and named in a key under the panel: names next to close points overlap
        for number, (name, row) in enumerate(
            [("pixel max", pmax), ("Laplacian pyramid", pyramid), *rows.items()], start=1
        ):
            marker = "s" if name in ("pixel max", "Laplacian pyramid") else ("*" if "restored" in name else "o")
            label = f"{number}  {name.removeprefix(f'{task} run: ')}"
            ax.scatter(row["Qabf"], row[y_key], marker=marker, s=70, label=label)
            ax.annotate(str(number), (row["Qabf"], row[y_key]), fontsize=7, xytext=(4, 3), textcoords="offset points")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=7, frameon=False)
        ax.axhline(0.9 if task == "mri_ct" else pmax[y_key], color="grey", lw=0.8, ls="--")
        ax.axvline(max(pmax["Qabf"], pyramid["Qabf"]), color="grey", lw=0.8, ls=":")
        ax.set_xlabel("Qabf (edge transfer), validation mean")
        ax.set_ylabel("CT bone brightness kept" if task == "mri_ct" else "hypointense-hot lesion contrast kept")
        ax.set_title(task.replace("_", "-").upper())
        ax.grid(alpha=0.3)
    fig.suptitle(
        "Validation frontier: dashed, the lesion bar (pixel max; CT bone 90 %); "
        "dotted, the best Qabf of max and the pyramid",
        fontsize=9,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["score", "choose"])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--harvard", type=Path, default=None, help="default: $HKAFUSION_SHARED/data/harvard")
    parser.add_argument("--phantom", type=Path, default=REPO / "demo_data", help="the phantom folder")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.command == "score":
        from hkafusion_monai.data import harvard_root

        score(args.tasks, args.harvard or Path(harvard_root()), args.phantom)
    else:
        print(json.dumps(choose(), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
