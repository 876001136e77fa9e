"""Helpers shared by the tests (``from tests.helpers import ...``); ``conftest.py`` holds the fixtures.

- the repository's paths, and the checks that skip a test (locally) or fail it (under ``CI=true``) where an
  optional part is absent: the shared data, a command-line tool, an optional requirement;
- the small phantom data set, generated once per session;
- a randomly initialised checkpoint (no trained weights are needed), and the bundle's workflows run through
  ``python -m monai.bundle run`` in a subprocess or through ``monai.bundle.run`` in this process;
- the Deploy application: phantom study folders, its ``main`` in this process, and the checks every derived
  series must pass (UIDs and references, the MR grid by SimpleITK, dciodvfy);
- headless Chromium driven over the DevTools protocol (:class:`Browser`), to read and click a rendered page.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
import torch

from hkafusion_monai.data.phantom import write_phantom
from hkafusion_monai.networks import HKAFusion

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundle"
INFERENCE_JSON = BUNDLE / "configs" / "inference.json"
SHARED = Path(os.environ.get("HKAFUSION_SHARED", REPO.parent / "shared"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


# skip locally, fail under CI


def missing(msg: str) -> None:
    """Skip the test (locally) or fail it (under ``CI=true``), where CI provides what is missing."""
    if IN_CI:
        pytest.fail(f"CI: {msg}")
    pytest.skip(msg)


def require_path(path: Path, what: str) -> Path:
    """Return ``path`` if it exists; otherwise skip (locally) or fail (under ``CI=true``)."""
    if not path.exists():
        missing(f"{what} not found at {path} (set HKAFUSION_SHARED to the shared/ folder)")
    return path


def require_tool(name: str, package: str) -> str:
    """The path of command-line tool ``name``; skip (locally) or fail (under ``CI=true``) when it is absent."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} not found on PATH (Debian package {package}; .ci/run installs it)")
    return path


#: optional requirement files whose absence CI declares for a run (``HKAFUSION_CI_WITHOUT=requirements-deploy.txt``):
#: .ci/run runs the suite once before installing them, where their tests must skip, not fail
CI_WITHOUT = {f.strip() for f in os.environ.get("HKAFUSION_CI_WITHOUT", "").split(",") if f.strip()}


def _importable(name: str) -> bool:
    """Whether ``name`` can be imported; False also when a parent package is absent (where find_spec raises)."""
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # find_spec("a.b") imports "a" first
        return False


def require_module(name: str, requirement: str) -> None:
    """Import check for an optional dependency; skip (locally) or fail (under ``CI=true``) when absent.

    ``requirement`` starts with the requirements file that installs it (``"requirements-deploy.txt: ..."``);
    a file that CI declared absent (:data:`CI_WITHOUT`) skips under CI too."""
    if not _importable(name):
        msg = f"{name} is not installed ({requirement}; .ci/run installs it)"
        if requirement.split(":", 1)[0].strip() in CI_WITHOUT:
            pytest.skip(msg)
        missing(msg)


def stop_process(proc, timeout: float = 20) -> None:
    """Terminate a server the test started, and kill it if it does not stop within ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()


# the small phantom

SUBJECTS, PNG_SLICES, SEED = 3, 2, 0


def small_phantom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<basetemp>/phantom-small``: 3 subjects (training, validation, test), MR 64x64x32, 2 PNG pairs each."""
    out = tmp_path_factory.getbasetemp() / "phantom-small"
    if not (out / "phantom.json").is_file():
        write_phantom(out, subjects=SUBJECTS, seed=SEED, size="small", png_slices=PNG_SLICES)
    return out


# the bundle's workflows


def random_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<basetemp>/random-ckpt/model.pt``: the state dict of a seeded, randomly initialised HKAFusion."""
    path = tmp_path_factory.getbasetemp() / "random-ckpt" / "model.pt"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        torch.save(HKAFusion(in_channels=2, out_channels=1).state_dict(), path)
    return path


def bundle_env() -> dict[str, str]:
    """The environment of a bundle subprocess: CPU, one thread, no tracking server, no debug tracebacks."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("HKAFUSION_DEBUG", None)
    return env


def bundle_command(*args: str) -> list[str]:
    """``python -m monai.bundle run *args`` with this interpreter."""
    return [sys.executable, "-m", "monai.bundle", "run", *args]


