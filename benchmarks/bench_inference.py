"""End-to-end inference speed and peak memory with the shipped weights, on an idle machine.

    python benchmarks/bench_inference.py [--threads 2] [--parts pairs volume large]

- ``pairs``: read, fuse (colour re-attached) and write as PNG every Harvard test pair of ``splits.json``
  (136 pairs), model loading included;
- ``volume``: fuse a 256×256×150 phantom MRI with a 128×128×75 phantom PET (other grid, resampled onto the
  MRI's) through ``Fuser.fuse_volumes``, the path of the DICOM output and the Deploy application;
- ``large``: one 4096×4096 PET pair (a phantom pair upsampled) through the bundle's inference command, tiles,
  hot-spot guard and PNG writer included (the lesion restoration is off by default): the peak memory must stay
  flat in image size.

Each part runs in its own process, so its peak resident memory (``ru_maxrss``) is its own. Writes the
"inference" section of docs/performance.md (``pairs`` and ``volume``) and the "inference-large" section
(``large``); ``--parts`` runs and writes only those given.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

VOLUME_SHAPE = (256, 256, 150)  # rows, columns, slices of the MRI
LARGE = 4096  # the side of the large pair


def part_pairs(harvard: Path, weights: str) -> dict:
    import numpy as np
    from PIL import Image

    from hkafusion_monai.data.datalist import harvard_datalist, load_fusion_datalist
    from hkafusion_monai.inference import load_fuser

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        items = load_fusion_datalist(harvard_datalist(harvard / "splits.json", "joint", tmp), "test")
        fuser = load_fuser(bundle_dir=REPO / "bundle", weights=weights, device="cpu")
        for i, item in enumerate(items):
            arrays = []
            for key in ("mri", "other"):
                with Image.open(item[key]) as im:
                    arrays.append(np.asarray(im if im.mode == "L" else im.convert("RGB")))
            fused = fuser(*arrays)
            Image.fromarray(fused).save(Path(tmp) / f"{i:04d}.png")
    return {"pairs": len(items), "seconds": time.perf_counter() - start}


def part_volume(weights: str) -> dict:
    import torch
    from monai.data import MetaTensor

    from hkafusion_monai.data.phantom import Grid, make_subject, make_volume
    from hkafusion_monai.inference import load_fuser

    subject = make_subject(0, 0)
    r, c, s = VOLUME_SHAPE
    grids = {"MRI": Grid((r, c, s), (0.9, 0.9, 1.2)), "PET": Grid((r // 2, c // 2, s // 2), (1.8, 1.8, 2.4))}
    volumes = {}
    for modality, grid in grids.items():
        data = torch.from_numpy(make_volume(subject, modality, grid, seed=0))[None]
        volumes[modality] = MetaTensor(data, affine=torch.as_tensor(grid.nifti_affine()))
    fuser = load_fuser(bundle_dir=REPO / "bundle", task="mri_pet", weights=weights, device="cpu")
    start = time.perf_counter()
    fused = fuser.fuse_volumes(volumes["MRI"], volumes["PET"], modality="PET")
    seconds = time.perf_counter() - start
    return {"shape": list(fused.shape[1:]), "seconds": seconds, "slices_per_s": fused.shape[-1] / seconds}


def part_large(weights: str) -> dict:
    """The bundle's inference command on a 4096² PET pair; the peak RSS is the command's own (a child)."""
    from PIL import Image

    from hkafusion_monai.data import ensure_phantom

    root = Path(ensure_phantom(str(REPO / "demo_data")))
    mri_png = sorted((root / "png" / "mri_pet").rglob("MRI/*.png"))[0]
    pet_png = mri_png.parent.parent / "PET" / mri_png.name
    with tempfile.TemporaryDirectory() as tmp:
        pair = {}
        for name, path in (("mri", mri_png), ("other", pet_png)):
            with Image.open(path) as im:
                pair[name] = Path(tmp) / f"{name}.png"
                im.resize((LARGE, LARGE), Image.Resampling.BICUBIC).save(pair[name])
        cmd = [
            sys.executable,
            "-m",
            "monai.bundle",
            "run",
            "inference",
            "--config_file",
            "bundle/configs/inference.json",
        ]
        cmd += ["--mri", str(pair["mri"]), "--other", str(pair["other"]), "--task", "mri_pet", "--ckpt_path", weights]
        cmd += ["--output_dir", str(Path(tmp) / "out"), "--progress", "false"]
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlruns.db"}
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode:
            raise SystemExit(f"large: the inference command failed:\n{done.stderr[-3000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"size": LARGE, "seconds": seconds, "child_peak_rss_mib": peak}


def run_part(part: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--part", part, "--weights", args.weights, "--harvard", str(args.harvard)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    if out.returncode:
        raise SystemExit(f"{part} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    from hkafusion_monai.data import shared_root

    shared = Path(shared_root())
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--harvard", type=Path, default=shared / "data" / "harvard")
    parser.add_argument("--weights", default=str(REPO / "bundle" / "models" / "model.pt"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS), help="default: all")
    parser.add_argument("--part", choices=list(PARTS), help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/performance.md alone")
    args = parser.parse_args(argv)
    if args.part:
        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
        result = part_pairs(args.harvard, args.weights) if args.part == "pairs" else PARTS[args.part](args.weights)
        result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return 0

    import torch
    from _report import git_commit, machine_summary, write_section

    torch.set_num_threads(args.threads)  # the machine line names the threads the parts run with
    machine = machine_summary()
    command = " ".join(["python benchmarks/bench_inference.py", *(sys.argv[1:] if argv is None else argv)])
    head = f"`{command}`; commit {git_commit()}; {machine}; CPU only (no GPU figures)."
    table = ["| workload | time | throughput | peak memory (RSS) |", "|---|---|---|---|"]
    sections = {}
    if "pairs" in args.parts or "volume" in args.parts:
        lines = ["## Inference, end to end (shipped weights)", "", head, "", *table]
        if "pairs" in args.parts:
            pairs = run_part("pairs", args)
            lines.append(
                f"| {pairs['pairs']} Harvard test pairs: read, fuse (colour re-attached), write PNG; model load "
                f"included | {pairs['seconds']:.1f} s | {pairs['pairs'] / pairs['seconds']:.2f} pairs/s "
                f"| {pairs['peak_rss_mib']:.0f} MiB |"
            )
        if "volume" in args.parts:
            volume = run_part("volume", args)
            lines.append(
                f"| phantom volume {VOLUME_SHAPE[0]}×{VOLUME_SHAPE[1]}×{VOLUME_SHAPE[2]} MRI + 128×128×75 PET: "
                f"scaling, resampling, slice-by-slice fusion (`Fuser.fuse_volumes`) | {volume['seconds']:.1f} s "
                f"| {volume['slices_per_s']:.1f} slices/s | {volume['peak_rss_mib']:.0f} MiB |"
            )
        sections["inference"] = lines
    if "large" in args.parts:
        large = run_part("large", args)
        sections["inference-large"] = [
            "### A large pair: memory flat in image size",
            "",
            head,
            "",
            *table,
            f"| one {LARGE}×{LARGE} PET pair through `monai.bundle run inference` (1024² tiles, hot-spot guard, "
            f"PNG) | {large['seconds']:.1f} s | – | {large['child_peak_rss_mib']:.0f} MiB |",
        ]
    for section, lines in sections.items():
        print("\n".join(lines))
        if not args.no_write:
            print(f"wrote {write_section('performance.md', section, chr(10).join(lines))}")
    return 0


PARTS = {"pairs": None, "volume": part_volume, "large": part_large}

if __name__ == "__main__":
    sys.exit(main())
