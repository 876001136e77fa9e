"""Crash injection: kill a run with SIGKILL at points spread over its life, then run the same command again.

    python benchmarks/crash_injection.py [--points 20] [--application both|bundle|deploy] [--no-write]

For each application, the bundle's inference (a DICOM pair of the phantom, ``--output_format dicom
--skip_existing true``) and the Deploy application (the phantom's MR and PT study, ``--overwrite``; only when
the MONAI Deploy SDK is installed), and for each kill point:

1. a fresh output folder and a fresh per-user MLflow store (``HKAFUSION_HOME``), so that the store's creation
   is one of the phases a kill can land in;
2. the command is started and killed with SIGKILL: at one of four events (the store being built, the first
   log line of the fusion, a temporary output appearing, the first output published; Deploy keeps no MLflow
   store, so three), or at a time spread evenly over the duration of an undisturbed run;
3. what the killed run left is checked: every output under its final name is whole (each DICOM file of a
   derived series reads, and the series has all its instances), and nothing else is published;
4. the same command runs again in the same folder and must succeed, with every output whole.

The phase a kill landed in is read from what the run had left at that moment (a store being built, a
temporary output, published outputs, the log). A timed point that finds the run already ended (this run was
faster than the undisturbed one: the machine's load varies) is tried again at the same part of that run's
life. A full run prints a table and writes it to docs/failure_behaviour.md (section ``crash-injection``, or
``crash-injection-<application>`` for one); ``tests/integration/test_crash_injection.py`` runs a few points.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

__all__ = ["Application", "KillResult", "bundle_application", "deploy_application", "kill_and_rerun", "main"]

SECTION = "crash-injection"
#: the events a kill can wait for, in the order a run meets them
EVENTS = ("store creation", "fusing", "writing", "publishing")


@dataclass
class Application:
    """One command to kill and rerun, in a working folder of its own."""

    name: str
    command: Callable[[Path], list[str]]  # the output folder -> the command line
    outputs: Callable[[Path], list[str]]  # the output folder -> the problems of what is published there
    expected: int  # outputs a finished run publishes
    fusing_marker: str  # a log line that the fusion has started
    events: tuple[str, ...] = EVENTS  # the events this application meets (Deploy keeps no MLflow store)


@dataclass
class KillResult:
    """What one kill point did: where it landed, what it left and whether the next run succeeded."""

    application: str
    point: str
    phase: str
    killed_after_s: float
    published: int
    partial: list[str] = field(default_factory=list)
    leftovers: int = 0
    rerun_rc: int | None = None
    rerun_problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.partial and self.rerun_rc == 0 and not self.rerun_problems


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "HKAFUSION_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def _series_problems(out: Path, slices: int) -> list[str]:
    """The problems of the derived series published in ``out``: a folder whose files do not all read as DICOM,
    or that lacks instances; hidden (temporary) entries are not published and are left out."""
    import pydicom

    problems = []
    for folder in sorted(p for p in out.iterdir() if not p.name.startswith(".")):
        if not folder.is_dir():
            problems.append(f"{folder.name}: a file, not a series folder")
            continue
        files = [f for f in folder.rglob("*") if f.is_file()]
        for f in files:
            try:
                pydicom.dcmread(f).pixel_array  # noqa: B018
            except Exception as e:  # a truncated file under its final name
                problems.append(f"{f.relative_to(out)}: {type(e).__name__}")
        if len(files) != slices:
            problems.append(f"{folder.name}: {len(files)} of {slices} instances")
    return problems


def _published(out: Path) -> int:
    return len([p for p in out.iterdir() if not p.name.startswith(".")]) if out.is_dir() else 0


def _hidden(out: Path) -> int:
    """Hidden entries of ``out`` (temporary outputs), not counting the check for room before the work."""
    if not out.is_dir():
        return 0
    return len([p for p in out.iterdir() if p.name.startswith(".") and not p.name.startswith(".hkafusion-probe")])


def bundle_application(work: Path, phantom: Path, ckpt: Path) -> Application:
    """Bundle inference of the phantom's test subject (MR + PT) into a derived DICOM series."""
    subject = phantom / "dicom" / "sub-002"
    datalist = work / "dicom_pet.json"
    datalist.write_text(json.dumps({"test": [{"mri": str(subject / "MR"), "other": str(subject / "PT")}]}))
    slices = len(list((subject / "MR").iterdir()))

    def command(out: Path) -> list[str]:
        return [
            *(sys.executable, "-m", "monai.bundle", "run", "inference"),
            *("--config_file", str(REPO / "bundle" / "configs" / "inference.json")),
            *("--bundle_root", str(REPO / "bundle"), "--ckpt_path", str(ckpt), "--datalist", str(datalist)),
            *("--output_dir", str(out), "--output_format", "dicom", "--skip_existing", "true"),
            *("--task", "mri_pet", "--progress", "false", "--device", "$torch.device('cpu')"),
        ]

    return Application("bundle inference", command, lambda out: _series_problems(out, slices), 1, "Engine run")


