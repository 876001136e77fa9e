"""The MONAI Deploy application at its entry point (``python -m hkafusion_monai.deploy``): whole phantom
studies, the series choice, every refusal, the command line and log, Ctrl-C, and symbolic-link loops.

Most cases call the entry point's ``main()`` in this process (no interpreter start-up per case); the MAP
paths, the CPU log and Ctrl-C run it as a process. Needs requirements-deploy.txt (monai-deploy-app-sdk):
skipped without it locally, failed under CI. Sending to a PACS: ``test_pacs.py``; the installed wheel:
``test_installed.py``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch

from hkafusion_monai.inference import load_fuser
from hkafusion_monai.transforms.volume import LoadFusionVolumed
from tests.helpers import (
    REPO,
    VERSION,
    check_derived_series,
    copy_series,
    digest,
    make_study,
    random_checkpoint,
    require_module,
    run_main,
    series_folders,
)

MODALITY = {"CT": "CT", "PT": "PET", "NM": "SPECT"}
NOISE = re.compile(r"cuda|nvimgcodec|nvimagecodec|stack size|gxf|\[info\]|\[warning\]", re.IGNORECASE)


@pytest.fixture(scope="module", autouse=True)
def _sdk():
    require_module("monai.deploy.core", "requirements-deploy.txt: monai-deploy-app-sdk")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return random_checkpoint(tmp_path_factory)


def _load(folder: Path) -> torch.Tensor:
    return LoadFusionVolumed(["v"])({"v": str(folder)})["v"]


def _deploy_process(env: dict[str, str], *args: str) -> subprocess.Popen:
    environ = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    cmd = [sys.executable, "-m", "hkafusion_monai.deploy", *args]
    return subprocess.Popen(cmd, cwd=REPO, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_study_with_ct_pet_and_spect_gives_one_series_per_pair(phantom, tmp_path, checkpoint, capfd):
    """MR + CT + PT + NM: three derived series, each on the MR grid (SimpleITK), valid (dciodvfy), with the
    pixels of ``load_fuser(...).fuse_volumes`` on the same series; the inputs unchanged; the log one line per
    selected and per written series."""
    study = make_study(tmp_path / "in", phantom / "dicom" / "sub-001")
    before = digest(study)
    out = tmp_path / "out"
    code = run_main(["-i", str(study), "-o", str(out), "-m", str(checkpoint)])
    captured = capfd.readouterr()
    assert code == 0, captured.err[-3000:]
    assert digest(study) == before, "an input was modified"
    folders = series_folders(out)
    assert sorted(folders) == ["CT", "NM", "PT"]
    fuser = load_fuser(weights=checkpoint, task="mri_pet", device="cpu")
    mri = _load(study / "MR")
    numbers = set()
    for modality, folder in folders.items():
        headers = check_derived_series(folder, study / "MR", study / modality)
        numbers.add(int(headers[0].SeriesNumber))
        fused = _load(folder)
        np.testing.assert_allclose(fused.affine.numpy(), mri.affine.numpy(), atol=1e-4)
        expected = fuser.fuse_volumes(mri, _load(study / modality), modality=MODALITY[modality]).as_tensor()
        got = fused.as_tensor().float() / 65535.0
        assert float((got - expected).abs().max()) <= 1.0 / 65535.0 + 1e-6, modality
        assert float(expected.max() - expected.min()) > 0.01
    assert len(numbers) == 3  # one series number per derived series
    lines = captured.err.strip().splitlines()
    assert len([line for line in lines if " INFO selected " in line]) == 4, captured.err
    assert len([line for line in lines if " INFO wrote " in line]) == 3, captured.err
    assert "3 derived series written" in captured.out and f"HKAFusion {VERSION}" in captured.out


def test_map_paths_and_a_quiet_cpu_log(phantom, tmp_path, checkpoint):
    """As a MAP runs it (``HOLOSCAN_*_PATH``, the model as a folder): no CUDA, nvImageCodec, stack-size or
    Holoscan lines, only the application's own."""
    study = make_study(tmp_path / "in", phantom / "dicom" / "sub-000", ["MR", "PT"])
    models = tmp_path / "models"
    models.mkdir()
    os.symlink(checkpoint, models / "model.pt")
    out = tmp_path / "out"
    env = {"HOLOSCAN_INPUT_PATH": str(study), "HOLOSCAN_OUTPUT_PATH": str(out), "HOLOSCAN_MODEL_PATH": str(models)}
    proc = _deploy_process({**env, "CUDA_VISIBLE_DEVICES": ""})
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    assert not NOISE.search(stderr + stdout), stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 5, stderr  # the model, 2 selected series, the PET's hot-spot guard, 1 written series
    assert "on cpu" in lines[0] and "selected MR #1" in lines[1] and "selected PT #3" in lines[2]
    assert "hot-spot guard" in lines[3] and "wrote HKAFusion MR+PT" in lines[4]
    assert stdout.startswith(f"HKAFusion {VERSION}: 1 derived series written")
    check_derived_series(series_folders(out)["PT"], study / "MR", study / "PT")


