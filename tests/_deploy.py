"""Shared helpers of the Deploy tests: phantom study folders, running the application in-process, and the
checks every derived series must pass (UIDs and references, the MR grid by SimpleITK, dciodvfy)."""

from __future__ import annotations

import json
import logging
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from conftest import require_tool

#: the phantom series folders of a subject, and their DICOM modality
SERIES = ("MR", "CT", "PT", "NM")
#: the bundle's version, which the application reports and writes as SoftwareVersions
VERSION = json.loads((Path(__file__).resolve().parents[1] / "bundle" / "configs" / "metadata.json").read_text())[
    "version"
]


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
