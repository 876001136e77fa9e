"""Ship a training run's weights as the bundle's: ``bundle/models/model.pt`` (a plain state dict), its TorchScript
export ``model.ts`` (MONAI's ``ckpt_export``), and their record in ``bundle/configs/metadata.json`` (sha256,
size, and one more step of the training lineage: what the run started from, its recipe, steps, data and seed).

    python benchmarks/ship_weights.py CHECKPOINT --run-dir bundle/eval/joint --steps 4000 --seed 1 \\
        --note "warm start from ..., recipe configs/joint.json"

Each shipped model keeps the lineage of the ones before it, so training can continue over several runs (and
sessions): the next run warm-starts from ``model.pt`` and adds its own step.

With ``--task mri_ct|mri_pet|mri_spect`` the weights are shipped as that task's own model instead,
``model_<task>.pt`` and ``model_<task>.ts`` (``shipped_weights`` prefers them for their task; the joint
``model.pt`` stays the fallback), recorded under ``weights["model_<task>.pt"]`` with a lineage of their own
that starts from the joint version they were continued from. ``--no-run`` ships a checkpoint unchanged (a joint
version chosen for one task on its validation pairs).

A new bundle version changes what each TorchScript file reports (``ckpt_export`` puts the metadata inside), so
a release with unchanged weights exports them again and records the new files:

    python benchmarks/ship_weights.py --reexport
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "bundle" / "models"
METADATA = REPO / "bundle" / "configs" / "metadata.json"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_and_export(state: dict, name: str) -> None:
    """Write ``state`` as ``bundle/models/<name>.pt`` (whole, then renamed into place) and its TorchScript export
    ``<name>.ts`` (MONAI's ``ckpt_export``, with the bundle's metadata and inference config inside)."""
    tmp = MODELS / f".{name}.pt.tmp"
    torch.save(dict(state), tmp)
    tmp.replace(MODELS / f"{name}.pt")
    export(name)


def export(name: str) -> None:
    """Export ``bundle/models/<name>.pt`` as ``<name>.ts`` with MONAI's ``ckpt_export``."""
    cmd = [sys.executable, "-m", "monai.bundle", "ckpt_export", "network_def", "--filepath", str(MODELS / f"{name}.ts")]
    cmd += ["--ckpt_file", str(MODELS / f"{name}.pt"), "--meta_file", str(METADATA)]
    cmd += ["--config_file", str(REPO / "bundle" / "configs" / "inference.json")]
    subprocess.run(cmd, cwd=REPO, check=True)


