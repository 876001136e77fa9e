"""The paper's full schedule on an accelerator: one model per task, 2000 epochs at 256 x 256, with the shipped
recipe's loss weights and augmentation, within a wall-clock budget; prints and records the throughput.

    python benchmarks/full_schedule.py --minutes 12 [--tasks mri_ct mri_pet mri_spect] [--epochs 2000]

Per task, through the bundle (``train.json`` + ``configs/harvard.json --task T``, so every run is logged to
MLflow in ``bundle/eval/full_schedule/<task>/mlruns.db``): first one timed epoch, then as many of the paper's
2000 epochs as the task's share of the budget allows, warm-started from the shipped weights, lr cosine over
the epochs that fit; the final weights are copied to ``bundle/eval/full_schedule/<task>/model_<task>.pt``
(ship one with ``benchmarks/ship_weights.py`` after checking it on validation). The throughput (pairs per
second, seconds per epoch, the device) and the epochs reached are written to docs/performance.md.

On a CPU it runs too (``--epochs 1 --epoch-length 2`` checks the set-up); the numbers then say so.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from _report import machine_summary, write_section  # noqa: E402
from _training import run_training  # noqa: E402

OUT = REPO / "bundle" / "eval" / "full_schedule"
#: the paper's schedule (IV-A): 2000 epochs, batch 8, 256 x 256 images
PAPER = {"epochs": 2000, "batch_size": 8, "roi_size": [256, 256], "image_size": [256, 256]}


def _train(task: str, out: Path, overlay: dict) -> float:
    code, seconds = run_training(out, overlay, "configs/harvard.json")
    if code:
        raise SystemExit(f"{task}: training failed (exit {code}); see {out / 'train.log'}")
    return seconds


def _pairs(task: str) -> int:
    from hkafusion_monai.data import datalist_from_splits, harvard_root

    return len(datalist_from_splits(Path(harvard_root()) / "splits.json", task)["training"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=12.0, help="wall-clock budget for all tasks together")
    parser.add_argument("--tasks", nargs="*", default=["mri_ct", "mri_pet", "mri_spect"])
    parser.add_argument("--epochs", type=int, default=PAPER["epochs"], help="the most epochs per task")
    parser.add_argument("--epoch-length", type=int, default=None, help="steps per epoch (default: one pass)")
    parser.add_argument("--no-write", action="store_true", help="leave docs/performance.md alone")
    args = parser.parse_args(argv)
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU (no accelerator)"
    share = args.minutes * 60.0 / max(1, len(args.tasks))
    rows = []
    for task in args.tasks:
        out = OUT / task
        if out.exists():
            shutil.rmtree(out)
        base = {
            **PAPER,
            "task": task,
            "pretrained": True,
            "epoch_length": args.epoch_length,
            "num_workers": 4 if torch.cuda.is_available() else 0,
            "log_figures": False,
            "seed": 0,
        }
        timing = _train(
            task, out / "timing", {**base, "epochs": 1, "val_interval": 1, "output_dir": str(out / "timing")}
        )
        per_epoch = max(timing, 1e-3)
        epochs = int(max(1, min(args.epochs, (share - timing) // per_epoch)))
        seconds = _train(
            task, out, {**base, "epochs": epochs, "val_interval": max(1, epochs // 10), "output_dir": str(out)}
        )
        final = out / "checkpoints" / "model_final.pt"
        shutil.copyfile(final, out / f"model_{task}.pt")
        steps_per_epoch = args.epoch_length or _pairs(task) // PAPER["batch_size"]
        pairs_per_second = epochs * steps_per_epoch * PAPER["batch_size"] / seconds
        rows.append((task, epochs, seconds, seconds / epochs, pairs_per_second))
        print(
            f"{task}: {epochs} of {args.epochs} epochs in {seconds:.0f} s ({pairs_per_second:.1f} pairs/s)", flush=True
        )
    body = [
        "## The paper's full schedule (benchmarks/full_schedule.py)",
        "",
        f"Device: {device}; {machine_summary()}. Budget: {args.minutes:g} minutes for {len(args.tasks)} task(s); "
        "each epoch one pass over the task's training pairs in batches of 8 at 256 × 256 (the first timed epoch "
        "included in the budget, not in the rows).",
        "",
        "| task | epochs reached (of 2000) | seconds | seconds per epoch | training pairs per second |",
        "|---|---|---|---|---|",
        *[f"| {t} | {e} | {s:.0f} | {se:.2f} | {p:.1f} |" for t, e, s, se, p in rows],
    ]
    print("\n".join(body))
    if not args.no_write:
        write_section("performance.md", "full-schedule", "\n".join(body))
    return 0


if __name__ == "__main__":
    sys.exit(main())
