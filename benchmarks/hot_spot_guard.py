"""How often the hot-spot guard fires on the test sets: the shipped weights against pixel max.

    python benchmarks/hot_spot_guard.py [--weights [LABEL=]PATH ...] [--min-kept 0.5] [--limit N]

For every MRI-PET and MRI-SPECT pair of the ``test`` split of ``splits.json`` (the test_cddfuse sets), the
guard (:func:`hkafusion_monai.metrics.hot_spot_guard`, docs/failure_behaviour.md) finds the PET/SPECT's own hot
spots (no painted ones) in its luminance and measures the contrast each keeps in the fused image of the
shipped weights (``load_fuser``, as inference fuses a pair; or of each ``--weights``, e.g.
``0.4.0=old/model.pt 0.5.0=bundle/models/model.pt``) and of pixel max. It prints, per task and method,
the pairs on which the guard fires (at least one hot spot under ``--min-kept``), the hot spots found and lost,
and the median and least contrast kept; a full run writes them to docs/results.md (section
``hot-spot-guard``). ``--limit N`` scores the first N pairs of each set and only prints: a check that the script
runs, not figures to publish.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from _quality import _grey_output, grey, load_uint8, rule_max, test_pairs  # noqa: E402
from _report import git_commit, machine_summary, write_section  # noqa: E402

from hkafusion_monai.metrics import HOT_SPOT_MIN_KEPT, hot_spot_guard  # noqa: E402

TASKS = ("mri_pet", "mri_spect")
SECTION = "hot-spot-guard"


def score(pairs: list, fusers: dict[str, Any], min_kept: float) -> dict[str, dict]:
    """Per method (each of ``fusers`` by its label, then pixel max): the pairs scored, those the guard fires on,
    and every hot spot's contrast kept."""
    methods = [*fusers, "pixel max"]
    rows: dict[str, dict] = {m: {"pairs": 0, "fired": 0, "found": 0, "lost": 0, "kept": []} for m in methods}
    for _, mri_path, other_path in pairs:
        mri, other = load_uint8(mri_path), load_uint8(other_path)
        source = grey(other)  # the PET/SPECT luminance, 0-255, as the metrics read it
        fused = {label: _grey_output(fuser(mri, other, colour=False)) for label, fuser in fusers.items()}
        fused["pixel max"] = rule_max(mri, other)
        for method, image in fused.items():
            spots = hot_spot_guard(image, source, min_kept=min_kept)
            row = rows[method]
            row["pairs"] += 1
            row["found"] += len(spots)
            row["lost"] += sum(s.lost for s in spots)
            row["fired"] += any(s.lost for s in spots)
            row["kept"] += [s.kept for s in spots]
    return rows


def table(results: dict[str, dict[str, dict]], min_kept: float) -> str:
    head = (
        f"| task | method | pairs | guard fires on | hot spots found | lost (under {min_kept:.0%}) | median kept "
        "| least kept |"
    )
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for task, rows in results.items():
        for method, r in rows.items():
            kept = np.asarray(r["kept"], dtype=float)
            median = f"{np.median(kept):.2f}" if kept.size else "-"
            least = f"{kept.min():.2f}" if kept.size else "-"
            lines.append(
                f"| {task} | {method} | {r['pairs']} | {r['fired']} ({r['fired'] / max(r['pairs'], 1):.0%}) | "
                f"{r['found']} ({r['found'] / max(r['pairs'], 1):.1f} per pair) | {r['lost']} | {median} | {least} |"
            )
    return "\n".join(lines)


def _labelled(weights: str) -> tuple[str, str]:
    """``LABEL=PATH`` or ``PATH`` (labelled by itself) of ``--weights``; a path that holds ``=`` itself
    (``checkpoint_epoch=30.pt``) is a path, not a label."""
    label, sep, path = weights.partition("=")
    if not sep or "/" in label or Path(weights).exists():
        return f"HKAFusion {weights}", weights
    return f"HKAFusion {label}", path


def main(argv: list[str] | None = None) -> int:
    from hkafusion_monai.data import harvard_root
    from hkafusion_monai.inference import bundle_version, load_fuser

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--weights", nargs="+", default=[], metavar="[LABEL=]PATH", help="default: the bundle's shipped weights"
    )
    parser.add_argument("--min-kept", type=float, default=HOT_SPOT_MIN_KEPT, help="the guard's fraction (0.5)")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N pairs of each set; print only")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    weights = dict(_labelled(w) for w in args.weights) or {f"HKAFusion {bundle_version(None)}": None}
    results = {}
    for task in TASKS:
        fusers = {
            label: load_fuser(bundle_dir=REPO / "bundle", task=task, weights=path, device="cpu")
            for label, path in weights.items()
        }
        pairs = test_pairs(Path(harvard_root()), task)[: args.limit]
        results[task] = score(pairs, fusers, args.min_kept)
    seconds = time.perf_counter() - start
    text = table(results, args.min_kept)
    print(text)
    print(f"({seconds:.0f} s)")
    if args.limit is not None:
        print(f"--limit {args.limit}: figures printed only; docs/results.md is written by a full run")
        return 0
    names = ", ".join(
        f"{label}" + (f" (`{path}`)" if path else " (the shipped weights)") for label, path in weights.items()
    )
    command = " ".join(["python benchmarks/hot_spot_guard.py", *(sys.argv[1:] if argv is None else argv)])
    body = "\n".join(
        [
            "### How often the hot-spot guard fires",
            "",
            f"The hot-spot guard (docs/failure_behaviour.md) on every pair of the test_cddfuse sets (`splits.json` "
            f"`test`): the PET/SPECT's own hot spots (none painted), and how many keep less than "
            f"{args.min_kept:.0%} of their contrast in the fusion of {names} and of pixel max. A pair on "
            f"which the guard fires has at least one such hot spot. Command: `{command}`.",
            "",
            text,
            "",
            f"Commit {git_commit()}; {machine_summary()}; {seconds:.0f} s.",
        ]
    )
    write_section("results.md", SECTION, body, title="# Results")
    return 0


if __name__ == "__main__":
    sys.exit(main())