def deploy_application(work: Path, phantom: Path, ckpt: Path) -> Application | None:
    """The Deploy application on the phantom's test study (MR + PT); None without the MONAI Deploy SDK."""
    import importlib.util

    try:
        if importlib.util.find_spec("monai.deploy.core") is None:
            return None
    except ModuleNotFoundError:
        return None
    subject = phantom / "dicom" / "sub-002"
    study = work / "study"
    if not study.exists():
        for name in ("MR", "PT"):
            shutil.copytree(subject / name, study / name)
    slices = len(list((subject / "MR").iterdir()))

    def command(out: Path) -> list[str]:
        deploy = [sys.executable, "-m", "hkafusion_monai.deploy", "-i", str(study), "-o", str(out)]
        return [*deploy, "-m", str(ckpt), "--overwrite"]

    return Application("Deploy", command, lambda out: _series_problems(out, slices), 1, "selected PT", EVENTS[1:])


class _Log:
    """A process's output, read in a thread so that the pipe never fills."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.text = ""
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.text += line


def _phase(app: Application, out: Path, home: Path, log: str, exited: bool) -> str:
    """The phase a run was in, from what it left at that moment."""
    if exited:
        return "after the run"
    if _published(out) >= app.expected:
        return "publishing (all published)"
    if _published(out):
        return "publishing"
    if _hidden(out):
        return "writing"
    if list(home.glob(".mlruns.db.*.tmp*")):
        return "store creation"
    if app.fusing_marker in log:
        return "fusing"
    return "start-up" if not (home / "mlruns.db").exists() else "start-up (store built)"


def _event(app: Application, event: str, out: Path, home: Path, log: _Log) -> bool:
    if event == "store creation":
        return bool(list(home.glob(".mlruns.db.*.tmp*")))
    if event == "fusing":
        return app.fusing_marker in log.text
    if event == "writing":
        return _hidden(out) > 0
    return _published(out) > 0  # publishing


def kill_and_rerun(app: Application, work: Path, point: str, delay: float | None, timeout: float = 600) -> KillResult:
    """One kill point: ``point`` is one of :data:`EVENTS` (``delay`` None) or a label of a kill ``delay``
    seconds after the start."""
    trial = Path(tempfile.mkdtemp(prefix="kill.", dir=work))
    out, home = trial / "out", trial / "home"
    env = _env(home)
    start = time.perf_counter()
    proc = subprocess.Popen(
        app.command(out), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    log = _Log(proc)
    while proc.poll() is None and time.perf_counter() - start < timeout:
        if delay is None and _event(app, point, out, home, log):
            break
        if delay is not None and time.perf_counter() - start >= delay:
            break
        time.sleep(0.002)
    exited = proc.poll() is not None
    phase = _phase(app, out, home, log.text, exited)
    if not exited:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    result = KillResult(app.name, point, phase, time.perf_counter() - start, _published(out) if out.is_dir() else 0)
    result.partial = app.outputs(out) if out.is_dir() else []
    result.leftovers = _hidden(out) + len(list(home.glob(".mlruns.db.*"))) if home.is_dir() else _hidden(out)
    rerun = subprocess.run(app.command(out), cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    result.rerun_rc = rerun.returncode
    if rerun.returncode != 0:
        lines = [line for line in (rerun.stdout + rerun.stderr).splitlines() if line.strip()]
        result.rerun_problems = [lines[-1] if lines else f"exit {rerun.returncode}"]
    else:
        result.rerun_problems = app.outputs(out) + (
            [] if _published(out) == app.expected else [f"{_published(out)} of {app.expected} outputs"]
        )
    shutil.rmtree(trial, ignore_errors=True)
    return result


def run_duration(app: Application, work: Path) -> float:
    """The wall-clock seconds of an undisturbed run (fresh folder and store)."""
    trial = Path(tempfile.mkdtemp(prefix="clean.", dir=work))
    start = time.perf_counter()
    done = subprocess.run(
        app.command(trial / "out"), cwd=REPO, env=_env(trial / "home"), capture_output=True, text=True, timeout=900
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{app.name}: the undisturbed run failed:\n{(done.stdout + done.stderr)[-3000:]}")
    shutil.rmtree(trial, ignore_errors=True)
    return seconds


def kill_points(duration: float, points: int, events: tuple[str, ...] = EVENTS) -> list[tuple[str, float | None]]:
    """The ``events``, then ``points - len(events)`` times spread evenly over ``duration``."""
    timed = points - len(events)
    times = [duration * (i + 0.5) / timed for i in range(timed)]
    return [(event, None) for event in events] + [(f"at {t:.1f} s", t) for t in times]


def _table(results: list[KillResult], durations: dict[str, float]) -> str:
    lines = [
        "| application | kill point | phase at the kill | published then | partial outputs | hidden left-overs | "
        "next run |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rerun = "succeeded" if r.ok else f"**failed**: {'; '.join(r.rerun_problems) or r.rerun_rc}"
        partial = "none" if not r.partial else "**" + "; ".join(r.partial) + "**"
        lines.append(
            f"| {r.application} | {r.point} | {r.phase} | {r.published} | {partial} | {r.leftovers} | {rerun} |"
        )
    summary = [
        f"- {app}: {sum(r.ok for r in results if r.application == app)} of "
        f"{sum(r.application == app for r in results)} kill points left a folder in which the next run succeeded, "
        f"nothing partial published (an undisturbed run: {durations[app]:.1f} s)"
        for app in durations
    ]
    return "\n".join(summary + ["", *lines])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=20, help="kill points per application (at least 4)")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    parser.add_argument("--application", choices=("both", "bundle", "deploy"), default="both")
    args = parser.parse_args(argv)

    import torch
    from _report import git_commit, machine_summary, write_section

    from hkafusion_monai.data.phantom import write_phantom
    from hkafusion_monai.networks import HKAFusion

    work = Path(tempfile.mkdtemp(prefix="crash_injection."))
    try:
        phantom = write_phantom(work / "phantom", subjects=3, seed=0, size="small", png_slices=1)
        ckpt = work / "model.pt"
        torch.manual_seed(0)
        torch.save(HKAFusion(in_channels=2, out_channels=1).state_dict(), ckpt)
        apps = [
            bundle_application(work, Path(phantom), ckpt) if args.application != "deploy" else None,
            deploy_application(work, Path(phantom), ckpt) if args.application != "bundle" else None,
        ]
        no_deploy = apps[1] is None and args.application != "bundle"
        if no_deploy:
            print("Deploy: not run (the MONAI Deploy SDK is not installed: pip install -r requirements-deploy.txt)")
        results: list[KillResult] = []
        durations: dict[str, float] = {}
        for app in [a for a in apps if a is not None]:
            durations[app.name] = run_duration(app, work)
            print(f"{app.name}: an undisturbed run takes {durations[app.name]:.1f} s", flush=True)
            for point, delay in kill_points(durations[app.name], args.points, app.events):
                result = kill_and_rerun(app, work, point, delay)
                for _ in range(2):  # the run was faster than the undisturbed one (the load varies): it ended first
                    if delay is None or result.phase != "after the run":
                        break
                    delay = 0.9 * delay / durations[app.name] * result.killed_after_s  # the same part of its life
                    result = kill_and_rerun(app, work, point, delay)
                results.append(result)
                print(f"  {point:>16}: {result.phase:<28} next run {'ok' if result.ok else 'FAILED'}", flush=True)
        table = _table(results, durations)
        print(table)
        if not args.no_write:
            body = (
                f"Crash injection (`python benchmarks/crash_injection.py --points {args.points} --application "
                f"{args.application}`), commit "
                f"{git_commit()}, {time.strftime('%Y-%m-%d')}; {machine_summary()}.\n\n{table}"
                + ("\n\nDeploy was not run: the MONAI Deploy SDK was not installed." if no_deploy else "")
            )
            section = SECTION if args.application == "both" else f"{SECTION}-{args.application}"
            write_section("failure_behaviour.md", section, body, title="# Failure behaviour")
        return 0 if all(r.ok for r in results) else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
