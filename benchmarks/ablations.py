"""Paper Table II ablations on MRI-PET: train each variant with the same short budget, score it on the test pairs.

    python benchmarks/ablations.py train      # resumable: a variant with a finished run is skipped
    python benchmarks/ablations.py score      # test-set metrics of each variant -> docs/results.md

Every variant trains through the bundle (``bundle/configs/train.json`` + ``configs/harvard.json`` with ``task``
mri_pet + the budget below + the variant's ``network_def`` arguments), so each run is logged to MLflow in
``bundle/eval/ablations/<variant>/mlruns.db``. The budget is far below the main model's (stated in
docs/results.md): the comparison is between variants, at equal steps.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from _training import run_training  # noqa: E402

#: the variants of paper Table II, as HKAFusion constructor arguments
VARIANTS: dict[str, dict] = {
    "full (3,5,7,11)": {},
    "w/o attention": {"attention": "none"},
    "self-attention": {"attention": "self"},
    "direct concatenation": {"fusion": "concat"},
    "w/o reconstruction": {"reconstruction": False},
    "kernels (3,3,3,7)": {"small_kernels": [3, 3, 3], "large_kernel": 7},
    "kernels (3,5,7,7)": {"small_kernels": [3, 5, 7], "large_kernel": 7},
}
#: the shared budget: 10 epochs x 40 steps of 8 random 64x64 crops from scratch, lr 1e-3 cosine to 1e-5,
#: seed 0, with the loss weights and augmentation of the shipped weights' recipe (docs/results.md)
BUDGET = {
    "loss#lambda_s": 0.0,
    "loss#lambda_grad": 10.0,
    "loss#lambda_inten": 16.0,
    "hot_spot_prob": 0.3,
    "roi_size": [64, 64],
    "batch_size": 8,
    "epochs": 10,
    "epoch_length": 40,
    "learning_rate": 0.001,
    "min_learning_rate": 1e-05,
    "val_interval": 10,
    "log_figures": False,
    "num_workers": 0,
    "seed": 0,
}
TASK = "mri_pet"
OUT = REPO / "bundle" / "eval" / "ablations"


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_").lower()


def train(variants: list[str]) -> None:
    for name in variants:
        out = OUT / slug(name)
        if (out / "checkpoints" / "model_final.pt").is_file():
            print(f"{name}: done already ({out})")
            continue
        overlay = {**BUDGET, "task": TASK, "output_dir": str(out)}
        overlay.update({f"network_def#{k}": v for k, v in VARIANTS[name].items()})
        code, seconds = run_training(out, overlay, "configs/harvard.json", log_mode="w")
        print(f"{name}: exit {code} after {seconds:.0f} s ({out / 'train.log'})", flush=True)
        if code:
            raise SystemExit(code)


def score(variants: list[str], harvard: Path) -> dict:
    import torch
    from _quality import score_method, test_pairs

    from hkafusion_monai.inference import Fuser, load_weights
    from hkafusion_monai.networks import HKAFusion

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    pairs = test_pairs(harvard, TASK)
    results = {}
    for name in variants:
        ckpt = OUT / slug(name) / "checkpoints" / "model_final.pt"
        if not ckpt.is_file():
            print(f"{name}: not trained ({ckpt} missing); skipped")
            continue
        network = load_weights(HKAFusion(in_channels=2, out_channels=1, **VARIANTS[name]), ckpt)
        fuser = Fuser(network, task=TASK, device="cpu")
        results[name] = score_method(pairs, lambda m, o, f=fuser: f(m, o, colour=False), TASK)
        print(name, {k: round(float(v.mean()), 4) for k, v in results[name].items()}, flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["train", "score"])
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    parser.add_argument("--harvard", default=None, help="default: <HKAFUSION_SHARED>/data/harvard")
    args = parser.parse_args(argv)
    if args.harvard is None:
        from hkafusion_monai.data import harvard_root

        args.harvard = harvard_root()
    if args.what == "train":
        train(args.variants)
        return 0
    from _quality import write_ablation_section

    results = score(args.variants, Path(args.harvard))
    write_ablation_section(results, budget=BUDGET, task=TASK, variants=VARIANTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
