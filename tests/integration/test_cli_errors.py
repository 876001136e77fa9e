"""The bundle command line (``python -m monai.bundle run ...``) at its entry point:
every error a user can cause ends with one ``error: <file or option>: <problem>`` line and a non-zero exit,
Ctrl-C and SIGTERM stop a run from its first second, and a datalist run fuses every pair it can.

Each error case runs the bundle workflow in this process (``monai.bundle.run``, as the command does, without
an interpreter start-up per case) and checks the line :func:`hkafusion_monai.utils.cli.error_line` ends the
command with; a few cases run the real command, to check that it is the last line of stderr, with no
traceback (docs/failure_behaviour.md).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sysconfig
import time
from pathlib import Path

import mlflow
import pytest
import torch
from monai.bundle import run

from hkafusion_monai.handlers import default_tracking_uri
from hkafusion_monai.io import output_name
from hkafusion_monai.utils.cli import install_at_startup, runs_module
from tests.helpers import (
    BUNDLE,
    REPO,
    SMOKE_TRAIN,
    bundle_command,
    bundle_env,
    ending_line,
    infer,
    inference_args,
    random_checkpoint,
    train,
    training_args,
)

TRAIN = SMOKE_TRAIN


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_checkpoint(tmp_path_factory)


def _items(phantom: Path, name: str, split: str) -> list[dict]:
    """A phantom datalist's split with absolute paths (to write into a new datalist anywhere)."""
    spec = json.loads((phantom / "datalists" / name).read_text())
    base = (phantom / "datalists" / spec.get("base_dir", ".")).resolve()
    return [{**it, "mri": str(base / it["mri"]), "other": str(base / it["other"])} for it in spec[split]]


def _datalist(path: Path, **splits: list[dict]) -> Path:
    path.write_text(json.dumps({"training": [], "validation": [], "test": [], **splits}))
    return path


def _pair(phantom: Path) -> tuple[str, str]:
    item = _items(phantom, "png_pet.json", "test")[0]
    return item["mri"], item["other"]


_infer = infer


_train = train
_line = ending_line


# ----------------------------------------------------------------------------------- inference: one line each


def test_inference_option_and_input_errors_are_one_line(ckpt: Path, phantom: Path, tmp_path: Path, one_thread) -> None:
    mri, other = _pair(phantom)
    nifti = phantom / "nifti" / "sub-002"
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    os.symlink(tmp_path / "loop_b", tmp_path / "loop_a")
    os.symlink(tmp_path / "loop_a", tmp_path / "loop_b")
    cases = {
        "--output_dir a file": (
            dict(mri=mri, other=other, output_dir=a_file),
            f"error: --output_dir {a_file}: a file, not a folder; name a folder for the outputs",
        ),
        "--overwrite maybe": (
            dict(mri=mri, other=other, overwrite="maybe"),
            "error: --overwrite: expected a boolean (true/false, yes/no, 1/0), got 'maybe'",
        ),
        "--mri a link loop": (
            dict(mri=tmp_path / "loop_a", other=other),
            f"error: {tmp_path / 'loop_a'}: --mri input cannot be read (a loop of symbolic links)",
        ),
        "--mri missing": (
            dict(mri=tmp_path / "absent.png", other=other),
            f"error: {tmp_path / 'absent.png'}: missing --mri input (no such file or folder)",
        ),
        "a PNG MRI with a NIfTI PET": (
            dict(mri=mri, other=nifti / "pet.nii.gz"),
            f"error: {mri} and {nifti / 'pet.nii.gz'}: a pair is two 2-D images or two volumes, not one of each",
        ),
        "NIfTI inputs with --output_format dicom": (
            dict(mri=nifti / "mri.nii.gz", other=nifti / "pet.nii.gz", output_format="dicom"),
            f"error: {nifti / 'mri.nii.gz'}, {nifti / 'pet.nii.gz'}: not a DICOM series folder; --output_format "
            "dicom needs DICOM series folders as inputs (--output_format auto writes PNG or NIfTI)",
        ),
        "--datalist missing": (
            dict(datalist=tmp_path / "absent.json"),
            f"error: {tmp_path / 'absent.json'}: missing --datalist input (no such file or folder)",
        ),
    }
    for case, (options, expected) in cases.items():
        out = options.pop("output_dir", tmp_path / "out")
        assert _line(lambda out=out, options=options: _infer(ckpt, out, **options)) == expected, case
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*fused*"))


