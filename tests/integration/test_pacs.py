"""Sending the derived series to a real PACS: Orthanc (Debian ``orthanc``), started on 127.0.0.1 with a temporary
configuration and storage, queried back through its REST API; and destinations that refuse or do not answer.

Skipped without ``Orthanc`` (or the deploy requirements) locally, failed under CI (``.ci/run`` installs it).
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pydicom
import pytest

from hkafusion_monai.io.pacs import DicomDestination
from hkafusion_monai.utils import HKAFusionError
from tests.helpers import (
    make_study,
    random_checkpoint,
    require_module,
    require_tool,
    run_main,
    series_folders,
    stop_process,
)

ORTHANC_AET = "HKATESTPACS"


@pytest.fixture(scope="module", autouse=True)
def _sdk():
    require_module("monai.deploy.core", "requirements-deploy.txt: monai-deploy-app-sdk")
    require_module("pynetdicom", "requirements-deploy.txt: pynetdicom")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return random_checkpoint(tmp_path_factory)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    """An Orthanc on loopback: ``(REST base URL, DICOM port)``; stopped at the end of the module."""
    exe = require_tool("Orthanc", "orthanc")
    root = tmp_path_factory.mktemp("orthanc")
    http_port, dicom_port = _free_port(), _free_port()
    config = {
        "Name": "hkafusion-test",
        "StorageDirectory": str(root / "storage"),
        "IndexDirectory": str(root / "index"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": ORTHANC_AET,
        "DicomCheckCalledAet": True,  # a wrong called AE title is rejected: the refusing destination
        "DicomAlwaysAllowStore": True,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "Plugins": [],
        "StorageCompression": False,
    }
    (root / "orthanc.json").write_text(json.dumps(config))
    log = (root / "orthanc.log").open("w")
    proc = subprocess.Popen([exe, str(root / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                _get(f"{url}/system")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"Orthanc did not start: {(root / 'orthanc.log').read_text()[-2000:]}")
                time.sleep(0.2)
        yield url, dicom_port
    finally:
        stop_process(proc, timeout=15)
        log.close()


def test_a_fused_series_reaches_orthanc_intact(orthanc, phantom, tmp_path, checkpoint, capfd):
    """``--send``: Orthanc holds the derived series with every instance, the same UIDs and the same geometry."""
    url, port = orthanc
    study = make_study(tmp_path / "in", phantom / "dicom" / "sub-000", ["MR", "PT", "NM"])
    out = tmp_path / "out"
    argv = ["-i", str(study), "-o", str(out), "-m", str(checkpoint)]
    code = run_main([*argv, "--send", f"{ORTHANC_AET}@127.0.0.1:{port}", "--calling-ae", "HKAFUSIONTEST"])
    captured = capfd.readouterr()
    assert code == 0, captured.err[-3000:]
    assert f"sent to {ORTHANC_AET}@127.0.0.1:{port}" in captured.out
    assert len([line for line in captured.err.splitlines() if " INFO sent " in line]) == 2
    for modality, folder in series_folders(out).items():
        written = {}
        for f in sorted(folder.glob("MR_*.dcm")):
            ds = pydicom.dcmread(f, stop_before_pixels=True)
            written[ds.SOPInstanceUID] = ds
        (series_uid,) = {ds.SeriesInstanceUID for ds in written.values()}
        found = [s for s in _get(f"{url}/series?expand") if s["MainDicomTags"]["SeriesInstanceUID"] == series_uid]
        assert len(found) == 1, modality
        series = found[0]
        assert len(series["Instances"]) == len(written)
        study_tags = _get(f"{url}/studies/{series['ParentStudy']}")["MainDicomTags"]
        first = next(iter(written.values()))
        assert study_tags["StudyInstanceUID"] == first.StudyInstanceUID
        stored = {}
        for instance in series["Instances"]:
            tags = _get(f"{url}/instances/{instance}/simplified-tags")
            stored[tags["SOPInstanceUID"]] = tags
        assert set(stored) == set(written)
        for uid, ds in written.items():
            tags = stored[uid]
            assert tags["SOPClassUID"] == ds.SOPClassUID and tags["FrameOfReferenceUID"] == ds.FrameOfReferenceUID
            for name in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
                theirs = [float(v) for v in tags[name].split("\\")]
                np.testing.assert_allclose(theirs, [float(v) for v in ds[name].value], atol=1e-6)
            assert int(tags["Rows"]) == ds.Rows and int(tags["Columns"]) == ds.Columns


def test_a_refusing_destination_is_one_error_and_exit_3(orthanc, phantom, tmp_path, checkpoint, capfd):
    """A destination that rejects the association (wrong called AE title), or nothing listening: one error
    line naming it, exit status 3, and the written series stay."""
    _, port = orthanc
    study = make_study(tmp_path / "in", phantom / "dicom" / "sub-000", ["MR", "PT"])
    cases = [
        (f"WRONGAE@127.0.0.1:{port}", "rejected the association"),
        (f"NOBODY@127.0.0.1:{_free_port()}", "cannot be reached"),
    ]  # nothing listens
    for i, (destination, message) in enumerate(cases):
        out = tmp_path / f"out{i}"
        code = run_main(["-i", str(study), "-o", str(out), "-m", str(checkpoint), "--send", destination])
        err = capfd.readouterr().err
        assert code == 3, err[-3000:]
        last = err.strip().splitlines()[-1]
        assert last.startswith(f"error: DICOM destination {destination} {message}"), err[-3000:]
        assert "written instance(s) stay in" in last
        assert len(series_folders(out)) == 1


def test_a_bad_destination_is_refused_before_any_work(phantom, tmp_path, checkpoint, capfd):
    study = make_study(tmp_path / "in", phantom / "dicom" / "sub-000", ["MR", "PT"])
    out = tmp_path / "out"
    assert run_main(["-i", str(study), "-o", str(out), "-m", str(checkpoint), "--send", "127.0.0.1:104"]) == 1
    assert "expected AE@host:port" in capfd.readouterr().err
    assert not out.exists() or not any(out.iterdir())


def test_destination_syntax():
    assert DicomDestination.parse("PACS@pacs.example.org:104") == DicomDestination("PACS", "pacs.example.org", 104)
    assert str(DicomDestination.parse("A@[::1]:4242")) == "A@[::1]:4242"
    for bad in ("PACS@host", "@host:104", "PACS@host:0", "A" * 17 + "@host:104", "PACS@host:99999"):
        with pytest.raises(HKAFusionError):
            DicomDestination.parse(bad)
