"""What each training objective asks for, without a network: optimise the fused image's pixels directly.

    python benchmarks/pixel_optima.py [--pairs 5] [--steps 200] [--objectives NAME ...]

For a few *validation* pairs per task (never the test pairs), the fused image starts at the pixel max and
takes ``--steps`` Adam steps (lr 0.01) on :class:`~hkafusion_monai.losses.FusionLoss` with each candidate's
options (μ = 1, no reconstruction). What it converges to is the objective's own optimum: a network trained on
the objective can at best approach it. Each optimum is scored as the trained weights are (grey, the project's
metrics): Qabf, SF, VIF and AG on the unpainted pairs, and, on MRI-PET and MRI-SPECT, the contrast kept of a
hypointense-hot lesion (:func:`~hkafusion_monai.transforms.hot_spots.paint_lesion`, seed = the pair's index)
and of a painted hot spot, each pair fused again with its lesion. Pixel max is the reference for the lesions.
The table goes to docs/results.md, section ``pixel-optima``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from _quality import TASKS, grey, load_uint8, test_pairs  # noqa: E402
from _report import git_commit, write_section  # noqa: E402

from hkafusion_monai.data import harvard_root  # noqa: E402
from hkafusion_monai.losses import FusionLoss  # noqa: E402
from hkafusion_monai.metrics import compute_fusion_metrics, hot_spot_contrast_kept  # noqa: E402
from hkafusion_monai.transforms.hot_spots import paint_hot_spot, paint_lesion  # noqa: E402

#: candidate objectives: FusionLoss options (λ = (4, 40, 16), 0.4.0's recipe, unless named)
OBJECTIVES: dict[str, dict] = {
    "eq. 9 magnitude (0.4.0)": {},
    "signed vector of the stronger source": {"gradient_target": "stronger"},
    "signed gradient of max(A, B)": {"gradient_target": "max"},
    "orientation of the stronger source": {"gradient_target": "orientation"},
    "orientation + contrast floor 40": {"gradient_target": "orientation", "lambda_contrast": 40.0},
    "orientation + contrast floor 160": {"gradient_target": "orientation", "lambda_contrast": 160.0},
    "orientation + contrast floor 320 (0.5.0)": {"gradient_target": "orientation", "lambda_contrast": 320.0},
}
BASE = {"lambda_s": 4.0, "lambda_grad": 40.0, "lambda_inten": 16.0}
METRICS = ("Qabf", "SF", "VIF", "AG")


def optimise(pairs: list[tuple[np.ndarray, np.ndarray]], loss: FusionLoss, steps: int) -> list[np.ndarray]:
    """The fused grey images (0-255, rounded) that ``steps`` Adam steps on ``loss`` reach from the pixel max,
    all pairs in one batch (each pixel is its own parameter, so the batch changes nothing but the speed)."""
    image = torch.stack([torch.stack([grey(m), grey(o)]) for m, o in pairs]).float() / 255.0
    fused = torch.maximum(image[:, :1], image[:, 1:]).clone().requires_grad_(True)
    opt = torch.optim.Adam([fused], lr=0.01)
    for _ in range(steps):
        opt.zero_grad()
        loss(fused, image).backward()
        opt.step()
        with torch.no_grad():
            fused.clamp_(0.0, 1.0)
    return list(torch.round(fused.detach()[:, 0].double() * 255.0).numpy())


def pixel_max(pairs: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    return [np.maximum(grey(m), grey(o)).numpy() for m, o in pairs]


def score(pairs: list, task: str, fuse_all) -> dict[str, list[float]]:
    """Qabf, SF, VIF, AG of ``fuse_all`` on the pairs, and on PET/SPECT the painted lesions and hot spots kept
    (each pair fused again with its lesion); ``fuse_all`` fuses a list of (mri, other) uint8 pairs at once."""
    inputs, checks = [], []
    for index, (_, mri_path, other_path) in enumerate(pairs):
        mri, other = load_uint8(mri_path), load_uint8(other_path)
        inputs.append((mri, other))
        if task != "mri_ct":
            mri_grey, other_grey = grey(mri).numpy().astype(np.uint8), grey(other).numpy().astype(np.uint8)
            lesion = paint_lesion(mri_grey, other_grey, seed=index)
            spot = paint_hot_spot(mri_grey, other_grey, seed=index)
            checks.append(("lesion", len(inputs), lesion.other, lesion.core, lesion.surround))
            inputs.append((lesion.mri, lesion.other))
            checks.append(("hot spot", len(inputs), spot.painted, spot.core, spot.surround))
            inputs.append((mri_grey, spot.painted))
    fused = fuse_all(inputs)
    out: dict[str, list[float]] = {}
    checked = {i for _, i, *_ in checks}
    for i, (mri, other) in enumerate(inputs):
        if i not in checked:
            for m, v in compute_fusion_metrics(fused[i], grey(mri), grey(other)).items():
                if m in METRICS:
                    out.setdefault(m, []).append(float(v))
    for name, i, painted, core, surround in checks:
        out.setdefault(name, []).append(float(hot_spot_contrast_kept(fused[i], grey(painted), core, surround)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=5, help="validation pairs per task")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--objectives", nargs="*", default=list(OBJECTIVES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the per-pair figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    harvard = Path(harvard_root())
    rows: dict[str, dict[str, dict[str, list[float]]]] = {}
    for task in TASKS:
        pairs = test_pairs(harvard, task, split="validation")[: args.pairs]
        rows.setdefault("pixel max", {})[task] = score(pairs, task, pixel_max)
        for name in args.objectives:
            loss = FusionLoss(**BASE, **OBJECTIVES[name])
            rows.setdefault(name, {})[task] = score(pairs, task, lambda p, f=loss: optimise(p, f, args.steps))
            print(task, name, {m: round(float(np.mean(v)), 4) for m, v in rows[name][task].items()}, flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    head = ["objective"] + [
        f"{t} {m}" for t in TASKS for m in ("Qabf", "SF", "VIF") + (() if t == "mri_ct" else ("lesion", "hot spot"))
    ]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---|" * (len(head) - 1)]
    for name, per_task in rows.items():
        cells = [name]
        for task in TASKS:
            for m in ("Qabf", "SF", "VIF") + (() if task == "mri_ct" else ("lesion", "hot spot")):
                v = np.asarray(per_task[task][m])
                cells.append(f"{v.mean():.3f}" + (f" (min {v.min():.2f})" if m in ("lesion", "hot spot") else ""))
        lines.append("| " + " | ".join(cells) + " |")
    body = [
        "## Pixel optima of the candidate objectives (validation)",
        "",
        f"Each objective's optimum without a network: the fused pixels start at the pixel max and take {args.steps} "
        f"Adam steps (lr 0.01) on `FusionLoss` with λ = (4, 40, 16), μ = 1, and the objective's options; the first "
        f"{args.pairs} validation pairs per task. Lesion: contrast kept of a hypointense-on-MRI, hot-and-blurred-on-"
        "PET/SPECT lesion painted into each pair (`paint_lesion`, mean (min)); hot spot: of a bright blob painted into "
        "the PET/SPECT only (`paint_hot_spot`).",
        "",
        f"Command: `python benchmarks/pixel_optima.py --pairs {args.pairs} --steps {args.steps}`; "
        f"commit {git_commit()}.",
        "",
        *lines,
    ]
    write_section("results.md", "pixel-optima", "\n".join(body), title="# Results")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