def test_inference_datalist_errors_are_one_line(ckpt: Path, phantom: Path, tmp_path: Path, one_thread) -> None:
    test = _items(phantom, "png_pet.json", "test")
    empty = _datalist(tmp_path / "empty.json", training=test)
    line = _line(lambda: _infer(ckpt, tmp_path / "out", datalist=empty))
    assert line == f"error: --datalist {empty}: the 'test' list is empty; nothing to fuse (see --split)"
    shared = _datalist(tmp_path / "shared.json", test=[{**test[0], "output": "x.png"}, {**test[1], "output": "x.png"}])
    line = _line(lambda: _infer(ckpt, tmp_path / "out", datalist=shared))
    assert line == (
        f"error: {tmp_path / 'out' / 'x.png'}: pairs 0 and 1 ({test[0]['mri']}, {test[1]['mri']}) would both write it; "
        "give the datalist items distinct 'output' names"
    )


def test_an_empty_test_split_is_one_line_for_evaluation(ckpt: Path, phantom: Path, tmp_path: Path, one_thread) -> None:
    empty = _datalist(tmp_path / "empty.json", training=_items(phantom, "png_pet.json", "training"))
    line = _line(
        lambda: run(
            "evaluating",
            config_file=[*TRAIN[:1], str(BUNDLE / "configs" / "evaluate.json")],
            bundle_root=str(BUNDLE),
            output_dir=str(tmp_path / "out"),
            datalist=str(empty),
            ckpt_path=str(ckpt),
            task="mri_pet",
            device="$torch.device('cpu')",
        )
    )
    assert line.startswith("error: the test data yield no batch: 0 pair(s) with batch_size"), line


def test_existing_outputs_are_one_line(ckpt: Path, phantom: Path, tmp_path: Path, one_thread) -> None:
    """The 2-D path, and the DICOM path into an existing derived series: kept, one line naming the output and
    both ways on."""
    mri, other = _pair(phantom)
    png = tmp_path / "out" / f"{Path(mri).stem}_fused.png"
    png.parent.mkdir()
    png.write_bytes(b"keep me")
    assert _line(lambda: _infer(ckpt, tmp_path / "out", mri=mri, other=other)) == (
        f"error: {png}: 1 output(s) exist and are kept; pass --overwrite true to replace them, or --skip_existing "
        "true to fuse only the pairs without one"
    )
    series = tmp_path / "dicom" / output_name(phantom / "dicom/sub-002/MR", "dicom")
    (series / "MR_0001.dcm").parent.mkdir(parents=True)
    (series / "MR_0001.dcm").write_bytes(b"an earlier series")
    line = _line(
        lambda: _infer(
            ckpt,
            tmp_path / "dicom",
            mri=phantom / "dicom/sub-002/MR",
            other=phantom / "dicom/sub-002/PT",
            output_format="dicom",
        )
    )
    assert line.startswith(f"error: {series}: 1 output(s) exist and are kept; pass --overwrite true"), line
    assert png.read_bytes() == b"keep me" and (series / "MR_0001.dcm").read_bytes() == b"an earlier series"


# ----------------------------------------------------------------------------------- training: one line each


def test_training_input_errors_are_one_line(phantom: Path, tmp_path: Path, one_thread) -> None:
    """A missing input is named before any is loaded, with a cache (cache_rate 1) or not; a missing datalist
    and an --output_dir that is a file name the option."""
    training = _items(phantom, "png_pet.json", "training")
    gone = tmp_path / "gone.png"
    datalist = _datalist(
        tmp_path / "missing.json",
        training=[{**training[0], "mri": str(gone)}, *training[1:]],
        validation=_items(phantom, "png_pet.json", "validation"),
    )
    expected = f"error: {datalist}: 1 input(s) of the 'training' list are missing: item 0 'mri' {gone}"
    for cache_rate in (0.0, 1.0):
        assert _line(lambda c=cache_rate: _train(tmp_path / "run", datalist, cache_rate=c)) == expected
    assert _line(lambda: _train(tmp_path / "run", tmp_path / "absent.json")) == (
        f"error: {tmp_path / 'absent.json'}: missing --datalist input (no such file or folder)"
    )
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    assert _line(lambda: _train(a_file, phantom / "datalists" / "png_pet.json")) == (
        f"error: --output_dir {a_file / 'checkpoints'}: {a_file} is a file, not a folder; name a folder for the outputs"
    )