def test_several_mr_series_choose_the_same_frame_and_largest_coverage(phantom, tmp_path, checkpoint, capfd):
    """Two MR series: a PET in the first one's frame of reference is fused with it, not with a re-scan of
    smaller coverage in its own frame (registered), and the log says which and why."""
    subject = phantom / "dicom" / "sub-000"
    study = make_study(tmp_path / "in", subject, ["MR", "PT"])
    copy_series(
        subject / "MR",
        study / "MR2",
        drop=8,
        SeriesNumber=5,
        SeriesDescription="T1 rescan",
        FrameOfReferenceUID=pydicom.uid.generate_uid(),
    )
    out = tmp_path / "out"
    assert run_main(["-i", str(study), "-o", str(out), "-m", str(checkpoint)]) == 0
    err = capfd.readouterr().err
    assert re.search(r"selected PT #3 .*fused with MR #1 \(same frame of reference, largest coverage of 2 MR", err), err
    (folder,) = series_folders(out).values()
    check_derived_series(folder, study / "MR", study / "PT")


def test_an_enhanced_multiframe_mr_is_fused_frame_by_frame(phantom, tmp_path, checkpoint):
    """A (legacy converted) enhanced MR image as the MR: one derived instance per frame, on its grid, each
    referencing its frame; the same pixels as the single-frame MR series gives."""
    import highdicom

    subject = phantom / "dicom" / "sub-000"
    study = make_study(tmp_path / "in", subject, ["PT"])
    frames = [pydicom.dcmread(f) for f in sorted((subject / "MR").glob("*.dcm"))]
    (study / "MR").mkdir()
    highdicom.legacy.LegacyConvertedEnhancedMRImage(
        frames,
        series_instance_uid=highdicom.UID(),
        series_number=10,
        sop_instance_uid=highdicom.UID(),
        instance_number=1,
    ).save_as(study / "MR" / "E0001.dcm")
    out = tmp_path / "out"
    assert run_main(["-i", str(study), "-o", str(out), "-m", str(checkpoint)]) == 0
    (folder,) = series_folders(out).values()
    files = sorted(folder.glob("MR_*.dcm"))
    assert len(files) == len(frames)
    first = pydicom.dcmread(files[0], stop_before_pixels=True)
    assert first.SourceImageSequence[0].ReferencedFrameNumber >= 1
    fused = _load(folder)
    np.testing.assert_allclose(fused.affine.numpy(), _load(study / "MR").affine.numpy(), atol=1e-4)
    single = make_study(tmp_path / "single", subject, ["MR", "PT"])
    assert run_main(["-i", str(single), "-o", str(tmp_path / "out-single"), "-m", str(checkpoint)]) == 0
    (reference,) = series_folders(tmp_path / "out-single").values()
    torch.testing.assert_close(fused.as_tensor(), _load(reference).as_tensor(), atol=1.0, rtol=0)


def test_localizers_and_nm_projections_are_left_out_and_said(phantom, tmp_path, checkpoint, capfd):
    """A CT scout and the raw SPECT projections beside the reconstruction: skipped with one line each."""
    subject = phantom / "dicom" / "sub-000"
    study = make_study(tmp_path / "in", subject, ["MR", "CT", "NM"])
    copy_series(
        subject / "CT", study / "SCOUT", drop=26, SeriesNumber=7, ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"]
    )
    copy_series(subject / "NM", study / "NM-raw", SeriesNumber=8, ImageType=["ORIGINAL", "PRIMARY", "TOMO", "EMISSION"])
    out = tmp_path / "out"
    assert run_main(["-i", str(study), "-o", str(out), "-m", str(checkpoint)]) == 0
    err = capfd.readouterr().err
    skipped = [line for line in err.splitlines() if " WARNING skipped " in line]
    assert len(skipped) == 2 and "CT #7" in skipped[0] + skipped[1] and "NM #8" in skipped[0] + skipped[1], err
    assert sorted(series_folders(out)) == ["CT", "NM"]