def reexport() -> int:
    """Export every shipped ``<name>.pt`` again as ``<name>.ts`` with the bundle's current metadata inside, and
    record the new files' sha256 and size in metadata.json; the ``.pt`` files and the lineage are unchanged."""
    meta = json.loads(METADATA.read_text())
    weights = meta["weights"]
    for key in [k for k in weights if k.endswith(".pt")]:
        name = key.removesuffix(".pt")
        export(name)
        path = MODELS / f"{name}.ts"
        weights[f"{name}.ts"].update(sha256=_sha256(path), bytes=path.stat().st_size)
        print(f"exported {path} for version {meta['version']}")
    METADATA.write_text(json.dumps(meta, indent=4, ensure_ascii=False) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    if (sys.argv[1:] if argv is None else argv) == ["--reexport"]:
        return reexport()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="a state dict, or a training state holding it under 'model'")
    parser.add_argument("--run-dir", type=Path, default=None, help="the run's output folder (its overlay.json)")
    parser.add_argument("--steps", type=int, required=True, help="optimiser steps of the run")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--note", default="", help="what the run started from and why")
    parser.add_argument(
        "--base",
        type=Path,
        default=REPO / "configs" / "joint.json",
        help="the overlay the run's overrides went on (recorded with them)",
    )
    parser.add_argument("--task", choices=("mri_ct", "mri_pet", "mri_spect"), default=None)
    parser.add_argument("--start-version", default=None, help="with --task: the joint version the run started from")
    args = parser.parse_args(argv)
    if args.task is not None:
        return ship_task_model(args)
    if args.run_dir is None:
        parser.error("--run-dir is needed to ship the joint model")

    from hkafusion_monai.utils.weights import read_checkpoint, state_dict_of

    state = state_dict_of(read_checkpoint(args.checkpoint), args.checkpoint)
    overlay = args.run_dir / "overlay.json"
    # the recipe is the base overlay (the shipped recipe, configs/joint.json) under the run's own overrides
    recipe = json.loads(args.base.read_text()) if args.base is not None and args.base.is_file() else {}
    recipe.update(json.loads(overlay.read_text()) if overlay.is_file() else {})
    # the run's start: the weights its overlay names (a path from the repository root), else the shipped ones
    start = REPO / recipe["pretrained_weights"] if recipe.get("pretrained_weights") else MODELS / "model.pt"
    previous = _sha256(start) if start.is_file() else None
    save_and_export(state, "model")

    meta = json.loads(METADATA.read_text())
    weights = meta.setdefault("weights", {})
    lineage = weights.get("lineage") or ([weights.pop("training")] if "training" in weights else [])
    weights.pop("training", None)
    lineage.append(
        {
            "version": meta["version"],
            "started_from": f"weights sha256 {previous}" if previous else "random initialisation",
            "recipe": {
                k: v
                for k, v in recipe.items()
                if k not in ("output_dir", "pretrained_weights", "task")  # local paths: the start is named by its hash
            },
            "steps": args.steps,
            "data": "Harvard splits.json joint training split (673 pairs: 147 MRI-CT, 245 MRI-PET, 281 MRI-SPECT)",
            "seed": args.seed,
            "note": args.note,
        }
    )
    for name, what in (
        (
            "model.pt",
            "state dict of HKAFusion(in_channels=2, out_channels=1), one joint model for mri_ct, mri_pet and "
            "mri_spect; torch.load(weights_only=True)",
        ),
        ("model.ts", "TorchScript export of model.pt (monai.bundle ckpt_export)"),
    ):
        path = MODELS / name
        weights[name] = {"sha256": _sha256(path), "bytes": path.stat().st_size, "what": what}
    weights["lineage"] = lineage
    METADATA.write_text(json.dumps(meta, indent=4, ensure_ascii=False) + "\n")
    print(f"shipped {args.checkpoint} as {MODELS / 'model.pt'} (sha256 {weights['model.pt']['sha256']})")
    return 0


def ship_task_model(args: argparse.Namespace) -> int:
    """Ship ``args.checkpoint`` as ``model_<task>.pt`` / ``.ts`` with its own lineage (see the module docstring)."""
    from hkafusion_monai.utils.weights import read_checkpoint, state_dict_of

    state = state_dict_of(read_checkpoint(args.checkpoint), args.checkpoint)
    name = f"model_{args.task}"
    save_and_export(state, name)
    meta = json.loads(METADATA.read_text())
    weights = meta.setdefault("weights", {})
    lineage = [
        {
            "version": meta["version"],
            "started_from": f"the joint weights {args.start_version} (weights.lineage up to that version)",
            "recipe": (
                {
                    k: v
                    for k, v in json.loads((args.run_dir / "overlay.json").read_text()).items()
                    if k not in ("output_dir", "pretrained", "pretrained_weights")
                }
                if args.run_dir is not None and (args.run_dir / "overlay.json").is_file()
                else {}
            ),
            "steps": args.steps,
            "data": f"Harvard splits.json {args.task} training split" if args.steps else "none (no training)",
            "seed": args.seed,
            "note": args.note,
        }
    ]
    what = f"state dict of HKAFusion(in_channels=2, out_channels=1) for {args.task} only; torch.load(weights_only=True)"
    for suffix, text in ((".pt", what), (".ts", f"TorchScript export of {name}.pt (monai.bundle ckpt_export)")):
        path = MODELS / f"{name}{suffix}"
        weights[f"{name}{suffix}"] = {"sha256": _sha256(path), "bytes": path.stat().st_size, "what": text}
    weights[f"{name}.pt"]["lineage"] = lineage
    METADATA.write_text(json.dumps(meta, indent=4, ensure_ascii=False) + "\n")
    print(f"shipped {args.checkpoint} as {MODELS / (name + '.pt')} (sha256 {weights[name + '.pt']['sha256']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
