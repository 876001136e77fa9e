"""How often the hot-spot guard fires: the phantom per series, the Harvard validation and test sets.

    python benchmarks/hot_spot_guard.py [--weights [LABEL=]PATH ...] [--min-kept 0.5] [--limit N]

The guard (:func:`hkafusion_monai.metrics.hot_spot_guard`, docs/failure_behaviour.md) finds the PET/SPECT's own
hot spots (none painted) and measures the contrast each keeps in the fused image of the shipped weights
(``load_fuser``, as inference fuses a pair; or of each ``--weights``, e.g. ``0.5.0=bundle/models/model.pt``) and
of pixel max. Two rules are counted on the same hot spots: *every hot spot* (a hot spot keeping less than
``--min-kept`` is lost, the rule before the MRI was consulted) and *over darker MRI* (the guard's rule: only
where the MRI is darker than its surround by :data:`~hkafusion_monai.metrics.HOT_SPOT_MRI_DARKER` of the hot
spot's contrast, a lesion's pattern).

- **The phantom** (``demo_data``, written if missing): every subject's MRI with its PET and its SPECT through
  ``fuse_volumes`` (the Deploy path), one row per series; the phantom knows which hot spots lie on a lesion
  (the tissue label at the peak), so the table says how many of the lost hot spots are lesions.
- **Harvard**: every MRI-PET and MRI-SPECT pair of the ``validation`` split of ``splits.json`` (where the rule was
  chosen) and of the ``test`` split (the test_cddfuse sets, reported only).

A full run writes the tables to docs/results.md (section ``hot-spot-guard``); ``--limit N`` scores the first N
pairs of each set and phantom subjects and only prints: a check that the script runs, not figures to publish.
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

from hkafusion_monai.metrics import HOT_SPOT_MIN_KEPT, HOT_SPOT_MRI_DARKER, hot_spot_guard  # noqa: E402

TASKS = {"mri_pet": "PET", "mri_spect": "SPECT"}
SPLITS = ("validation", "test")
SECTION = "hot-spot-guard"


def _new_row() -> dict:
    return {"pairs": 0, "fired_all": 0, "fired": 0, "found": 0, "lost_all": 0, "lost": 0, "kept": []}


def _add(row: dict, spots: list, min_kept: float) -> None:
    row["pairs"] += 1
    row["found"] += len(spots)
    row["lost_all"] += sum(s.kept < min_kept for s in spots)
    row["lost"] += sum(s.lost for s in spots)
    row["fired_all"] += any(s.kept < min_kept for s in spots)
    row["fired"] += any(s.lost for s in spots)
    row["kept"] += [s.kept for s in spots]


def score(pairs: list, fusers: dict[str, Any], min_kept: float) -> dict[str, dict]:
    """Per method (each of ``fusers`` by its label, then pixel max): the pairs scored, those each rule fires on,
    and every hot spot's contrast kept."""
    rows = {m: _new_row() for m in [*fusers, "pixel max"]}
    for _, mri_path, other_path in pairs:
        mri, other = load_uint8(mri_path), load_uint8(other_path)
        source = grey(other)  # the PET/SPECT luminance, 0-255, as the metrics read it
        fused = {label: _grey_output(fuser(mri, other, colour=False)) for label, fuser in fusers.items()}
        fused["pixel max"] = rule_max(mri, other)
        for method, image in fused.items():
            _add(rows[method], hot_spot_guard(image, source, min_kept=min_kept, mri=grey(mri)), min_kept)
    return rows