def test_rules_narrow_the_pairs(phantom, tmp_path, checkpoint, monkeypatch):
    """Rules naming the modality leave one pair; its colour series is written beside it."""
    from hkafusion_monai.deploy.rules import DEFAULT_RULES

    study = make_study(tmp_path / "in", phantom / "dicom" / "sub-000", ["MR", "CT", "PT", "NM"])
    rules = json.loads(DEFAULT_RULES.read_text())
    rules["selections"][1]["conditions"]["Modality"] = "(?i)^PT$"
    rules["fusion"]["colour_series"] = True
    rules_file = tmp_path / "rules.json"
    rules_file.write_text(json.dumps(rules))
    out = tmp_path / "out"
    assert run_main(["-i", str(study), "-o", str(out), "-m", str(checkpoint), "--rules", str(rules_file)]) == 0
    (series_dir,) = list(out.iterdir())
    ds = pydicom.dcmread(sorted(series_dir.glob("MR_*.dcm"))[0], stop_before_pixels=True)
    assert "MR+PT" in ds.SeriesDescription
    sc = sorted(series_dir.glob("SC_*.dcm"))
    assert len(sc) == len(list(series_dir.glob("MR_*.dcm")))
    assert pydicom.dcmread(sc[0]).PhotometricInterpretation == "RGB"
    # an existing series is kept unless --overwrite
    assert run_main(["-i", str(study), "-o", str(out), "-m", str(checkpoint), "--rules", str(rules_file)]) == 1
    assert list(out.iterdir()) == [series_dir]


def _shift(folder: Path, mm: float) -> None:
    for f in folder.iterdir():
        ds = pydicom.dcmread(f)
        ds.ImagePositionPatient = [float(v) + mm for v in ds.ImagePositionPatient]
        ds.save_as(f)


def _drop_position(folder: Path) -> None:
    f = sorted(folder.iterdir())[0]
    ds = pydicom.dcmread(f)
    del ds.ImagePositionPatient
    ds.save_as(f)


def _set(folder: Path, **changes) -> None:
    for f in folder.iterdir():
        ds = pydicom.dcmread(f)
        for tag, value in changes.items():
            setattr(ds, tag, value)
        ds.save_as(f)


@pytest.mark.parametrize(
    "series, edit, message",
    [
        (["CT"], None, "no MR series matches"),
        (["MR"], None, r"no CT, PET \(PT\) or SPECT \(NM\) series matches"),
        (["MR", "PT"], "shift", "do not overlap"),
        (["MR", "PT"], "no-position", "no valid ImagePositionPatient"),
        (
            ["MR", "CT", "PT"],
            "foreign-patient",
            r"2 different patients.*allow_patient_mismatch.*'OTHER-PATIENT': PT #3",
        ),
        (["MR", "PT"], "never-register", r"different frames of reference .* 'never'"),
    ],
    ids=["no-mr", "no-secondary", "no-overlap", "slice-without-position", "foreign-patient", "never-registered"],
)
def test_refusals_name_the_series_and_write_nothing(phantom, tmp_path, checkpoint, capfd, series, edit, message):
    study = make_study(tmp_path / "in", phantom / "dicom" / "sub-000", series)
    argv = []
    if edit == "shift":
        _shift(study / "PT", 2000.0)
    elif edit == "no-position":  # the SDK would drop this slice and fuse a shorter series
        _drop_position(study / "MR")
    elif edit == "foreign-patient":  # a foreign patient's PET filed in the MR's study
        _set(study / "PT", PatientID="OTHER-PATIENT", PatientName="Other^Patient")
    elif edit == "never-register":
        _set(study / "PT", FrameOfReferenceUID=pydicom.uid.generate_uid())
        rules = json.loads((REPO / "hkafusion_monai" / "deploy" / "selection_rules.json").read_text())
        rules["fusion"]["registration"] = "never"
        (tmp_path / "rules.json").write_text(json.dumps(rules))
        argv = ["--rules", str(tmp_path / "rules.json")]
    out = tmp_path / "out"
    code = run_main(["-i", str(study), "-o", str(out), "-m", str(checkpoint), *argv])
    stderr = capfd.readouterr().err
    assert code == 1, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0] == stderr.strip().splitlines()[-1], stderr[-3000:]
    assert re.search(message, errors[0]), errors[0]
    assert "Traceback" not in stderr
    assert not out.exists() or not any(out.iterdir()), "something was written"


