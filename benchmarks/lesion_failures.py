"""Which painted hot spots a model lets fade, and why: a diagnosis of the lesion check on the test pairs.

    python benchmarks/lesion_failures.py [--weights bundle/models/model.pt] [--split test]

For each MRI-PET and MRI-SPECT pair, one hot spot is painted exactly as ``bench_quality`` paints it (seed = the
pair's index) and fused. The script prints the correlation, over all blobs, between the contrast kept and how
much brighter the MRI surround is than the PET/SPECT surround. Then, for every blob below 50 %, it prints the
fused core and surround levels, the most any fused image could keep there without darkening the MRI's own
surround below its level (255 minus that level, over the source's contrast), and what pixel max and the
Laplacian pyramid keep of the same blob. It prints only; docs/results.md quotes its figures.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from hkafusion_monai.metrics import hot_spot_contrast, hot_spot_contrast_kept
from hkafusion_monai.transforms.hot_spots import paint_hot_spot

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))  # the benchmarks' shared _quality module, imported below

from _quality import (  # noqa: E402 (found through the sys.path entry above)
    _grey_output,
    grey,
    load_uint8,
    rule_laplacian,
    rule_max,
    test_pairs,
)


def main(argv: list[str] | None = None) -> int:
    from hkafusion_monai.data import harvard_root
    from hkafusion_monai.inference import load_fuser

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=None, help="default: the bundle's shipped model.pt")
    parser.add_argument("--split", default="test", choices=["test", "validation"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    for task in ("mri_pet", "mri_spect"):
        fuser = load_fuser(bundle_dir=REPO / "bundle", task=task, weights=args.weights, device="cpu")
        kept, brighter, failures = [], [], []
        for index, (_, mri_path, other_path) in enumerate(test_pairs(Path(harvard_root()), task, split=args.split)):
            mri, other = load_uint8(mri_path), load_uint8(other_path)
            mri_grey = grey(mri).numpy()
            spot = paint_hot_spot(mri_grey, grey(other).numpy().astype(np.uint8), seed=index)
            painted = np.asarray(spot.painted, dtype=float)
            fused = _grey_output(fuser(mri, spot.painted, colour=False)).numpy().astype(float)
            ours = float(hot_spot_contrast_kept(fused, spot.painted, spot.core, spot.surround))
            kept.append(ours)
            brighter.append(float(mri_grey[spot.surround].mean() - painted[spot.surround].mean()))
            if ours < 0.5:
                rules = {"max": rule_max(mri, spot.painted), "laplacian": rule_laplacian(mri, spot.painted)}
                kept_by = {
                    n: float(hot_spot_contrast_kept(f, spot.painted, spot.core, spot.surround))
                    for n, f in rules.items()
                }
                # the most a fused image can keep while its surround stays as bright as the MRI's there
                headroom = (255.0 - mri_grey[spot.surround].mean()) / float(
                    hot_spot_contrast(spot.painted, spot.core, spot.surround)
                )
                failures.append(
                    (index, ours, fused[spot.core].mean(), fused[spot.surround].mean(), brighter[-1], kept_by, headroom)
                )
        r = float(np.corrcoef(kept, brighter)[0, 1])
        print(
            f"{task}: {len(kept)} blobs, mean kept {np.mean(kept):.3f}; {len(failures)} below 50 %; "
            f"corr(kept, MRI surround - {task[4:].upper()} surround) = {r:.2f}"
        )
        for index, ours, core, surround, diff, kept_by, headroom in failures:
            print(
                f"  pair {index}: kept {ours:.3f} (fused core {core:.0f}, surround {surround:.0f}; MRI surround "
                f"{diff:+.0f} over the source's; at most {headroom:.3f} without darkening the MRI surround) | "
                f"max {kept_by['max']:.3f} | laplacian {kept_by['laplacian']:.3f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