def test_resume_reads_through_the_safe_reader(phantom: Path, tmp_path: Path, one_thread) -> None:
    """--resume with a pickle holding code, a text file or another network's file: one line naming the file
    (utils.weights.read_checkpoint), the code never run."""
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil, text, foreign = tmp_path / "evil.pt", tmp_path / "text.pt", tmp_path / "foreign.pt"
    torch.save({"model": Evil()}, evil)
    text.write_text("not a checkpoint")
    torch.save({"model": {"w": torch.zeros(1)}}, foreign)
    datalist = phantom / "datalists" / "png_pet.json"
    line = _line(lambda: _train(tmp_path / "run", datalist, resume=str(evil)))
    assert line.startswith(f"error: {evil}: holds objects other than weights, refused for safety ("), line
    assert "weights_only" not in line and not marker.exists()
    assert _line(lambda: _train(tmp_path / "run", datalist, resume=str(text))) == (
        f"error: {text}: not a PyTorch checkpoint (neither a zip archive nor a pickle)"
    )
    assert _line(lambda: _train(tmp_path / "run", datalist, resume=str(foreign))).startswith(
        f"error: {foreign}: not a training state of this run"
    )


# ----------------------------------------------------------------------------------- the real command


def test_the_command_ends_with_the_one_line(phantom: Path, tmp_path: Path) -> None:
    """--resume with a hostile checkpoint ends in one line naming the file (it once ended in 83 lines naming no
    file)."""
    evil = tmp_path / "evil.pt"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))

    torch.save({"model": Evil()}, evil)
    cmd = bundle_command(
        *training_args(tmp_path / "run", phantom / "datalists" / "png_pet.json"), "--resume", str(evil)
    )
    result = subprocess.run(cmd, cwd=REPO, env=bundle_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith(f"error: {evil}: holds objects other than weights, refused for safety"), lines[-5:]
    assert "Traceback" not in result.stderr and "weights_only" not in result.stderr
    assert not (tmp_path / "ran").exists()


def test_debug_keeps_the_traceback(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from hkafusion_monai.utils.cli import _excepthook
    from hkafusion_monai.utils.errors import OptionError

    try:
        try:
            raise OptionError("--overwrite: expected a boolean (true/false, yes/no, 1/0), got 'maybe'")
        except OptionError as e:
            raise RuntimeError("Failed to evaluate ConfigExpression: ...") from e
    except RuntimeError as e:
        error = e
    monkeypatch.delenv("HKAFUSION_DEBUG", raising=False)
    _excepthook(type(error), error, error.__traceback__)
    quiet = capsys.readouterr().err
    monkeypatch.setenv("HKAFUSION_DEBUG", "1")
    _excepthook(type(error), error, error.__traceback__)
    loud = capsys.readouterr().err
    assert "Traceback" not in quiet and quiet.strip().splitlines()[-1].startswith("error: --overwrite:")
    assert "Traceback" in loud and "ConfigExpression" in loud
    assert loud.strip().splitlines()[-1] == quiet.strip().splitlines()[-1]


# ----------------------------------------------------------------------------------- signals from the first second


def test_the_start_up_hook_is_for_the_bundle_command_only() -> None:
    assert runs_module(["python", "-m", "monai.bundle", "run", "training"])
    assert runs_module(["python", "-X", "importtime", "-u", "-m", "monai.bundle"])
    assert not runs_module(["python", "-m", "pytest", "-m", "monai.bundle"])
    assert not runs_module(["python", "-c", "import monai.bundle"])
    assert not runs_module(["python", "script.py", "-m", "monai.bundle"])
    assert not install_at_startup(["python", "-m", "pytest"])
    hook = Path(sysconfig.get_path("purelib")) / "hkafusion_monai-cli.pth"  # setup.py installs it
    assert hook.is_file(), "reinstall the package (pip install -e .): its start-up hook is missing"
    text = hook.read_text()
    assert text.startswith("import ") and len(text.strip().splitlines()) == 1  # site runs one "import" line


@pytest.mark.parametrize("signum, delay", [(signal.SIGINT, 1.0), (signal.SIGINT, 3.0), (signal.SIGTERM, 1.0)])
def test_a_signal_in_the_first_seconds_stops_the_run(
    ckpt: Path, phantom: Path, tmp_path: Path, signum: int, delay: float
) -> None:
    """Started as a shell script's background job starts it (SIGINT ignored), a run ignored a Ctrl-C
    until its config was read (6-8 s) and completed with exit 0. The start-up hook installs the handlers as the
    interpreter starts (``import monai`` takes seconds): the run stops, non-zero, with nothing written."""
    mri, other = _pair(phantom)
    out = tmp_path / "out"
    cmd = bundle_command(*inference_args(ckpt, out, mri, other))
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        env=bundle_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),  # as `cmd &` in a script
    )
    time.sleep(delay)
    start = time.monotonic()
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0, err[-2000:]
    assert time.monotonic() - start < 30
    if signum == signal.SIGINT:
        assert err.strip().splitlines()[-1] == "interrupted (Ctrl-C)", err[-2000:]
    else:
        assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "Traceback" not in err
    assert not out.exists() or not list(out.glob("*fused*"))