def test_a_foreign_patient_is_fused_only_with_the_documented_override(phantom, tmp_path, checkpoint):
    study = make_study(tmp_path / "in", phantom / "dicom" / "sub-000", ["MR", "PT"])
    _set(study / "PT", PatientID="OTHER-PATIENT")
    rules = json.loads((REPO / "hkafusion_monai" / "deploy" / "selection_rules.json").read_text())
    rules["fusion"]["allow_patient_mismatch"] = True
    (tmp_path / "rules.json").write_text(json.dumps(rules))
    out = tmp_path / "out"
    assert (
        run_main(["-i", str(study), "-o", str(out), "-m", str(checkpoint), "--rules", str(tmp_path / "rules.json")])
        == 0
    )
    (folder,) = series_folders(out).values()
    assert pydicom.dcmread(next(folder.glob("MR_*.dcm")), stop_before_pixels=True).PatientID != "OTHER-PATIENT"


@pytest.mark.parametrize(
    "name, content", [("model.pt", b"not a checkpoint\n"), ("model.ts", b""), ("model.pt", "truncated")]
)
def test_a_bad_model_is_one_line_naming_the_file(phantom, tmp_path, checkpoint, capfd, name, content):
    """A text, empty or truncated ``-m`` file: one line naming it, never torch's advice to load
    it unsafely, exit 1."""
    study = make_study(tmp_path / "in", phantom / "dicom" / "sub-000", ["MR", "PT"])
    model = tmp_path / name
    model.write_bytes(checkpoint.read_bytes()[:20000] if content == "truncated" else content)
    out = tmp_path / "out"
    code = run_main(["-i", str(study), "-o", str(out), "-m", str(model)])
    stderr = capfd.readouterr().err
    assert code == 1, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and str(model) in last, stderr[-3000:]
    assert "will likely succeed" not in stderr and "weights_only=False" not in stderr and "Traceback" not in stderr
    assert not out.exists() or not any(out.iterdir())


def test_a_symbolic_link_loop_is_skipped_with_a_warning(phantom, tmp_path, checkpoint, capfd):
    """Links back up the study folder (and a second path to a series) are read once, and said."""
    study = make_study(tmp_path / "in", phantom / "dicom" / "sub-000", ["MR", "PT"])
    os.symlink("..", study / "MR" / "loop")
    os.symlink(study / "PT", study / "PT-again")
    out = tmp_path / "out"
    code = run_main(["-i", str(study), "-o", str(out), "-m", str(checkpoint)])
    err = capfd.readouterr().err
    assert code == 0, err[-3000:]
    warnings = [line for line in err.splitlines() if " WARNING skipped " in line]
    assert len(warnings) == 2 and all("already read" in w for w in warnings), err
    assert any(str(study / "MR" / "loop") in w for w in warnings)
    (folder,) = series_folders(out).values()
    check_derived_series(folder, study / "MR", study / "PT")


def test_a_link_out_of_the_study_folder_is_not_followed(phantom, tmp_path, checkpoint, capfd):
    """A link inside the study folder to a sibling folder (here the same patient's CT, which would
    be fused) is skipped with one warning; only the study's own series are read."""
    study = make_study(tmp_path / "in", phantom / "dicom" / "sub-000", ["MR", "PT"])
    sibling = make_study(tmp_path / "sibling", phantom / "dicom" / "sub-000", ["CT"])
    os.symlink(sibling, study / "more")
    out = tmp_path / "out"
    code = run_main(["-i", str(study), "-o", str(out), "-m", str(checkpoint)])
    err = capfd.readouterr().err
    assert code == 0, err[-3000:]
    warnings = [line for line in err.splitlines() if " WARNING skipped " in line]
    assert len(warnings) == 1 and str(study / "more") in warnings[0] and "outside the input folder" in warnings[0]
    assert list(series_folders(out)) == ["PT"]


def test_an_output_that_is_a_file_is_a_usage_error(phantom, tmp_path, checkpoint, capfd):
    """-o naming an existing file (which once said "interrupted") is a usage error (exit 2) naming -o."""
    study = make_study(tmp_path / "in", phantom / "dicom" / "sub-000", ["MR", "PT"])
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    assert run_main(["-i", str(study), "-o", str(a_file), "-m", str(checkpoint)]) == 2
    err = capfd.readouterr().err
    assert err.strip().splitlines()[-1] == (
        f"error: -o {a_file}: exists and is not a folder (-o names the folder the derived series go into)"
    )
    assert "interrupted" not in err and a_file.read_text() == "not a folder"


@pytest.mark.parametrize("delay", [1.0, 3.0])
def test_ctrl_c_in_the_first_seconds_stops_the_application(phantom, tmp_path, checkpoint, delay):
    """A Ctrl-C while the SDK and Holoscan load (the first seconds) was ignored and the run
    completed; the handlers are now installed first thing: exit 130, nothing written."""
    study = make_study(tmp_path / "in", phantom / "dicom" / "sub-000", ["MR", "PT"])
    out = tmp_path / "out"
    proc = _deploy_process({}, "-i", str(study), "-o", str(out), "-m", str(checkpoint))
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-3000:]
    assert err.strip().splitlines()[-1].startswith("interrupted"), err[-3000:]
    assert "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


