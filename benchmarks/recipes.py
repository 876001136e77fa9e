"""Training-recipe comparison on the validation pairs: which loss weights, crop size, batch and schedule to
train the shipped weights with.

    python benchmarks/recipes.py train [--recipes NAME ...]   # resumable: a recipe with a finished run is skipped
    python benchmarks/recipes.py score [--recipes NAME ...]   # validation table -> docs/results.md
    python benchmarks/recipes.py weights --weights CKPT ...   # the same score for any checkpoints (printed)
    python benchmarks/recipes.py train --set continuations --start CKPT   # round 3: from the shipped weights
    python benchmarks/recipes.py score --set continuations --phantom demo_data   # + the phantom's lesions

Every recipe trains through the bundle (``bundle/configs/train.json`` + ``configs/joint.json`` + the shared
budget + the recipe's overrides), warm-started from a common starting point, so each run is logged to MLflow
in ``bundle/eval/recipes/<recipe>/mlruns.db``. ``score`` fuses the joint *validation* pairs (never the test
pairs) with each recipe's final weights and reports the eight metrics, the hot-spot contrast kept on
PET/SPECT and the bone brightness kept on CT, and the choice score of :func:`_quality.choice_score`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from _training import run_training  # noqa: E402


def recipe(
    lambda_s: float,
    lambda_grad: float,
    lambda_inten: float,
    hot_spot_prob: float,
    gradient_target: str = "magnitude",
    lambda_contrast: float = 0.0,
    lesion_prob: float = 0.0,
    **overrides: object,
) -> dict:
    """A candidate's overrides of train.json + configs/joint.json: the loss (eq. 7-9 weights, the gradient term's
    target, the contrast floor's weight) and the two lesion augmentations, always all named (the defaults of
    train.json and joint.json become a chosen recipe's, so a candidate that relied on them would no longer be
    what it says), then any other overrides (crop and batch sizes, schedule)."""
    return {
        "loss#lambda_s": lambda_s,
        "loss#lambda_grad": lambda_grad,
        "loss#lambda_inten": lambda_inten,
        "loss#gradient_target": gradient_target,
        "loss#lambda_contrast": lambda_contrast,
        "hot_spot_prob": hot_spot_prob,
        "lesion_prob": lesion_prob,
        **overrides,
    }


#: round 2's candidates, from the 0.2.0 weights
RECIPES: dict[str, dict] = {
    # the starting point itself, scored as it is (no training)
    "start: weights shipped in 0.2.0": {"_no_training": True},
    "paper λ (1, 1, 0.5)": recipe(1.0, 1.0, 0.5, 0.0),
    "CDDFuse λ (0, 10, 1)": recipe(0.0, 10.0, 1.0, 0.0),
    "λ (0.1, 10, 1)": recipe(0.1, 10.0, 1.0, 0.0),
    "FILM λ (0, 20, 1)": recipe(0.0, 20.0, 1.0, 0.0),
    "λ (0, 10, 4)": recipe(0.0, 10.0, 4.0, 0.0),
    # round 2: the better weights with synthetic hot spots, full images, a higher lr
    "λ (0, 10, 4) + hot spots": recipe(0.0, 10.0, 4.0, 0.3),
    "λ (0, 10, 8) + hot spots": recipe(0.0, 10.0, 8.0, 0.3),
    "λ (0, 10, 16) + hot spots": recipe(0.0, 10.0, 16.0, 0.3),
    "λ (0, 10, 4) + hot spots, full 256² batch 2": recipe(0.0, 10.0, 4.0, 0.3, roi_size=[256, 256], batch_size=2),
    "λ (0, 10, 4) + hot spots, lr 1e-3": recipe(0.0, 10.0, 4.0, 0.3, learning_rate=0.001, min_learning_rate=1e-05),
}
#: the shared budget: 300 steps of 8 random 128x128 crops of the joint training pairs, warm-started from the
#: weights shipped before this comparison, Adam 2e-4 cosine to 2e-5, validated every 100 steps, seed 0
BUDGET = {
    "pretrained": True,
    "roi_size": [128, 128],
    "batch_size": 8,
    "epochs": 3,
    "epoch_length": 100,
    "learning_rate": 0.0002,
    "min_learning_rate": 2e-05,
    "val_interval": 1,
    "log_figures": False,
    "num_workers": 0,
    "seed": 0,
}
OUT = REPO / "bundle" / "eval" / "recipes"

#: round 3: continuations of the shipped 0.3.0 weights on the main run's data. The round-2 control (300 more
#: steps of the main run's recipe scored below its λ_grad 20 continuation) showed that the loss weights, not
#: more steps, were still the lever; these push the gradient weight further and try three ways of keeping
#: hot spots with it (more painted hot spots, more intensity weight, the structural term).
CONTINUATIONS: dict[str, dict] = {
    "start: weights shipped in 0.3.0": {"_no_training": True},
    "λ (0, 40, 16) + hot spots 0.3": recipe(0.0, 40.0, 16.0, 0.3),
    "λ (0, 40, 16) + hot spots 0.6": recipe(0.0, 40.0, 16.0, 0.6),
    # the gradient term is blind to sign (a hot spot over a dark MRI spot can go dark and still match it);
    # eq. 7's SSIM against both sources is not, and the intensity term pulls the core to the brighter source
    "λ (1, 40, 16) + hot spots 0.3": recipe(1.0, 40.0, 16.0, 0.3),
    "λ (0, 40, 32) + hot spots 0.3": recipe(0.0, 40.0, 32.0, 0.3),
    "λ (4, 40, 16) + hot spots 0.3": recipe(4.0, 40.0, 16.0, 0.3),
}
#: their budget: 300 steps of 2 whole 256² slices of the joint training pairs (``configs/joint.json``), Adam 2e-4
#: cosine to 2e-5, seed 0, from the shipped weights (``--start``)
CONTINUATION_BUDGET = {
    "pretrained": True,
    "epochs": 3,
    "epoch_length": 100,
    "learning_rate": 0.0002,
    "min_learning_rate": 2e-05,
    "val_interval": 3,
    "log_figures": False,
    "num_workers": 0,
    "seed": 0,
}
CONTINUATION_OUT = REPO / "bundle" / "eval" / "continuations"

#: round 4: the objective and the training data, from the shipped 0.4.0 weights at the continuations' budget.
#: The pixel optima (``benchmarks/pixel_optima.py``) showed that eq. 9's magnitude target costs Qabf and the
#: signed target costs lesions; the gradient's orientation in either polarity keeps both, and the contrast floor
#: and the painted hypointense-hot lesions (``RandLesiond``) teach the polarity where the PET/SPECT is hot.
OBJECTIVES: dict[str, dict] = {
    "start: weights shipped in 0.4.0": {"_no_training": True},
    "0.4.0's loss + lesions 0.3": recipe(4.0, 40.0, 16.0, 0.3, lesion_prob=0.3),
    "orientation + lesions 0.3": recipe(4.0, 40.0, 16.0, 0.3, "orientation", lesion_prob=0.3),
    "orientation + contrast 40 + lesions 0.3": recipe(4.0, 40.0, 16.0, 0.3, "orientation", 40.0, lesion_prob=0.3),
    "orientation + contrast 160 + lesions 0.3": recipe(4.0, 40.0, 16.0, 0.3, "orientation", 160.0, lesion_prob=0.3),
    "orientation + contrast 160": recipe(4.0, 40.0, 16.0, 0.3, "orientation", 160.0),
    # round 4b: the contrast floor was the lever (hypo-hot lesions 0.25 -> 0.54 on PET, the phantom's SPECT 0.11 ->
    # 0.36) at some Qabf: a stronger floor, and more painted lesions. (A third, λ_grad 80 to win Qabf back, was
    # dropped untrained, so that the main run could start.)
    "orientation + contrast 320 + lesions 0.3": recipe(4.0, 40.0, 16.0, 0.3, "orientation", 320.0, lesion_prob=0.3),
    "orientation + contrast 160 + lesions 0.6 (up to 3)": recipe(
        4.0, 40.0, 16.0, 0.3, "orientation", 160.0, lesion_prob=0.6, max_lesions=3
    ),
}
OBJECTIVES_OUT = REPO / "bundle" / "eval" / "objectives"

#: the comparisons: candidates, shared budget, output folder
SETS = {
    "recipes": (RECIPES, BUDGET, OUT),
    "continuations": (CONTINUATIONS, CONTINUATION_BUDGET, CONTINUATION_OUT),
    "objectives": (OBJECTIVES, CONTINUATION_BUDGET, OBJECTIVES_OUT),
}


def slug(name: str) -> str:
    return "".join(c if c.isascii() and c.isalnum() else "_" for c in name).strip("_").lower()


def train(names: list[str], start: str | None, which: str = "recipes") -> None:
    recipes, budget, root = SETS[which]
    for name in names:
        out = root / slug(name)
        if recipes[name].get("_no_training"):
            (out / "checkpoints").mkdir(parents=True, exist_ok=True)
            if not (out / "checkpoints" / "model_final.pt").is_file():
                shutil.copyfile(
                    start or REPO / "bundle" / "models" / "model.pt", out / "checkpoints" / "model_final.pt"
                )
            continue
        if (out / "checkpoints" / "model_final.pt").is_file():
            print(f"{name}: done already ({out})")
            continue
        overlay = {**budget, **recipes[name], "output_dir": str(out)}
        if start:
            overlay["pretrained_weights"] = start
        resume = (out / "checkpoints").is_dir() and any((out / "checkpoints").glob("checkpoint_*.pt"))
        code, seconds = run_training(out, overlay, "configs/joint.json", resume=resume)
        print(f"{name}: exit {code} after {seconds:.0f} s ({out / 'train.log'})", flush=True)
        if code:
            raise SystemExit(code)


def score(names: list[str], harvard: Path, threads: int, which: str = "recipes", phantom: Path | None = None) -> None:
    """Score each named recipe's final weights on the validation pairs (kept in ``validation.json`` beside its
    run, so a recipe is scored once), then write the table of every scored recipe. With ``phantom``, also
    :func:`phantom_summary` (the round-3 continuations are scored so)."""
    import torch
    from _quality import score_validation, write_objectives_section, write_recipes_section

    recipes, budget, root = SETS[which]
    torch.set_num_threads(threads)
    for name in names:
        ckpt = root / slug(name) / "checkpoints" / "model_final.pt"
        cache = root / slug(name) / "validation.json"
        if not ckpt.is_file():
            print(f"{name}: not trained ({ckpt} missing); skipped")
            continue
        fresh = cache.is_file() and cache.stat().st_mtime > ckpt.stat().st_mtime
        if fresh and (phantom is None or "phantom" in json.loads(cache.read_text())):
            continue  # scored already (with the phantom, when asked for)
        network_kwargs = {k.split("#", 1)[1]: v for k, v in recipes[name].items() if k.startswith("network_def#")}
        row = score_validation(harvard, ckpt, network_kwargs)
        if phantom is not None:
            row["phantom"] = phantom_summary(ckpt, phantom)
        cache.write_text(json.dumps(row, indent=2))
        print(name, json.dumps(row["summary"]), flush=True)
    rows = {
        name: json.loads((root / slug(name) / "validation.json").read_text())
        for name in recipes
        if (root / slug(name) / "validation.json").is_file()
    }
    if which == "objectives":
        write_objectives_section(rows, budget, recipes)
    else:
        write_recipes_section(rows, budget, recipes, section=which)


def phantom_summary(weights: Path, phantom: Path) -> dict[str, float]:
    """The contrast kept of the phantom's PET and SPECT lesions (mean and lowest) through the volume path, for
    ``weights`` and for pixel max (the bar): the phantom is synthetic, so it is free for choices, and its
    lesions sit where the hot spot is dark on the MRI."""
    from _quality import phantom_lesions

    from hkafusion_monai.inference import Fuser, load_fuser
    from hkafusion_monai.networks import PixelMax

    out = {}
    for modality, task in (("PET", "mri_pet"), ("SPECT", "mri_spect")):
        fusers = {
            "phantom": load_fuser(bundle_dir=REPO / "bundle", task=task, weights=str(weights), device="cpu"),
            "phantom_max": Fuser(PixelMax(), task=task),
        }
        for prefix, fuser in fusers.items():
            kept = phantom_lesions(fuser, modality, phantom)
            out[f"{prefix}_{modality}_lesion_mean"] = round(float(kept.mean()), 4)
            out[f"{prefix}_{modality}_lesion_min"] = round(float(kept.min()), 4)
    return out


def score_weights(paths: list[Path], harvard: Path, threads: int, phantom: Path | None = None) -> None:
    """Print the validation choice score and its parts for checkpoints outside the comparison (a longer run's
    epochs, a probe from the shipped weights); nothing is written. With ``phantom`` (a phantom folder), also
    :func:`phantom_summary`."""
    import torch
    from _quality import choice_key, lesion_shortfall, score_validation, validation_bars

    torch.set_num_threads(threads)
    for path in paths:
        row = score_validation(harvard, path)
        if phantom is not None:
            row["phantom"] = phantom_summary(path, phantom)
        bars = validation_bars(row)
        print(path, json.dumps({**row["summary"], **row.get("phantom", {})}), flush=True)
        print(
            f"  bars met {sum(bars.values())} of {len(bars)}; lesion shortfall {lesion_shortfall(row):.4f}; "
            f"choice key {choice_key(row)}; not met: {[b for b, ok in bars.items() if not ok]}",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["train", "score", "weights"])
    parser.add_argument(
        "--set",
        dest="which",
        choices=list(SETS),
        default="recipes",
        help="recipes: round 2's, from the 0.2.0 weights; continuations: round 3's, from --start; "
        "objectives: round 4's, from --start (default: the shipped weights)",
    )
    parser.add_argument("--recipes", nargs="*", default=None, help="default: every candidate of the set")
    parser.add_argument("--weights", nargs="*", type=Path, default=[], help="checkpoints to score ('weights')")
    parser.add_argument("--start", default=None, help="warm-start weights (default: bundle/models/model.pt)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--phantom", type=Path, default=None, help="also score this phantom folder's lesions")
    parser.add_argument("--harvard", default=None, help="default: <HKAFUSION_SHARED>/data/harvard")
    args = parser.parse_args(argv)
    if args.harvard is None:
        from hkafusion_monai.data import harvard_root

        args.harvard = harvard_root()
    candidates = SETS[args.which][0]
    names = list(candidates) if args.recipes is None else args.recipes
    unknown = [n for n in names if n not in candidates]
    if unknown:
        parser.error(f"unknown recipes {unknown}; known: {list(candidates)}")
    if args.what == "train":
        train(names, args.start, args.which)
    elif args.what == "weights":
        score_weights(args.weights, Path(args.harvard), args.threads, args.phantom)
    else:
        score(names, Path(args.harvard), args.threads, args.which, args.phantom)
    return 0


if __name__ == "__main__":
    sys.exit(main())
