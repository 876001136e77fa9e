"""The phantom's command line: ``python -m hkafusion_monai.data.phantom --out DIR`` (options: ``--help``)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .anatomy import PROFILES
from .dataset import write_phantom

__all__ = ["main"]


def _size_of(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m hkafusion_monai.data.phantom",
        description="Write the synthetic MRI/CT/PET/SPECT head phantom: DICOM, NIfTI, PNG pairs, datalists.",
    )
    parser.add_argument("--out", required=True, help="output folder (must not exist or be empty)")
    parser.add_argument("--subjects", type=int, default=4, help="number of subjects (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--size", choices=sorted(PROFILES), default="standard", help="volume grids (default standard)")
    parser.add_argument("--png-slices", type=int, default=8, help="PNG pairs per subject and task (default 8)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing non-empty output folder")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        out = write_phantom(args.out, args.subjects, args.seed, args.size, args.png_slices, args.overwrite)
    except (FileExistsError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    n, size = _size_of(out)
    seconds = time.perf_counter() - start
    print(f"wrote {out}: {args.subjects} subject(s), {n} files, {size / 1e6:.1f} MB in {seconds:.1f} s")
    return 0
