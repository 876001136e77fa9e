"""Fusion quality on the Harvard test pairs: HKAFusion (the shipped weights, with and without the peers'
min-max stretch) against the pixel rules, the Laplacian pyramid, the MRI itself and CDDFuse_MIF's published
means, with the two checks (hot-spot contrast kept on PET/SPECT, bone brightness kept on CT).

    python benchmarks/bench_quality.py [--harvard ../shared/data/harvard] [--weights bundle/models/model.pt]

Every test pair of ``splits.json`` (the test_cddfuse sets: 21 MRI-CT, 42 MRI-PET, 73 MRI-SPECT) is fused
through ``load_fuser``, quantised (``round(255 * clip(x))``) and scored with the reference-validated metrics
on grey/Y, 0-255. Per task: mean ± std per method, the paired 95 % bootstrap interval of the difference to
each rule, and the quality bars (docs/results.md). Writes the "quality" section of docs/results.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

from hkafusion_monai.data import shared_root

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from _quality import (  # noqa: E402
    PAPER_TABLE_I,
    TASKS,
    ci_table,
    metric_table,
    phantom_lesions,
    rule_average,
    rule_laplacian,
    rule_max,
    rule_mri,
    score_method,
    target_check,
    test_pairs,
)
from _report import git_commit, machine_summary, write_section  # noqa: E402

from hkafusion_monai.inference import load_fuser, shipped_weights  # noqa: E402


def phantom_lesion_table(weights: str | None, phantom: str) -> list[str]:
    """The phantom's known lesions through the volume path (PET and SPECT NIfTI volumes), per method."""
    from hkafusion_monai.data.phantom import ensure_phantom
    from hkafusion_monai.inference import Fuser
    from hkafusion_monai.networks import LaplacianPyramidFusion, PixelAverage, PixelMax

    root = ensure_phantom(phantom)
    lines = [
        "### The phantom's known lesions (volumes)",
        "",
        f"Every lesion of the phantom subjects in `{Path(phantom).name}/` (`python -m hkafusion_monai.data.phantom`), "
        "through `fuse_volumes` (the volume contract: per-modality scaling, resampling onto the MRI grid): the "
        "fused core-minus-surround contrast over the scaled secondary's, core = lesion voxels within 0.7 r of its "
        "centre, surround = head voxels between 2 r and 3 r.",
        "",
        "| method | PET: mean kept | PET: lowest | PET: below 50 % "
        "| SPECT: mean kept | SPECT: lowest | SPECT: below 50 % |",
        "|---|---|---|---|---|---|---|",
    ]
    methods = {
        "HKAFusion": lambda task: load_fuser(bundle_dir=REPO / "bundle", task=task, weights=weights, device="cpu"),
        "HKAFusion, stretched": lambda task: load_fuser(
            bundle_dir=REPO / "bundle", task=task, weights=weights, device="cpu", stretch=True
        ),
        "average": lambda task: Fuser(PixelAverage(), task=task),
        "max": lambda task: Fuser(PixelMax(), task=task),
        "laplacian": lambda task: Fuser(LaplacianPyramidFusion(), task=task),
    }
    for name, make in methods.items():
        cells = []
        for modality, task in (("PET", "mri_pet"), ("SPECT", "mri_spect")):
            kept = phantom_lesions(make(task), modality, root)
            cells += [f"{kept.mean():.1%}", f"{kept.min():.1%}", f"{int((kept < 0.5).sum())} of {len(kept)}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_shared = Path(shared_root())
    parser.add_argument("--harvard", type=Path, default=default_shared / "data" / "harvard")
    parser.add_argument("--peer", type=Path, default=default_shared / "reference" / "peer_results.json")
    parser.add_argument(
        "--weights", default=None, help="default: the shipped weights of each task (model_<task>.pt, else model.pt)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--phantom", default=str(REPO / "demo_data"), help="phantom folder (made if absent)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/results.md alone")
    parser.add_argument("--json", type=Path, default=None, help="also write every method's means per task here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not (args.harvard / "splits.json").is_file():
        print(f"error: {args.harvard}/splits.json not found (set --harvard or HKAFUSION_SHARED)", file=sys.stderr)
        return 1
    peers = json.loads(args.peer.read_text())["published_metrics_from_README"]["values"] if args.peer.is_file() else {}
    weights = args.weights
    shown_weights = (
        ", ".join(f"{t}: {shipped_weights(REPO / 'bundle', t).name}" for t in TASKS) if weights is None else weights
    )
    sections = [
        "## Quality on the Harvard test pairs",
        "",
        f"Command: `python benchmarks/bench_quality.py`; weights `{shown_weights}`; "
        f"commit {git_commit()}; split: `splits.json` test (the test_cddfuse sets); {machine_summary()}.",
        "Means ± standard deviations over pairs; grey/Y on the 0-255 scale; ↓: lower is better. Intervals: paired "
        "95 % bootstrap (10,000 resamples, seed 0) of the mean difference; **+** / **−**: the interval excludes 0 "
        "in our favour / against us. Bone: CT bone brightness kept (fused over CT > 200 / CT). Lesion: the "
        "contrast kept of one hot spot painted into each pair's PET/SPECT luminance (seed = the pair's index). "
        "HypoLesion: the contrast kept of a lesion painted into both sources, dark and sharp on the MRI, hot and "
        "blurred on the PET/SPECT (`paint_lesion`, seed = the pair's index); below 0 it is inverted. "
        "Stretched: each fused image min-max stretched to [0, 255], as CDDFuse, EMMA and FILM's test code does.",
    ]
    total_pairs, fuse_seconds = 0, 0.0
    means: dict[str, dict] = {}
    for task in TASKS:
        pairs = test_pairs(args.harvard, task)
        fuser = load_fuser(bundle_dir=REPO / "bundle", task=task, weights=weights, device="cpu")
        stretched = load_fuser(bundle_dir=REPO / "bundle", task=task, weights=weights, device="cpu", stretch=True)

        start = time.perf_counter()
        results = {"HKAFusion": score_method(pairs, partial(fuser, colour=False), task)}
        fuse_seconds += time.perf_counter() - start
        total_pairs += len(pairs)
        results["HKAFusion, stretched"] = score_method(pairs, partial(stretched, colour=False), task)
        results["average"] = score_method(pairs, rule_average, task)
        results["max"] = score_method(pairs, rule_max, task)
        results["laplacian"] = score_method(pairs, rule_laplacian, task)
        results["MRI"] = score_method(pairs, rule_mri, task)
        peer = peers.get(task, {}).get("CDDFuse_MIF")
        means[task] = {m: {k: round(float(np.nanmean(v)), 4) for k, v in per.items()} for m, per in results.items()}
        sections += [
            "",
            f"### {task} ({len(pairs)} pairs)",
            "",
            metric_table(results, peer, PAPER_TABLE_I.get(task)),
            "",
            ci_table(results, "HKAFusion", ["average", "max", "laplacian", "MRI"]),
            "",
            "The bars, for the shipped weights as `load_fuser` gives them:",
            "",
            *target_check(results, "HKAFusion", peer),
            "",
            "With the min-max stretch (`load_fuser(..., stretch=True)`, `--stretch true`):",
            "",
            *target_check({**results, "ours": results["HKAFusion, stretched"]}, "ours", peer),
        ]
        print("\n".join(sections[-22:]), flush=True)
    sections += ["", f"Fusing and scoring the {total_pairs} pairs took {fuse_seconds:.0f} s on this machine."]
    sections += ["", *phantom_lesion_table(weights, args.phantom)]
    print("\n".join(sections[-12:]), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps({"weights": str(weights), "commit": git_commit(), "means": means}, indent=2))
    if not args.no_write:
        path = write_section("results.md", "quality", "\n".join(sections), title="# Results")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