# ----------------------------------------------------------------------------------- batch runs that finish


def test_a_datalist_run_fuses_every_pair_it_can_and_continues(ckpt: Path, phantom: Path, tmp_path: Path) -> None:
    """A corrupt item and a missing file do not stop the run; the last line names both (item and
    file), the run exits non-zero, its MLflow run ends FAILED; after the fix, --skip_existing true fuses only
    those two."""
    items = _items(phantom, "png_pet.json", "training") + _items(phantom, "png_pet.json", "test")
    bad, gone = tmp_path / "bad.png", tmp_path / "gone.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    items[1] = {**items[1], "mri": str(bad)}
    items[2] = {**items[2], "other": str(gone)}
    datalist = _datalist(tmp_path / "batch.json", test=items)
    out = tmp_path / "out"
    line = _line(lambda: _infer(ckpt, out, datalist=datalist))
    assert line.startswith("error: 2 of 4 pair(s) could not be fused, the other 2 were: item 1 ("), line
    assert f"item 1 ({bad}, {items[1]['other']}): {bad}: " in line and f"item 2 ({items[2]['mri']}, {gone}): " in line
    assert line.endswith("rerun with --skip_existing true to fuse only the pairs without an output")
    written = {p.name: p.stat().st_mtime_ns for p in out.glob("*_fused.png")}
    assert sorted(written) == sorted(f"{Path(items[i]['mri']).stem}_fused.png" for i in (0, 3))
    client = mlflow.MlflowClient(default_tracking_uri())
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert [r.info.status for r in runs] == ["FAILED"] and runs[0].data.metrics["pairs_failed"] == 2

    shutil.copy(items[0]["mri"], bad)
    shutil.copy(items[0]["other"], gone)
    assert _line(lambda: _infer(ckpt, out, datalist=datalist)).startswith("error: ")  # kept: neither option
    assert _line(lambda: _infer(ckpt, out, datalist=datalist, overwrite="true", skip_existing="true")).startswith(
        "error: --overwrite and --skip_existing: give one"
    )
    _infer(ckpt, out, datalist=datalist, skip_existing="true")
    after = {p.name: p.stat().st_mtime_ns for p in out.glob("*_fused.png")}
    assert len(after) == 4 and all(after[name] == mtime for name, mtime in written.items())  # not redone


@pytest.mark.parametrize("refused", [True, False])
def test_ignite_says_nothing_more_about_a_refused_input(refused: bool, caplog: pytest.LogCaptureFixture) -> None:
    """An engine stopped by a refused input (an error with its one line) logs none of ignite's "run is
    terminating due to exception" ERROR lines, which name a transform object, not the file; a bug keeps them."""
    from ignite.engine import Engine

    from hkafusion_monai.utils import FusionInputError
    from hkafusion_monai.utils.cli import QuietRefusedInput

    def step(engine: Engine, batch: object) -> None:
        try:
            raise FusionInputError("bad.png: not an image file") if refused else KeyError("a bug")
        except Exception as e:
            raise RuntimeError("applying transform <FusionPreprocessd object at 0x7f00>") from e

    engine = Engine(step)
    QuietRefusedInput.attach(engine)
    QuietRefusedInput.attach(engine)  # once only
    assert sum(isinstance(f, QuietRefusedInput) for f in engine.logger.filters) == 1
    with caplog.at_level("ERROR"), pytest.raises(RuntimeError):
        engine.run([0])
    terminating = [r for r in caplog.records if "terminating due to exception" in r.getMessage()]
    assert len(terminating) == (0 if refused else 2), [r.getMessage() for r in caplog.records]