def test_help_lists_the_application_options_first(capsys):
    from hkafusion_monai.deploy.__main__ import main

    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for option in ("-i FOLDER", "-o FOLDER", "-m MODEL", "--rules FILE", "--send AE@HOST:PORT", "--calling-ae AE"):
        assert option in text, option
    assert text.index("--send") < text.index("MONAI Deploy SDK options") < text.index("--workdir")
    assert not NOISE.search(text)


def test_usage_errors(tmp_path, capfd):
    assert run_main(["--no-such-option"]) == 2
    assert run_main(["-i", str(tmp_path / "missing"), "-o", str(tmp_path / "out")]) == 1
    err = capfd.readouterr().err
    assert "unknown option --no-such-option" in err and f"-i {tmp_path / 'missing'}: not a folder" in err


def _silent_dicom_port(held: list) -> tuple[socket.socket, int]:
    """A TCP port that accepts connections and never answers (a hung DICOM destination); the accepted
    connections are kept open in ``held``."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    threading.Thread(target=lambda: held.append(server.accept()), daemon=True).start()
    return server, server.getsockname()[1]


def test_ctrl_c_stops_the_application(phantom, tmp_path, checkpoint):
    """Ctrl-C ends a run promptly, even while the graph runs (here: waiting on a DICOM
    destination that never answers), with exit status 130 and no temporary folder left."""
    study = make_study(tmp_path / "in", phantom / "dicom" / "sub-000", ["MR", "PT"])
    out = tmp_path / "out"
    held: list = []
    server, port = _silent_dicom_port(held)
    try:
        proc = _deploy_process(
            {}, "-i", str(study), "-o", str(out), "-m", str(checkpoint), "--send", f"SILENT@127.0.0.1:{port}"
        )
        lines = []
        for line in proc.stderr:  # wait until the series is written: the application then waits on the send
            lines.append(line)
            if " INFO wrote " in line:
                break
        assert proc.poll() is None, "".join(lines) + proc.stderr.read()
        time.sleep(0.5)
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=20)
        assert time.monotonic() - start < 10
    finally:
        for connection, _ in held:
            connection.close()
        server.close()
    assert proc.returncode == 130, "".join(lines) + rest
    assert "interrupted" in rest
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_app_yaml_matches_the_bundle():
    """The MAP settings name this bundle's version, and the application folder has what the packager needs."""
    import yaml

    deploy = REPO / "hkafusion_monai" / "deploy"
    settings = yaml.safe_load((deploy / "app.yaml").read_text())
    version = json.loads((REPO / "bundle" / "configs" / "metadata.json").read_text())["version"]
    assert str(settings["application"]["version"]) == version
    assert settings["application"]["inputFormats"] == ["file"] and settings["application"]["outputFormats"] == ["file"]
    assert {"cpu", "memory"} <= set(settings["resources"])
    assert (deploy / "__main__.py").is_file()
    requirements = (deploy / "requirements.txt").read_text()
    assert f"hkafusion-monai=={version}" in requirements and "monai-deploy-app-sdk==4.0.0" in requirements


def test_one_more_transform_in_the_bundle_given_changes_the_fused_series(phantom, tmp_path, checkpoint):
    """``-m`` a copy of the bundle whose ``inference.json`` preprocessing has one more transform: the fused
    series follows the JSON, with no Python edited."""
    import shutil

    copy = tmp_path / "bundle"
    (copy / "models").mkdir(parents=True)
    shutil.copytree(REPO / "bundle" / "configs", copy / "configs")
    shutil.copy(checkpoint, copy / "models" / "model.pt")
    config = json.loads((copy / "configs" / "inference.json").read_text())
    flip = {"_target_": "ScaleIntensityRanged", "keys": "image", "a_min": 0.0, "a_max": 1.0, "b_min": 1.0, "b_max": 0.0}
    config["preprocessing"]["volume"]["transforms"].insert(-1, flip)
    (copy / "configs" / "inference.json").write_text(json.dumps(config))
    study = make_study(tmp_path / "study", phantom / "dicom" / "sub-000", ["MR", "PT"])
    fused = {}
    for name, model in (("shipped", checkpoint), ("edited", copy)):
        out = tmp_path / name
        assert run_main(["-i", str(study), "-o", str(out), "-m", str(model)]) == 0
        fused[name] = _load(series_folders(out)["PT"])
    assert not torch.equal(fused["shipped"], fused["edited"])
