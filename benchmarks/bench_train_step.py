"""The CPU training step, side by side: the code that trained 0.4.0 against this checkout, in one run.

    python benchmarks/bench_train_step.py [--baseline 83c1395] [--runs 10] [--size 128] [--batch 8]

A training step is what ``FusionTrainer`` runs: HKAFusion forward in training mode (fused image and the two
reconstructions), ``FusionLoss`` at the shipped recipe's weights, backward, ``torch.optim.Adam``. Every variant
runs in a fresh subprocess on the same seeded inputs and weights:

- the baseline: the package as it was at ``--baseline`` (``git archive``, default the last commit before this
  round's speed work), 2 threads;
- this checkout, 2 threads (the same loss options as the baseline, then the recipe's own options);
- this checkout as two 1-thread processes (gloo DDP, ``batch / 2`` pairs each), which the bundle runs with
  ``torchrun --nproc_per_node=2`` and ``multi_gpu_train.json``.

Each prints the median and min seconds per step (after 2 warm-up steps) and the loss and gradient norm of the
first step, so that results can be checked to agree (the DDP row's BatchNorm sees ``batch / 2`` pairs per
process, so its first loss differs slightly). The table goes to docs/performance.md, section
``bench_train_step``. Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: the loss of the baseline's recipe (0.4.0: λ = (4, 40, 16), eq. 9 magnitude)
BASE_LOSS = {"lambda_s": 4.0, "lambda_grad": 40.0, "lambda_inten": 16.0}


def _worker(
    code: str, threads: int, world: int, rank: int, batch: int, size: int, runs: int, loss_kwargs: dict
) -> dict:
    """Time the step in this process (rank ``rank`` of ``world``); returns the figures on rank 0."""
    sys.path.insert(0, code)
    import torch

    torch.set_num_threads(threads)
    from hkafusion_monai.losses import FusionLoss
    from hkafusion_monai.networks import HKAFusion

    if world > 1:
        import torch.distributed as dist

        dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    net = HKAFusion().train()
    data = torch.rand(batch, 2, size, size, generator=torch.Generator().manual_seed(1))
    part = data.chunk(world)[rank]
    model = torch.nn.parallel.DistributedDataParallel(net) if world > 1 else net
    loss_fn = FusionLoss(**loss_kwargs)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-4)

    def step() -> tuple[float, float]:
        optimiser.zero_grad(set_to_none=True)
        loss = loss_fn(model(part), part)
        loss.backward()
        norm = float(torch.sqrt(sum((p.grad.detach() ** 2).sum() for p in net.parameters() if p.grad is not None)))
        optimiser.step()
        return float(loss.detach()), norm

    first = step()
    step()
    times = []
    for _ in range(runs):
        if world > 1:
            dist.barrier()
        t0 = time.perf_counter()
        step()
        if world > 1:
            dist.barrier()
        times.append(time.perf_counter() - t0)
    if world > 1:
        dist.destroy_process_group()
    return {"median": statistics.median(times), "min": min(times), "first_loss": first[0], "first_grad_norm": first[1]}


def _run(code: Path, threads: int, world: int, args: argparse.Namespace, loss_kwargs: dict) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29517"}
    common = [sys.executable, __file__, "--code", str(code), "--threads", str(threads), "--world", str(world)]
    common += ["--batch", str(args.batch), "--size", str(args.size), "--runs", str(args.runs)]
    common += ["--loss", json.dumps(loss_kwargs)]
    procs = [
        subprocess.Popen(common + ["--rank", str(r)], env=env, stdout=subprocess.PIPE, text=True) for r in range(world)
    ]
    outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"worker failed: {[p.returncode for p in procs]}")
    return json.loads(outs[0].strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="83c1395", help="git commit of the baseline code")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument(
        "--recipe", default=str(REPO / "configs" / "joint.json"), help="the overlay naming the recipe's loss"
    )
    parser.add_argument("--no-write", action="store_true")
    # worker mode
    parser.add_argument("--code", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--world", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--rank", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--loss", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.code:
        result = _worker(
            args.code, args.threads, args.world, args.rank, args.batch, args.size, args.runs, json.loads(args.loss)
        )
        if args.rank == 0:
            print(json.dumps(result))
        return 0

    sys.path.insert(0, str(REPO / "benchmarks"))
    from _report import git_commit, machine_summary, write_section

    overlay = json.loads(Path(args.recipe).read_text())
    recipe_loss = {**BASE_LOSS, **{k.split("#", 1)[1]: v for k, v in overlay.items() if k.startswith("loss#")}}
    machine = machine_summary()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "baseline.tar"
        subprocess.run(["git", "archive", "-o", str(archive), args.baseline, "hkafusion_monai"], cwd=REPO, check=True)
        with tarfile.open(archive) as tar:
            tar.extractall(Path(tmp) / "baseline", filter="data")
        variants = [
            (f"0.4.0's code ({args.baseline}), 1 process × 2 threads", Path(tmp) / "baseline", 2, 1, BASE_LOSS),
            ("this commit, 1 process × 2 threads", REPO, 2, 1, BASE_LOSS),
            ("this commit, 2 processes × 1 thread (gloo DDP)", REPO, 1, 2, BASE_LOSS),
            ("this commit, 1 process × 2 threads, the recipe's loss", REPO, 2, 1, recipe_loss),
            ("this commit, 2 processes × 1 thread (gloo DDP), the recipe's loss", REPO, 1, 2, recipe_loss),
        ]
        for name, code, threads, world, loss_kwargs in variants:
            r = _run(code, threads, world, args, loss_kwargs)
            rows.append((name, r))
            print(
                f"{name}: {r['median']:.3f} s (min {r['min']:.3f}); first loss {r['first_loss']:.6f}, "
                f"grad norm {r['first_grad_norm']:.6f}",
                flush=True,
            )
    base = rows[0][1]["median"]
    lines = [
        "## Training step, side by side (`benchmarks/bench_train_step.py`)",
        "",
        f"Command: `python benchmarks/bench_train_step.py --baseline {args.baseline} --runs {args.runs} "
        f"--batch {args.batch} --size {args.size}`; commit {git_commit()}; {machine}.",
        "",
        f"One step: HKAFusion forward (training mode), `FusionLoss`, backward and Adam on {args.batch} pairs at "
        f"{args.size}×{args.size}; median / min of {args.runs} steps after 2 warm-up steps, each variant in a fresh "
        f"process on the same seeded weights and inputs. Loss: λ = (4, 40, 16) as 0.4.0 trained, then the recipe's "
        f"own options (`{json.dumps(recipe_loss)}`). First loss and gradient norm: of the first step, to check that "
        "the variants compute the same thing (the DDP rows' BatchNorm sees half the batch per process).",
        "",
        "| variant | s / step (median / min) | speed-up | first loss | first grad norm |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in rows:
        lines.append(
            f"| {name} | {r['median']:.3f} / {r['min']:.3f} | {base / r['median']:.2f}× | {r['first_loss']:.6f} "
            f"| {r['first_grad_norm']:.4f} |"
        )
    if not args.no_write:
        print("wrote", write_section("performance.md", "bench_train_step", "\n".join(lines)))
    else:
        print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