def score_phantom(
    root: Path, fusers: dict[str, Any], modality: str, min_kept: float, limit: int | None, darkness: dict[str, list]
) -> list:
    """One row per phantom subject: ``(subject, method, row, lesions found, lesions lost by each rule)``; adds
    to ``darkness`` how much darker the MRI is under each hot spot than around it (``1 - mri_ratio``), by the
    tissue under its core: ``lesion`` (at least half the core), else the tissue at its peak."""
    from hkafusion_monai.data import phantom as ph
    from hkafusion_monai.metrics.hot_spots import FoundHotSpot, disc_masks, hot_spot_patch
    from hkafusion_monai.transforms import LoadFusionVolumed

    names = {ph.GM: "cortex (grey matter)", ph.DEEP_GM: "deep grey matter"}

    loader = LoadFusionVolumed(["mri", "other"])
    out = []
    for folder in sorted(Path(root, "nifti").glob("sub-*"))[:limit]:
        subject = ph.make_subject(0, int(folder.name.split("-")[1]))
        d = loader({"mri": folder / "mri.nii.gz", "other": folder / f"{modality.lower()}.nii.gz"})
        labels = None
        for label, fuser in fusers.items():
            fused, other, mri = fuser.fuse_volumes(
                d["mri"], d["other"], modality=modality, return_other=True, return_mri=True
            )
            if labels is None:  # the tissue at every voxel of the MRI grid (the phantom's scanner frame is LPS)
                shape = fused.shape[1:]
                ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, 3)
                ras = ijk @ np.asarray(fused.affine)[:3, :3].T + np.asarray(fused.affine)[:3, 3]
                labels = ph.tissue_labels(subject, ras * np.array([-1.0, -1.0, 1.0])).reshape(shape)
            images = {label: fused[0].numpy(), "pixel max": np.maximum(mri[0].numpy(), other[0].numpy())}
            for method, image in images.items():
                if method == "pixel max" and label != next(iter(fusers)):
                    continue
                spots = hot_spot_guard(image, other[0].numpy(), min_kept=min_kept, max_value=1.0, mri=mri[0].numpy())
                if method == next(iter(fusers)):  # the hot spots are the source's: count them once
                    for s in spots:
                        found = FoundHotSpot(s.position[2], s.position[0], s.position[1], s.radius, s.contrast)
                        on_lesion = hot_spot_patch(labels == ph.LESION, found, 255.0)[disc_masks(s.radius)[0]]
                        tissue = "lesion" if float(on_lesion.mean()) >= 0.5 else names.get(int(labels[s.position]))
                        if tissue is not None:
                            darkness.setdefault(tissue, []).append(1.0 - float(s.mri_ratio))
                row = _new_row()
                _add(row, spots, min_kept)
                lesion = [labels[s.position] == ph.LESION for s in spots]
                counts = (
                    sum(lesion),
                    sum(s.kept < min_kept and les for s, les in zip(spots, lesion, strict=True)),
                    sum(s.lost and les for s, les in zip(spots, lesion, strict=True)),
                )
                out.append((folder.name, method, row, *counts))
    return out


def _kept_cells(r: dict) -> str:
    kept = np.asarray(r["kept"], dtype=float)
    return f"{np.median(kept):.2f} | {kept.min():.2f}" if kept.size else "- | -"


def _rate(n: int, of: int) -> str:
    return f"{n} ({n / max(of, 1):.0%})"


