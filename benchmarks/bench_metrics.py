"""Milliseconds per 256 x 256 triple for each of the eight fusion metrics on the CPU (target: all eight < 50 ms).

The triple is a Harvard MRI-PET test pair fused by the max rule when ``../shared`` is there, otherwise a
smooth synthetic pair; the images are quantised to 0..255 as every scoring path does. Each figure is the
median (and minimum) wall time of ``--repeats`` round-robin calls after a warm-up, at torch's thread count
and with one thread.

    python benchmarks/bench_metrics.py [--repeats 30]

Prints the figures and writes them to the ``bench_metrics`` section of ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._report import git_commit, machine_summary, write_section  # noqa: E402
from hkafusion_monai.data import shared_root  # noqa: E402
from hkafusion_monai.metrics import METRIC_FUNCTIONS, compute_fusion_metrics  # noqa: E402
from hkafusion_monai.utils import quantise  # noqa: E402
from hkafusion_monai.utils.colour import rgb_to_grey  # noqa: E402

BUDGET_MS = 50.0
ALL = "all eight: compute_fusion_metrics"
SHARED = Path(shared_root())
PAIR = SHARED / "data" / "harvard" / "mri_pet" / "test_cddfuse"


def triple() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, str]:
    """(fused, a, b) as 256 x 256 float64 grey levels, and where they came from."""
    if (PAIR / "MRI" / "15.png").exists():
        from PIL import Image

        a, b = (
            rgb_to_grey(np.asarray(Image.open(PAIR / sub / "15.png").convert("RGB")), channel_dim=-1).double()
            for sub in ("MRI", "PET")
        )
        return torch.maximum(a, b), a, b, "Harvard mri_pet test_cddfuse 15.png, max rule"
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.avg_pool2d(torch.rand(1, 2, 260, 260, generator=g), 5, stride=1)[0]
    a, b = quantise(x[0]).double(), quantise(x[1]).double()
    return quantise((a + b) / 510).double(), a, b, "synthetic smooth pair (../shared absent), average rule"


def measure(repeats: int) -> dict[str, tuple[float, float]]:
    """Median and minimum wall time in ms per call: each metric alone, and all eight together.

    The calls go round-robin (every metric once per round, after two warm-up rounds), so that a burst of
    load from elsewhere hits all rows alike.
    """
    fused, a, b, _ = triple()
    f4, s4 = fused[None, None], torch.stack([a, b])[None]
    calls: dict[str, Callable[[], object]] = {name: (lambda fn=fn: fn(f4, s4)) for name, fn in METRIC_FUNCTIONS.items()}
    calls[ALL] = lambda: compute_fusion_metrics(fused, a, b)
    times: dict[str, list[float]] = {name: [] for name in calls}
    for round_ in range(repeats + 2):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            if round_ >= 2:
                times[name].append((time.perf_counter() - start) * 1e3)
    return {name: (statistics.median(t), min(t)) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()

    machine = machine_summary()
    source = triple()[3]
    threads = torch.get_num_threads()
    configs = [threads] if threads == 1 else [threads, 1]
    results = {}
    for n in configs:
        torch.set_num_threads(n)
        results[n] = measure(args.repeats)
    torch.set_num_threads(threads)

    header = " | ".join(f"{n} thread{'s' if n > 1 else ''}: median (min) ms" for n in configs)
    lines = [
        "## Fusion metrics (`benchmarks/bench_metrics.py`)",
        "",
        f"One 256x256 triple ({source}), CPU, float64 inside; each public metric function with its input "
        f"checks, and `compute_fusion_metrics` (checks once, all eight). {args.repeats} timed rounds after 2 "
        "warm-up rounds, every row once per round.",
        "",
        f"| metric | {header} |",
        "|---|" + "---|" * len(configs),
    ]
    for name in results[configs[0]]:
        cells = " | ".join(f"{results[n][name][0]:.1f} ({results[n][name][1]:.1f})" for n in configs)
        lines.append(f"| {name} | {cells} |")
    best = min(results[n][ALL][0] for n in configs)
    verdict = "meets" if best < BUDGET_MS else "misses"
    lines += [
        "",
        f"All eight together: **{best:.1f} ms** median per triple at the better thread count ({verdict} the "
        f"{BUDGET_MS:.0f} ms target). The timings share the machine with whatever else runs: 1-min load "
        f"{os.getloadavg()[0]:.2f} at the end.",
        "",
        f"Machine: {machine}. Commit {git_commit()}, {date.today().isoformat()}.",
    ]
    body = "\n".join(lines)
    print(body)
    path = write_section("performance.md", "bench_metrics", body)
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
