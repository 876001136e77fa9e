"""How much detail the fusion loss asks for: the spatial frequency (SF) of its gradient target, per task.

    python benchmarks/sf_target.py [--split test] [--weights bundle/models/model.pt]

The gradient term of the loss (eq. 9) pulls |∇F| towards max(|∇A|, |∇B|). SF is the root mean square of the
image's horizontal and vertical forward differences, so an image whose differences had exactly the larger
magnitude of the two sources' at every pixel would score ``sqrt(mean(max(|dxA|, |dxB|)^2) + mean(max(|dyA|,
|dyB|)^2))``. That is the SF the loss family aims at (the loss measures gradients with Sobel filters, a close
but not identical operator). The script prints it beside the SF of each source and of the weights' fusion,
so that a published SF can be read as a share of what the loss asks for. It prints only; docs/results.md
quotes its figures.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from hkafusion_monai.metrics import spatial_frequency

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))  # the benchmarks' shared _quality module, imported below

from _quality import TASKS, grey, load_uint8, test_pairs  # noqa: E402 (found through the sys.path entry above)


def target_sf(a: np.ndarray, b: np.ndarray) -> float:
    """SF of an image whose forward differences have the larger magnitude of ``a``'s and ``b``'s everywhere (no
    image has exactly these differences, so :func:`spatial_frequency` cannot be asked; its formula is applied to
    them directly)."""
    dx = np.maximum(np.abs(np.diff(a, axis=1)), np.abs(np.diff(b, axis=1)))
    dy = np.maximum(np.abs(np.diff(a, axis=0)), np.abs(np.diff(b, axis=0)))
    return float(np.sqrt(np.mean(dx**2) + np.mean(dy**2)))


def main(argv: list[str] | None = None) -> int:
    from hkafusion_monai.data import harvard_root
    from hkafusion_monai.inference import load_fuser

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default="test", choices=["test", "validation"])
    parser.add_argument("--weights", default=None, help="default: the bundle's shipped model.pt")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print("| task | SF MRI | SF other | SF of the gradient target | SF of the weights' fusion | share of the target |")
    print("|---|---|---|---|---|---|")
    for task in TASKS:
        fuser = load_fuser(bundle_dir=REPO / "bundle", task=task, weights=args.weights, device="cpu")
        rows = []
        for _, mri_path, other_path in test_pairs(Path(harvard_root()), task, split=args.split):
            mri, other = load_uint8(mri_path), load_uint8(other_path)
            a, b = grey(mri).numpy(), grey(other).numpy()
            fused = torch.as_tensor(np.asarray(fuser(mri, other, colour=False)), dtype=torch.float64)
            ours = float(spatial_frequency(fused[None, None])[0])
            sources = [float(spatial_frequency(torch.from_numpy(x)[None, None])[0]) for x in (a, b)]
            rows.append((*sources, target_sf(a, b), ours))
        m = np.mean(rows, axis=0)
        print(f"| {task} | {m[0]:.2f} | {m[1]:.2f} | {m[2]:.2f} | {m[3]:.2f} | {m[3] / m[2]:.1%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