def inference_args(ckpt: Path, out: Path, mri: Path | str, other: Path | str) -> list[str]:
    """The arguments of the bundle's ``inference`` workflow on one pair, without a progress bar."""
    return [
        "inference",
        "--config_file",
        str(INFERENCE_JSON),
        "--bundle_root",
        str(BUNDLE),
        "--ckpt_path",
        str(ckpt),
        "--mri",
        str(mri),
        "--other",
        str(other),
        "--output_dir",
        str(out),
        "--progress",
        "false",
    ]


def run_bundle(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python -m monai.bundle run ...`` in a subprocess (:func:`bundle_env`)."""
    return subprocess.run(
        bundle_command(*args), cwd=REPO, env=bundle_env(), capture_output=True, text=True, timeout=timeout
    )


def run_inference(ckpt: Path, out: Path, mri: Path, other: Path, *extra: str) -> subprocess.CompletedProcess:
    """The bundle's ``inference`` workflow on one pair, through :func:`run_bundle`."""
    return run_bundle(*inference_args(ckpt, out, mri, other), *extra)


def infer(ckpt: Path, out: Path, **options: object) -> None:
    """The bundle's ``inference`` workflow in this process (``monai.bundle.run``, CPU, no progress bar)."""
    from monai.bundle import run

    run(
        "inference",
        config_file=str(INFERENCE_JSON),
        bundle_root=str(BUNDLE),
        ckpt_path=str(ckpt),
        output_dir=str(out),
        progress="false",
        device="$torch.device('cpu')",
        **options,
    )


#: the training configs of the in-process tests: train.json with the smoke overlay (1 epoch of 2 steps)
SMOKE_TRAIN = [str(BUNDLE / "configs" / "train.json"), str(REPO / "configs" / "smoke.json")]


def training_args(out: Path, datalist: Path) -> list[str]:
    """The arguments of the bundle's ``training`` workflow with :func:`train`'s settings, for a subprocess."""
    return [
        "training",
        "--config_file",
        json.dumps(SMOKE_TRAIN),
        "--bundle_root",
        str(BUNDLE),
        "--output_dir",
        str(out),
        "--datalist",
        str(datalist),
        "--task",
        "mri_pet",
        "--log_figures",
        "false",
        "--batch_size",
        "2",
        "--roi_size",
        "[64, 64]",
        "--device",
        "$torch.device('cpu')",
    ]


def train(out: Path, datalist: Path, **options: object) -> None:
    """The bundle's ``training`` workflow in this process: the smoke overlay, 64x64 crops, CPU, no figures."""
    from monai.bundle import run

    run(
        "training",
        config_file=SMOKE_TRAIN,
        bundle_root=str(BUNDLE),
        output_dir=str(out),
        datalist=str(datalist),
        task="mri_pet",
        log_figures="false",
        batch_size=2,
        roi_size=[64, 64],
        device="$torch.device('cpu')",
        **options,
    )


def ending_line(call: Callable[[], object]) -> str:
    """The one line the command ends with when ``call()`` raises (the test fails with the traceback of a bug,
    which keeps its traceback)."""
    from hkafusion_monai.utils.cli import error_line

    with pytest.raises(BaseException) as info:
        call()
    line = error_line(info.value)
    assert line is not None, "".join(traceback.format_exception(info.value))[-3000:]
    return line


def last_line(result: subprocess.CompletedProcess) -> str:
    """The last non-blank line a run wrote to stderr (its one-line error)."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else ""


# the Deploy application

#: the phantom series folders of a subject, and their DICOM modality
SERIES = ("MR", "CT", "PT", "NM")
#: the bundle's version, which the application reports and writes as SoftwareVersions
VERSION = json.loads((BUNDLE / "configs" / "metadata.json").read_text())["version"]


def make_study(root: Path, subject: Path, series: list[str] | tuple[str, ...] = SERIES) -> Path:
    """A study folder holding copies of the subject's named series folders."""
    root.mkdir(parents=True)
    for name in series:
        shutil.copytree(subject / name, root / name)
    return root


def digest(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def run_main(argv: list[str]) -> int:
    """``hkafusion_monai.deploy.__main__.main(argv)`` in this process (no interpreter start-up per case),
    leaving the process's logging, exception hook and signal handlers as they were."""
    from hkafusion_monai.deploy.__main__ import main

    root = logging.getLogger()
    ours = logging.getLogger("hkafusion_monai")
    saved = (
        root.level,
        list(root.handlers),
        ours.level,
        list(ours.handlers),
        ours.propagate,
        sys.excepthook,
        signal.getsignal(signal.SIGINT),
        signal.getsignal(signal.SIGTERM),
    )
    try:
        return main(argv)
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
        ours.setLevel(saved[2])
        ours.handlers[:] = saved[3]
        ours.propagate = saved[4]
        sys.excepthook = saved[5]
        signal.signal(signal.SIGINT, saved[6])
        signal.signal(signal.SIGTERM, saved[7])
        for name in ("monai.deploy", "pynetdicom", "holoscan"):
            logging.getLogger(name).setLevel(logging.NOTSET)


def series_folders(out: Path) -> dict[str, Path]:
    """The derived series folders under ``out``, by the secondary's modality (``CT``, ``PT``, ``NM``)."""
    found = {}
    for p in sorted(out.iterdir()):
        assert not p.name.startswith("."), f"a temporary folder was left: {p}"
        modality = p.name.split("_")[1].split("+")[1]
        found[modality] = p
    return found


def check_derived_series(series_dir: Path, mr_folder: Path, other_folder: Path) -> list[pydicom.Dataset]:
    """The derived series of ``mr_folder`` + ``other_folder``: one new MR series, one instance per MR slice,
    the MR's patient, study and frame of reference, both sources referenced, read back by SimpleITK on the MR
    grid, and no ``Error`` line from ``dciodvfy``. Returns the headers."""
    files = sorted(series_dir.glob("MR_*.dcm"))
    mr_files = sorted(mr_folder.glob("*.dcm"))
    assert len(files) == len(mr_files), (series_dir, len(files), len(mr_files))
    src = pydicom.dcmread(mr_files[0], stop_before_pixels=True)
    other = pydicom.dcmread(next(other_folder.glob("*.dcm")), stop_before_pixels=True)
    out = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    assert {d.StudyInstanceUID for d in out} == {src.StudyInstanceUID}
    assert {d.PatientID for d in out} == {src.PatientID}
    assert {d.FrameOfReferenceUID for d in out} == {src.FrameOfReferenceUID}
    (uid,) = {d.SeriesInstanceUID for d in out}
    assert uid not in (src.SeriesInstanceUID, other.SeriesInstanceUID)
    assert {i.SeriesInstanceUID for i in out[0].ReferencedSeriesSequence} == {
        src.SeriesInstanceUID,
        other.SeriesInstanceUID,
    }
    assert f"MR+{other.Modality}" in out[0].SeriesDescription
    # SimpleITK (GDCM) puts it on the MR grid
    images = []
    for folder, series_uid in ((series_dir, uid), (mr_folder, src.SeriesInstanceUID)):
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder), series_uid))
        images.append(reader.Execute())
    fused, mri = images
    assert fused.GetSize() == mri.GetSize()
    np.testing.assert_allclose(fused.GetOrigin(), mri.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(fused.GetSpacing(), mri.GetSpacing(), atol=1e-4)
    np.testing.assert_allclose(fused.GetDirection(), mri.GetDirection(), atol=1e-4)
    dciodvfy = require_tool("dciodvfy", "dicom3tools")
    for path in (files[0], files[-1]):
        proc = subprocess.run([dciodvfy, str(path)], capture_output=True, text=True, timeout=60)
        report = (proc.stdout + proc.stderr).splitlines()
        assert not [line for line in report if line.startswith("Error")], f"{path}:\n" + "\n".join(report)
    return out


def copy_series(src: Path, dst: Path, drop: int = 0, **changes) -> Path:
    """Copy a series folder as a new series (new series and instance UIDs) with ``changes`` set on every
    file; ``drop`` leaves out that many slices at the start (a smaller coverage)."""
    dst.mkdir(parents=True)
    series_uid = pydicom.uid.generate_uid()
    for f in sorted(src.glob("*.dcm"))[drop:]:
        ds = pydicom.dcmread(f)
        for tag, value in changes.items():
            setattr(ds, tag, value)
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
        ds.save_as(dst / f.name)
    return dst


# Headless Chromium, driven over the DevTools protocol, for the tests that read or click a rendered web page.
#
# Chromium's ``--remote-debugging-pipe`` speaks the protocol as NUL-terminated JSON messages on the browser's file
# descriptors 3 (commands in) and 4 (replies out), so a test needs no WebSocket client, browser driver or package
# beyond Chromium itself (playwright and selenium are not among the project's requirements). Unlike
# ``--dump-dom`` with a fixed virtual-time budget, a page is read as soon as what the test waits for is shown, and
# the test can click what a user clicks; the profile folder keeps what the page stores (``localStorage``) from one
# browser to the next, as a user's browser does.

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

#: the trampoline, argv (commands fd, replies fd, command...): the replies' end is first moved off 3 if it is there,
#: so that putting the commands' end on 3 cannot overwrite it
_ONTO_3_AND_4 = (
    "import os, sys; r, w = int(sys.argv[1]), int(sys.argv[2]); w = os.dup(w) if w == 3 else w; "
    "os.dup2(r, 3); os.dup2(w, 4); [os.close(fd) for fd in {r, w} - {3, 4}]; os.execvp(sys.argv[3], sys.argv[3:])"
)


class Page:
    """A tab of a :class:`Browser`, attached (flat session) so that scripts run in it."""

    def __init__(self, browser: Browser, url: str) -> None:
        self.browser = browser
        target = browser.send("Target.createTarget", url=url)["targetId"]
        self.session = browser.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (a promise is awaited)."""
        reply = self.browser.send(
            "Runtime.evaluate", self.session, expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in reply:
            raise RuntimeError(f"{expression!r}: {reply['exceptionDetails'].get('text')}")
        return reply["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 90) -> None:
        """Wait until a JavaScript expression is truthy in the page (what the test waits for is rendered)."""
        deadline = time.monotonic() + timeout
        while not self.evaluate(f"Boolean({expression})"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expression} not true within {timeout:.0f} s at {self.url}:\n{self.text[-1500:]}")
            time.sleep(0.5)

    @property
    def url(self) -> str:
        return str(self.evaluate("location.href"))

    @property
    def text(self) -> str:
        """The text a user sees (``document.body.innerText``)."""
        return str(self.evaluate("document.body ? document.body.innerText : ''"))

    @property
    def html(self) -> str:
        return str(self.evaluate("document.documentElement.outerHTML"))


class Browser:
    """A headless Chromium on its own profile folder, driven through ``--remote-debugging-pipe``; a context
    manager that closes the browser.

    Args:
        chromium: the ``chromium`` command.
        profile: the profile folder (``--user-data-dir``); a second browser on the same folder sees what the
            first stored.
    """

    def __init__(self, chromium: str, profile: Path) -> None:
        commands_read, self._commands = os.pipe()
        self._replies, replies_write = os.pipe()
        profile.mkdir(parents=True, exist_ok=True)
        self.log = profile.parent / f"{profile.name}.chromium.log"
        with open(self.log, "ab") as log:
            # a Python trampoline moves the pipes' ends onto 3 and 4, then execs the launcher (Debian's
            # /usr/bin/chromium, a script that execs the browser); sh cannot name a descriptor above 9
            self.process = subprocess.Popen(
                [sys.executable, "-c", _ONTO_3_AND_4, str(commands_read), str(replies_write), chromium, *CHROMIUM_FLAGS]
                + [f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"],
                pass_fds=(commands_read, replies_write),
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        os.close(commands_read)
        os.close(replies_write)
        self._ids = itertools.count(1)
        self._buffer = b""

    def _gone(self, what: str) -> RuntimeError:
        """The error for a browser that stopped answering, with the end of its log."""
        tail = self.log.read_text(errors="replace").splitlines()[-15:] if self.log.is_file() else []
        return RuntimeError(f"chromium {what} (exit status {self.process.poll()}); its log ends:\n" + "\n".join(tail))

    def send(self, method: str, session: str | None = None, timeout: float = 60, **params: Any) -> dict:
        """Send one protocol command and return its result (events that arrive meanwhile are dropped)."""
        number = next(self._ids)
        message: dict[str, Any] = {"id": number, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        try:
            os.write(self._commands, json.dumps(message).encode() + b"\0")
        except BrokenPipeError:
            raise self._gone(f"closed its pipe before {method}") from None
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" not in self._buffer:
                ready, _, _ = select.select([self._replies], [], [], max(0.0, deadline - time.monotonic()))
                if not ready:
                    raise TimeoutError(f"chromium did not answer {method} within {timeout:.0f} s")
                chunk = os.read(self._replies, 1 << 16)
                if not chunk:
                    raise self._gone(f"closed its pipe during {method}")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == number:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def open(self, url: str) -> Page:
        """Open ``url`` in a new tab."""
        return Page(self, url)

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (OSError, RuntimeError, TimeoutError):
            pass  # already gone
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._commands)
        os.close(self._replies)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
