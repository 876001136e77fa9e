"""The validation curves behind the shipped weights, read back from the runs' MLflow stores.

    python benchmarks/training_report.py [--run-dir bundle/eval/joint] [--sweep-dir bundle/eval/lr_sweep]

Writes the "training-curves" section of docs/results.md: the learning-rate sweep (final validation metrics
of each short run) and the main run's validation metrics at every validation epoch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from _report import write_section  # noqa: E402

from hkafusion_monai.metrics import METRIC_NAMES  # noqa: E402


def _runs(store: Path) -> list:
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{store.resolve()}")
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    return [(client, r) for r in runs if r.info.run_name.startswith("train_")]


def _history(client, run, key: str) -> dict[int, float]:
    return {m.step: m.value for m in client.get_metric_history(run.info.run_id, key)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, default=REPO / "bundle" / "eval" / "joint")
    parser.add_argument("--sweep-dir", type=Path, default=REPO / "bundle" / "eval" / "lr_sweep")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    keys = [f"val_{m.lower()}" for m in METRIC_NAMES]
    lines = ["## Validation curves", ""]

    sweep = sorted(args.sweep_dir.glob("lr_*/mlruns.db"))
    if sweep:
        lines += [
            "Learning-rate sweep: the joint task, constant learning rate, 4 epochs × 80 steps of 8 random 96×96 "
            "crops each, validated on the 60 joint validation pairs after every 80 steps. The table gives the "
            "last validation.",
            "",
            "| peak lr | steps | " + " | ".join(METRIC_NAMES) + " |",
            "|---|---|" + "---|" * len(METRIC_NAMES),
        ]
        for store in sweep:
            for _client, run in _runs(store):
                metrics = run.data.metrics
                lr = store.parent.name.removeprefix("lr_")
                cells = " | ".join(f"{metrics.get(k, float('nan')):.4g}" for k in keys)
                lines.append(f"| {lr} | 320 | {cells} |")
        lines.append("")

    runs = _runs(args.run_dir / "mlruns.db") if (args.run_dir / "mlruns.db").is_file() else []
    if runs:
        client, run = runs[0]
        history = {k: _history(client, run, k) for k in keys}
        lr = _history(client, run, "lr")
        epochs = sorted(history[keys[0]])
        params = run.data.params
        steps = int(params["epoch_length"]) if params.get("epoch_length", "none") not in ("none", "") else 84
        batch, crop = params.get("batch_size", "8"), params.get("roi_size", "[96, 96]")
        lines += [
            f"Main run `{run.info.run_name}` (MLflow run {run.info.run_id}, store `{args.run_dir.name}/mlruns.db`): "
            f"the 60 joint validation pairs after each {epochs[0] if epochs else '?'} epochs of {steps} steps "
            f"(batch {batch}, {crop} images). Qcv: lower is better.",
            "",
            "| epoch | steps | lr | " + " | ".join(METRIC_NAMES) + " |",
            "|---|---|---|" + "---|" * len(METRIC_NAMES),
        ]
        for epoch in epochs:
            cells = " | ".join(f"{history[k].get(epoch, float('nan')):.4g}" for k in keys)
            lines.append(f"| {epoch} | {epoch * steps} | {lr.get(epoch, float('nan')):.2e} | {cells} |")
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        print(f"wrote {write_section('results.md', 'training-curves', text, title='# Results')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