def table(results: dict[tuple[str, str], dict[str, dict]], min_kept: float) -> str:
    lines = [
        f"| task | split | method | pairs | fires: every hot spot under {min_kept:.0%} (before) | fires: over darker "
        "MRI (the guard) | hot spots | lost before | lost now | median kept | least kept |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (task, split), rows in results.items():
        for method, r in rows.items():
            lines.append(
                f"| {task} | {split} | {method} | {r['pairs']} | {_rate(r['fired_all'], r['pairs'])} | "
                f"{_rate(r['fired'], r['pairs'])} | {r['found']} | {r['lost_all']} | {r['lost']} | {_kept_cells(r)} |"
            )
    return "\n".join(lines)


def phantom_table(rows: dict[str, list], min_kept: float) -> str:
    lines = [
        f"| series | method | hot spots (on a lesion) | under {min_kept:.0%} kept: all (lesions) | fires before | "
        "lost now (lesions) | fires now |",
        "|---|---|---|---|---|---|---|",
    ]
    totals: dict[str, list[int]] = {}
    for modality, entries in rows.items():
        for name, method, r, lesions, lesions_all, lesions_now in entries:
            lines.append(
                f"| {name} {modality} | {method} | {r['found']} ({lesions}) | {r['lost_all']} ({lesions_all}) | "
                f"{'yes' if r['fired_all'] else 'no'} | {r['lost']} ({lesions_now}) | {'yes' if r['fired'] else 'no'} |"
            )
            t = totals.setdefault(method, [0, 0, 0])
            t[0], t[1], t[2] = t[0] + 1, t[1] + r["fired_all"], t[2] + r["fired"]
    summary = "; ".join(f"{m}: fires on {b} of {n} series before, {a} of {n} now" for m, (n, b, a) in totals.items())
    return "\n".join(lines) + "\n\n" + summary + "."


def _labelled(weights: str) -> tuple[str, str]:
    """``LABEL=PATH`` or ``PATH`` (labelled by itself) of ``--weights``; a path that holds ``=`` itself
    (``checkpoint_epoch=30.pt``) is a path, not a label."""
    label, sep, path = weights.partition("=")
    if not sep or "/" in label or Path(weights).exists():
        return f"HKAFusion {weights}", weights
    return f"HKAFusion {label}", path


def main(argv: list[str] | None = None) -> int:
    from hkafusion_monai.data import ensure_phantom, harvard_root
    from hkafusion_monai.inference import bundle_version, load_fuser

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--weights", nargs="+", default=[], metavar="[LABEL=]PATH", help="default: the bundle's shipped weights"
    )
    parser.add_argument("--min-kept", type=float, default=HOT_SPOT_MIN_KEPT, help="the guard's fraction (0.5)")
    parser.add_argument("--phantom", type=Path, default=REPO / "demo_data", help="the phantom folder")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N pairs of each set; print only")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    weights = dict(_labelled(w) for w in args.weights) or {f"HKAFusion {bundle_version(None)}": None}
    phantom_root = Path(ensure_phantom(str(args.phantom)))
    results, phantom, darkness = {}, {}, {}
    for task, modality in TASKS.items():
        fusers = {
            label: load_fuser(bundle_dir=REPO / "bundle", task=task, weights=path, device="cpu")
            for label, path in weights.items()
        }
        phantom[modality] = score_phantom(phantom_root, fusers, modality, args.min_kept, args.limit, darkness)
        for split in SPLITS:
            pairs = test_pairs(Path(harvard_root()), task, split)[: args.limit]
            results[(task, split)] = score(pairs, fusers, args.min_kept)
    seconds = time.perf_counter() - start
    text, ptext = table(results, args.min_kept), phantom_table(phantom, args.min_kept)
    dark = "; ".join(
        f"{tissue} ({len(v)}): {np.min(v):.0%} to {np.max(v):.0%}, 2nd-98th percentile {np.percentile(v, 2):.0%} to "
        f"{np.percentile(v, 98):.0%}"
        for tissue, v in sorted(darkness.items())
    )
    print(ptext)
    print(dark)
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
            f"The hot-spot guard (docs/failure_behaviour.md) on the fusions of {names} and of pixel max: the "
            f"PET/SPECT's own hot spots (none painted), counted by two rules. *Before*: a hot spot keeping less "
            f"than {args.min_kept:.0%} of its contrast is lost. *Now* (the guard's rule): only where the MRI's mean "
            f"over its core is also at least {HOT_SPOT_MRI_DARKER:.0%} below the MRI's mean over its surround, the "
            "pattern of a lesion (dark on T1, hot on PET/SPECT). A series or pair fires when at least one hot "
            f"spot is lost. Command: `{command}`.",
            "",
            "**The phantom** (`demo_data`, the Deploy path `fuse_volumes`), one row per PET/SPECT series; a hot spot "
            "is on a lesion when the phantom's tissue at its peak is `LESION`:",
            "",
            ptext,
            "",
            "How much darker the MRI is under the phantom's hot spots than around them (`1 - mri_ratio`), by the "
            "tissue under the core (a lesion: at least half the core), where the fraction was chosen: " + dark + ".",
            "",
            "**Harvard**: the `validation` pairs of `splits.json` (where the rule and its fraction were chosen) and "
            "the `test` pairs (test_cddfuse, reported only):",
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
