"""Image grids of the shipped weights on the synthetic phantom, for docs/results.md (no Harvard images).

    python benchmarks/phantom_figures.py [--phantom demo_data]

Per task, two phantom test slices, one a row (labelled with its subject and height), in columns titled
MRI | CT/PET/SPECT | pixel average | pixel max | HKAFusion, PET/SPECT in colour (the fused luminance under the
source's chroma, as the inference workflow writes it). Writes ``docs/images/phantom_<task>.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]

from hkafusion_monai.data.phantom import ensure_phantom  # noqa: E402
from hkafusion_monai.handlers.fusion_grid import fusion_grid  # noqa: E402
from hkafusion_monai.inference import load_fuser  # noqa: E402
from hkafusion_monai.reports.html_report import colourise  # noqa: E402
from hkafusion_monai.utils.colour import rgb_to_y  # noqa: E402

TASKS = {"mri_ct": "png_ct.json", "mri_pet": "png_pet.json", "mri_spect": "png_spect.json"}


def _grey(x: np.ndarray) -> np.ndarray:
    """[0, 1] luminance of a uint8 grey or RGB image."""
    x = x.astype(np.float32) / 255.0
    return x if x.ndim == 2 else np.asarray(rgb_to_y(x, channel_dim=-1))


def _slice_label(path: str) -> str:
    """``png/.../MRI/sub-003_z+015.png`` -> ``sub-003, z +15 mm``: the subject and the slice's height."""
    subject, _, z = Path(path).stem.partition("_z")
    return f"{subject}, z {int(z):+d} mm"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phantom", default=str(REPO / "demo_data"))
    parser.add_argument("--pairs", type=int, default=2)
    args = parser.parse_args(argv)
    root = Path(ensure_phantom(args.phantom))
    out_dir = REPO / "docs" / "images"
    out_dir.mkdir(parents=True, exist_ok=True)
    for task, datalist in TASKS.items():
        fuser = load_fuser(REPO / "bundle", task=task, device="cpu")
        columns: list[list[np.ndarray]] = [[] for _ in range(5)]
        rows = []
        for item in json.loads((root / "datalists" / datalist).read_text())["test"][: args.pairs]:
            mri, other = (np.asarray(Image.open(root / item[k])) for k in ("mri", "other"))
            colour = other if other.ndim == 3 else None
            a, b = _grey(mri), _grey(other)
            ours = fuser(mri, other, colour=False).astype(np.float32) / 255.0
            cells = [colourise(a, None), other, colourise((a + b) / 2, colour), colourise(np.maximum(a, b), colour)]
            cells.append(colourise(ours, colour))
            for column, cell in zip(columns, cells, strict=True):
                column.append(cell)
            rows.append(_slice_label(item["mri"]))
        titles = ["MRI", item["modality"], "pixel average", "pixel max", "HKAFusion"]
        path = out_dir / f"phantom_{task}.png"
        Image.fromarray(fusion_grid(columns, titles, row_labels=rows)).save(path, optimize=True)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
