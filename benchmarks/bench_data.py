"""Pairs per second from the 2-D training pipeline on the Harvard training sets (target: >= 100 pairs/s).

The pipeline is declared as a JSON-style dict and built by ``monai.bundle.ConfigParser``, as a bundle
config would: datalist (``splits.json``) -> ``CacheDataset`` (decoded, scaled, Y-converted, stacked pairs
cached) -> random rotation, 90-degree rotation, flips, 128x128 crop -> ``DataLoader`` with 2 workers.

    python benchmarks/bench_data.py [--tasks mri_ct mri_pet mri_spect] [--epochs 4] [--workers 2]

Prints the figures and writes them to the ``bench_data`` section of ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from hkafusion_monai.data import shared_root

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._report import git_commit, machine_summary, write_section  # noqa: E402
from hkafusion_monai.data.datalist import datalist_from_splits, write_datalist  # noqa: E402


def training_config(datalist: str, roi: int, batch_size: int, workers: int) -> dict:
    """The training data pipeline as a bundle-style config dict."""
    return {
        "imports": ["$import torch"],
        "datalist": datalist,
        "keys": ["mri", "other"],
        "train": {
            "preprocessing": {
                "_target_": "Compose",
                "transforms": [
                    {"_target_": "hkafusion_monai.transforms.LoadFusionImaged", "keys": "@keys"},
                    {"_target_": "hkafusion_monai.transforms.ScaleByBitDepthd", "keys": "@keys"},
                    {"_target_": "hkafusion_monai.transforms.SplitYCbCrd", "keys": "@keys", "keep_cbcr": False},
                    {"_target_": "hkafusion_monai.transforms.StackPaird", "keys": "@keys", "name": "image"},
                    {
                        "_target_": "RandRotated",
                        "keys": "image",
                        "range_x": 0.26,
                        "prob": 0.5,
                        "mode": "bilinear",
                        "padding_mode": "zeros",
                    },
                    {"_target_": "RandRotate90d", "keys": "image", "prob": 0.5, "spatial_axes": [0, 1]},
                    {"_target_": "RandFlipd", "keys": "image", "prob": 0.5, "spatial_axis": 0},
                    {"_target_": "RandFlipd", "keys": "image", "prob": 0.5, "spatial_axis": 1},
                    {"_target_": "RandSpatialCropd", "keys": "image", "roi_size": [roi, roi], "random_size": False},
                    {
                        "_target_": "ScaleIntensityRanged",
                        "keys": "image",
                        "a_min": 0.0,
                        "a_max": 1.0,
                        "b_min": 0.0,
                        "b_max": 1.0,
                        "clip": True,
                    },
                    {"_target_": "EnsureTyped", "keys": "image", "dtype": "$torch.float32", "track_meta": False},
                ],
            },
            "dataset": {
                "_target_": "CacheDataset",
                "data": {
                    "_target_": "hkafusion_monai.data.load_fusion_datalist",
                    "datalist": "@datalist",
                    "split": "training",
                },
                "transform": "@train#preprocessing",
                "cache_rate": 1.0,
                "num_workers": 1,
                "progress": False,
            },
            "dataloader": {
                "_target_": "DataLoader",
                "dataset": "@train#dataset",
                "batch_size": batch_size,
                "shuffle": True,
                "num_workers": workers,
                "persistent_workers": workers > 0,
            },
        },
    }


def bench_task(harvard: Path, task: str, tmp: Path, args: argparse.Namespace) -> dict:
    from monai.bundle import ConfigParser

    datalist = write_datalist(datalist_from_splits(harvard / "splits.json", task), tmp / f"{task}.json")
    parser = ConfigParser(training_config(str(datalist), args.roi, args.batch_size, args.workers))
    t0 = time.perf_counter()
    loader = parser.get_parsed_content("train#dataloader")
    cache_s = time.perf_counter() - t0
    n_pairs = len(loader.dataset)
    epochs = []
    for _ in range(args.epochs):
        t0, n = time.perf_counter(), 0
        for batch in loader:
            image = batch["image"]
            assert image.shape[1:] == (2, args.roi, args.roi) and image.dtype == torch.float32
            n += image.shape[0]
        epochs.append(n / (time.perf_counter() - t0))
    del loader
    return {"task": task, "pairs": n_pairs, "cache_s": cache_s, "first": epochs[0], "steady": epochs[1:] or epochs}


def main() -> None:
    shared = Path(shared_root())
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--harvard", type=Path, default=shared / "data" / "harvard")
    ap.add_argument("--tasks", nargs="+", default=["mri_ct", "mri_pet", "mri_spect"])
    ap.add_argument("--epochs", type=int, default=4, help="epochs per task; the first one is reported apart")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--roi", type=int, default=128)
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/performance.md alone")
    args = ap.parse_args()
    if not (args.harvard / "splits.json").is_file():
        sys.exit(f"Harvard pairs not found at {args.harvard} (set HKAFUSION_SHARED)")

    machine = machine_summary()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for task in args.tasks:
            r = bench_task(args.harvard, task, Path(tmp), args)
            steady = sum(r["steady"]) / len(r["steady"])
            rows.append((task, r["pairs"], r["cache_s"], r["first"], steady, min(r["steady"])))
            print(
                f"{task}: {r['pairs']} pairs, cache {r['cache_s']:.1f} s, first epoch {r['first']:.0f} pairs/s, "
                f"later epochs {steady:.0f} pairs/s (min {min(r['steady']):.0f})",
                flush=True,
            )
    overall = min(row[4] for row in rows)
    verdict = "meets" if overall >= 100 else "MISSES"
    print(f"slowest task: {overall:.0f} pairs/s ({verdict} the 100 pairs/s target)")

    body = [
        "## Data pipeline (`benchmarks/bench_data.py`)",
        "",
        f"Training pipeline on the Harvard training sets (splits.json), {args.roi}x{args.roi} crops, "
        f"batch {args.batch_size}, {args.workers} workers, {args.epochs} epochs per task "
        "(rotation, 90-degree rotation and flips at p = 0.5; decoded pairs cached by `CacheDataset`).",
        "",
        "| task | pairs | cache fill (s) | first epoch (pairs/s) | later epochs, mean (pairs/s) "
        "| later epochs, min (pairs/s) |",
        "|---|---|---|---|---|---|",
    ]
    body += [f"| {t} | {n} | {c:.1f} | {f:.0f} | {s:.0f} | {m:.0f} |" for t, n, c, f, s, m in rows]
    body += [
        "",
        f"Slowest task: **{overall:.0f} pairs/s** ({verdict} the 100 pairs/s target). "
        "The first epoch includes starting the workers.",
        "",
        f"Machine: {machine}. Commit {git_commit()}, {time.strftime('%Y-%m-%d')}.",
    ]
    if not args.no_write:
        path = write_section("performance.md", "bench_data", "\n".join(body))
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
