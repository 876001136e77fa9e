"""Speed and size of HKAFusion: the default configuration and each Table II ablation.

For each configuration, in a fresh subprocess (so peak memory is its own):

- parameters;
- FLOPs of the eval path for one 256x256 pair (``torch.utils.flop_counter``, 2 per multiply-add);
- eval latency at 256x256, batch 1 and batch 8 (``torch.inference_mode``): median and min;
- training-step time (forward + backward + Adam) for 8 pairs at 128x128 and at 256x256: median and min;
- peak memory: the growth of the process's peak RSS during the workload.

Then torch.profiler's top operators for the default configuration, and a check of the speed goals
(<= 1.2 M parameters, <= 12 GFLOPs, <= 0.25 s eval per 256x256 pair, <= 1.2 s per training step of 8 pairs at
128x128). Figures are printed and written to docs/performance.md. Run it on an idle machine:

    python benchmarks/bench_network.py            # all configurations (about 10 minutes on 2 cores)
    python benchmarks/bench_network.py --only default --runs 30
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._report import git_commit, machine_summary, write_section  # noqa: E402

CONFIGS: dict[str, dict] = {
    "default": {},
    "w/o attention": {"attention": "none"},
    "self-attention": {"attention": "self"},
    "direct concatenation": {"fusion": "concat"},
    "w/o reconstruction": {"reconstruction": False},
    "kernels (3,3,3,7)": {"small_kernels": (3, 3, 3), "large_kernel": 7},
    "kernels (3,5,7,7)": {"small_kernels": (3, 5, 7), "large_kernel": 7},
}
GOALS = {"params": 1.2e6, "gflops": 12.0, "eval_b1": 0.25, "train_128": 1.2}


def _timed(fn, runs: int, warmup: int) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"median": statistics.median(times), "min": min(times), "runs": runs}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def measure(name: str, runs: int, slow_runs: int, threads: int) -> dict:
    """All figures for one configuration (run inside a worker subprocess)."""
    from torch.utils.flop_counter import FlopCounterMode

    from hkafusion_monai.networks import HKAFusion

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = HKAFusion(**CONFIGS[name])
    result: dict = {"name": name, "params": sum(p.numel() for p in net.parameters())}

    net.eval()
    x1, x8 = torch.rand(1, 2, 256, 256), torch.rand(8, 2, 256, 256)
    with torch.inference_mode():
        counter = FlopCounterMode(display=False)
        with counter:
            net(x1)
        result["gflops"] = counter.get_total_flops() / 1e9
        base = _peak_rss_mb()
        result["eval_b1"] = _timed(lambda: net(x1), runs, warmup=3)
        result["eval_b8"] = _timed(lambda: net(x8), slow_runs, warmup=1)
        result["peak_mb_eval_b8"] = _peak_rss_mb() - base

    net.train()
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-4)

    def train_step(batch: torch.Tensor) -> None:
        optimiser.zero_grad(set_to_none=True)
        net(batch).mean().backward()
        optimiser.step()

    b128, b256 = torch.rand(8, 2, 128, 128), torch.rand(8, 2, 256, 256)
    base = _peak_rss_mb()
    result["train_128"] = _timed(lambda: train_step(b128), runs, warmup=2)
    result["peak_mb_train_128"] = _peak_rss_mb() - base
    result["train_256"] = _timed(lambda: train_step(b256), slow_runs, warmup=1)
    result["peak_mb_train_256"] = _peak_rss_mb() - base
    return result


def profile_default(threads: int) -> str:
    """torch.profiler's top operators (self CPU time) for the default eval pass and training step."""
    from torch.profiler import ProfilerActivity, profile

    from hkafusion_monai.networks import HKAFusion

    torch.set_num_threads(threads)
    net = HKAFusion().eval()
    x = torch.rand(1, 2, 256, 256)
    with torch.inference_mode():
        net(x)
        with profile(activities=[ProfilerActivity.CPU]) as prof_eval:
            for _ in range(5):
                net(x)
    net.train()
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-4)
    batch = torch.rand(8, 2, 128, 128)

    def step() -> None:
        optimiser.zero_grad(set_to_none=True)
        net(batch).mean().backward()
        optimiser.step()

    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof_train:
        for _ in range(2):
            step()

    def top(prof, n: int) -> str:
        events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:n]
        total = sum(e.self_cpu_time_total for e in prof.key_averages()) or 1
        rows = ["| operator | self CPU % | calls |", "|---|---:|---:|"]
        rows += [f"| `{e.key}` | {100 * e.self_cpu_time_total / total:.1f} | {e.count} |" for e in events]
        return "\n".join(rows)

    return (
        "Eval, one 256x256 pair (5 passes):\n\n"
        + top(prof_eval, 10)
        + "\n\nTraining step, 8 pairs at 128x128 (2 steps):\n\n"
        + top(prof_train, 10)
    )


def _worker(args: argparse.Namespace) -> None:
    if args.worker == "__profile__":
        print(json.dumps({"profile": profile_default(args.threads)}))
    else:
        print(json.dumps(measure(args.worker, args.runs, args.slow_runs, args.threads)))


def _run_worker(name: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--worker", name, "--runs", str(args.runs)]
    cmd += ["--slow-runs", str(args.slow_runs), "--threads", str(args.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _fmt(t: dict) -> str:
    return f"{t['median']:.3f} / {t['min']:.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="timed runs for eval batch 1 and train at 128x128")
    parser.add_argument("--slow-runs", type=int, default=5, help="timed runs for eval batch 8 and train at 256x256")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", nargs="*", choices=list(CONFIGS), help="configurations to run (default: all)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/performance.md alone")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return 0

    torch.set_num_threads(args.threads)  # so that the machine summary states the threads the workers use
    machine = machine_summary()
    print(machine)
    names = args.only or list(CONFIGS)
    results = []
    for name in names:
        r = _run_worker(name, args)
        results.append(r)
        print(
            f"{name:22s} params {r['params'] / 1e6:.3f} M | {r['gflops']:.2f} GFLOPs | eval b1 {_fmt(r['eval_b1'])} s"
            f" | eval b8 {_fmt(r['eval_b8'])} s | train 8x128 {_fmt(r['train_128'])} s"
            f" | train 8x256 {_fmt(r['train_256'])} s | peak +{r['peak_mb_train_256']:.0f} MB",
            flush=True,
        )
    profile = _run_worker("__profile__", args)["profile"] if "default" in names else ""
    load_end = os.getloadavg()[0]

    checks = []
    default = next((r for r in results if r["name"] == "default"), None)
    if default is not None:
        checks = [
            ("parameters", default["params"] / 1e6, GOALS["params"] / 1e6, "M"),
            ("FLOPs per 256x256 pair", default["gflops"], GOALS["gflops"], "GFLOPs"),
            ("eval, one 256x256 pair (median)", default["eval_b1"]["median"], GOALS["eval_b1"], "s"),
            ("training step, 8 pairs at 128x128 (median)", default["train_128"]["median"], GOALS["train_128"], "s"),
        ]
        for what, value, goal, unit in checks:
            print(f"goal {what}: {value:.3f} {unit} <= {goal} {unit}: {'met' if value <= goal else 'NOT met'}")

    lines = [
        "## Network (`benchmarks/bench_network.py`)",
        "",
        f"Command: `python benchmarks/bench_network.py --runs {args.runs} --slow-runs {args.slow_runs}"
        f" --threads {args.threads}`, commit {git_commit()}.",
        f"Machine: {machine}; 1-min load {load_end:.2f} at the end.",
        "",
        "Times are median / min in seconds. Eval: `torch.inference_mode`, 256x256. Training step: forward, backward"
        " and `torch.optim.Adam` on 8 pairs. FLOPs: eval path, one 256x256 pair, `torch.utils.flop_counter`"
        " (2 per multiply-add). Peak memory: growth of the process's peak RSS during the 8-pair training steps"
        f" (both sizes). Eval batch 1 and train 128x128: {args.runs} timed runs after warm-up; eval batch 8 and"
        f" train 256x256: {args.slow_runs}.",
        "",
        "| configuration | params (M) | GFLOPs | eval b1 (s) | eval b8 (s) | train 8x128 (s) | train 8x256 (s) "
        "| peak RSS (MB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['name']} | {r['params'] / 1e6:.3f} | {r['gflops']:.2f} | {_fmt(r['eval_b1'])} | {_fmt(r['eval_b8'])}"
            f" | {_fmt(r['train_128'])} | {_fmt(r['train_256'])} | {r['peak_mb_train_256']:.0f} |"
        )
    if checks:
        lines += ["", "Goals for the default configuration:", ""]
        lines += [
            f"- {what}: {value:.3f} {unit} (goal <= {goal} {unit}): **{'met' if value <= goal else 'not met'}**"
            for what, value, goal, unit in checks
        ]
    if profile:
        lines += ["", "### Top operators (default configuration, torch.profiler)", "", profile]
    body = "\n".join(lines)
    if not args.no_write:
        print("wrote", write_section("performance.md", "bench_network", body))
    return 0 if all(value <= goal for _, value, goal, _ in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
