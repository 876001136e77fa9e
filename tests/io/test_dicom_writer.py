"""The derived DICOM series writer: read back with pydicom and SimpleITK, validated by dciodvfy, rendered by
dcmtk (hkafusion_monai/io/dicom_series.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from PIL import Image

from hkafusion_monai.io.dicom import order_series, scan_dicom
from hkafusion_monai.io.dicom_series import (
    MR_IMAGE_STORAGE,
    RESEARCH_USE_COMMENT,
    SECONDARY_CAPTURE_STORAGE,
    fused_to_uint16,
    write_fused_series,
)
from tests.helpers import require_tool


def _sorted_datasets(folder: Path, pixels: bool = False) -> list[pydicom.Dataset]:
    (series,) = scan_dicom(folder)
    files, _ = order_series(series)
    return [pydicom.dcmread(f, stop_before_pixels=not pixels) for f in files]


@pytest.fixture(scope="module")
def sources(phantom: Path) -> tuple[list[pydicom.Dataset], list[pydicom.Dataset]]:
    subject = phantom / "dicom" / "sub-000"
    return _sorted_datasets(subject / "MR"), _sorted_datasets(subject / "PT")


@pytest.fixture(scope="module")
def fused(sources) -> np.ndarray:
    mri, _ = sources
    n, rows, cols = len(mri), int(mri[0].Rows), int(mri[0].Columns)
    # distinct along every axis, so that a transposed or flipped write cannot pass
    z, r, c = np.meshgrid(np.arange(n), np.arange(rows), np.arange(cols), indexing="ij")
    return ((z * 7 + r * 3 + c) % 97 / 96.0).astype(np.float32)


@pytest.fixture(scope="module")
def written(sources, fused, tmp_path_factory) -> dict[str, list[Path]]:
    mri, pet = sources
    colour = np.repeat((fused[..., None] * 255).astype(np.uint8), 3, axis=-1)
    colour[..., 0] = 255 - colour[..., 0]  # not grey
    out = tmp_path_factory.mktemp("dicom-out") / "fused"
    return write_fused_series(fused, mri, pet, out, model_version="9.9.9", colour=colour)


def _read_series(folder: Path, series_uid: str) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder), series_uid))
    return reader.Execute()


def test_pydicom_readback(sources, fused, written):
    mri, pet = sources
    assert len(written["mr"]) == len(mri) and len(written["sc"]) == len(mri)
    out = [pydicom.dcmread(p) for p in written["mr"]]
    series_uids = {ds.SeriesInstanceUID for ds in out}
    assert len(series_uids) == 1 and mri[0].SeriesInstanceUID not in series_uids
    assert len({ds.SOPInstanceUID for ds in out}) == len(out)
    for k, (ds, src) in enumerate(zip(out, mri, strict=True)):
        assert ds.SOPClassUID == MR_IMAGE_STORAGE and ds.file_meta.MediaStorageSOPClassUID == MR_IMAGE_STORAGE
        assert ds.Modality == "MR" and list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"]
        for name in (
            "PatientID",
            "PatientName",
            "StudyInstanceUID",
            "StudyDate",
            "AccessionNumber",
            "FrameOfReferenceUID",
        ):
            assert ds.get(name) == src.get(name), name
        np.testing.assert_allclose(
            np.asarray(ds.ImagePositionPatient, float), np.asarray(src.ImagePositionPatient, float), atol=1e-4
        )
        np.testing.assert_allclose(
            np.asarray(ds.ImageOrientationPatient, float), np.asarray(src.ImageOrientationPatient, float), atol=1e-6
        )
        np.testing.assert_allclose(np.asarray(ds.PixelSpacing, float), np.asarray(src.PixelSpacing, float))
        assert float(ds.SliceThickness) == pytest.approx(float(src.SliceThickness))
        assert ds.BitsAllocated == 16 and ds.PixelRepresentation == 0 and ds.PhotometricInterpretation == "MONOCHROME2"
        assert "RescaleSlope" not in ds and "RescaleIntercept" not in ds
        np.testing.assert_array_equal(ds.pixel_array, fused_to_uint16(fused[k]))
        assert ds.ImageComments == RESEARCH_USE_COMMENT and "RESEARCH USE ONLY" in ds.ImageComments
        assert "HKAFusion 9.9.9" in ds.DerivationDescription and "HKAFusion" in ds.SeriesDescription
        referenced = {item.SeriesInstanceUID for item in ds.ReferencedSeriesSequence}
        assert referenced == {mri[0].SeriesInstanceUID, pet[0].SeriesInstanceUID}
        sources_of_slice = [item.ReferencedSOPInstanceUID for item in ds.SourceImageSequence]
        assert sources_of_slice[0] == src.SOPInstanceUID
        assert len(sources_of_slice) == 2 and sources_of_slice[1] in {p.SOPInstanceUID for p in pet}
    sc = pydicom.dcmread(written["sc"][3])
    assert sc.SOPClassUID == SECONDARY_CAPTURE_STORAGE and sc.PhotometricInterpretation == "RGB"
    assert sc.SeriesInstanceUID not in series_uids | {mri[0].SeriesInstanceUID}
    assert list(sc.ImagePositionPatient) == list(out[3].ImagePositionPatient)
    assert sc.pixel_array.shape == (*fused.shape[1:], 3)


def test_simpleitk_readback(sources, fused, written, phantom: Path):
    mri, _ = sources
    out_dir = written["mr"][0].parent
    uid = pydicom.dcmread(written["mr"][0], stop_before_pixels=True).SeriesInstanceUID
    got = _read_series(out_dir, uid)
    ref = _read_series(phantom / "dicom" / "sub-000" / "MR", mri[0].SeriesInstanceUID)
    np.testing.assert_allclose(got.GetOrigin(), ref.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(got.GetSpacing(), ref.GetSpacing(), atol=1e-4)
    np.testing.assert_allclose(got.GetDirection(), ref.GetDirection(), atol=1e-4)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(got), fused_to_uint16(fused))  # (slices, rows, columns)


def test_dciodvfy_finds_no_error(written):
    dciodvfy = require_tool("dciodvfy", "dicom3tools")
    for path in (written["mr"][0], written["mr"][-1], written["sc"][0]):
        proc = subprocess.run([dciodvfy, str(path)], capture_output=True, text=True, timeout=60)
        report = (proc.stdout + proc.stderr).splitlines()
        errors = [line for line in report if line.startswith("Error")]
        assert not errors, f"{path.name}:\n" + "\n".join(report)
        assert any(line.strip() in ("MRImage", "SCImage") for line in report), report


def test_dcm2pnm_renders_a_slice(written, tmp_path):
    dcm2pnm = require_tool("dcm2pnm", "dcmtk")
    for path in (written["mr"][5], written["sc"][5]):
        png = tmp_path / f"{path.stem}.png"
        proc = subprocess.run([dcm2pnm, "--write-png", str(path), str(png)], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        pixels = np.asarray(Image.open(png))
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert pixels.shape[:2] == (ds.Rows, ds.Columns)
        assert pixels.std() > 0, f"{png} is blank"


def test_existing_output_is_kept(sources, fused, written):
    mri, pet = sources
    out_dir = written["mr"][0].parent
    before = sorted(p.name for p in out_dir.iterdir())
    with pytest.raises(FileExistsError, match="exists"):
        write_fused_series(fused, mri, pet, out_dir)
    assert sorted(p.name for p in out_dir.iterdir()) == before
    assert not [p for p in out_dir.parent.iterdir() if p.name.startswith(".")], "a temporary folder was left"


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda v: v[:-1], "slices"),
        (lambda v: v[:, :-1], "not on the MR grid"),
        (lambda v: np.where(v > 0.5, np.nan, v), "NaN"),
    ],
    ids=["slice-count", "grid", "nan"],
)
def test_bad_volume_writes_nothing(sources, fused, tmp_path, change, message):
    mri, pet = sources
    with pytest.raises(ValueError, match=message):
        write_fused_series(change(fused), mri, pet, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_oblique_mr_and_another_study(sources, fused, tmp_path):
    """A tilted MR (oblique orientation letters) still gets its colour series; a secondary from another study is
    referenced under its own study, as the Common Instance Reference module asks."""
    import copy

    mri, pet = sources
    c, s = np.cos(np.deg2rad(10)), np.sin(np.deg2rad(10))
    tilted = []
    for ds in mri:
        ds = copy.deepcopy(ds)
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, c, s]  # 10 degrees about the left-right axis
        tilted.append(ds)
    other = [copy.deepcopy(ds) for ds in pet]
    for ds in other:
        ds.StudyInstanceUID = "1.2.3.4.5"
    colour = np.zeros((*fused.shape, 3), dtype=np.uint8)
    written = write_fused_series(fused, tilted, other, tmp_path / "out", colour=colour)
    sc = pydicom.dcmread(written["sc"][0], stop_before_pixels=True)
    assert list(sc.PatientOrientation) == ["L", "PH"]  # column direction: posterior, tilted towards the head
    mr = pydicom.dcmread(written["mr"][0], stop_before_pixels=True)
    assert [i.SeriesInstanceUID for i in mr.ReferencedSeriesSequence] == [mri[0].SeriesInstanceUID]
    (study,) = mr.StudiesContainingOtherReferencedInstancesSequence
    assert study.StudyInstanceUID == "1.2.3.4.5"
    assert study.ReferencedSeriesSequence[0].SeriesInstanceUID == pet[0].SeriesInstanceUID


def test_failed_overwrite_keeps_the_previous_series(tmp_path, monkeypatch):
    import os

    from hkafusion_monai.io.atomic import atomic_write_dir

    target = tmp_path / "series"
    atomic_write_dir(target, lambda d: Path(d, "old.dcm").write_text("old"))
    real_rename = os.rename

    def failing_rename(src, dst):
        if str(src).endswith(".tmp"):  # the new series' publication fails
            raise OSError("disk full")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", failing_rename)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_dir(target, lambda d: Path(d, "new.dcm").write_text("new"), overwrite=True)
    monkeypatch.undo()
    assert [p.name for p in target.iterdir()] == ["old.dcm"]
    assert [p.name for p in tmp_path.iterdir()] == ["series"]  # no temporary folder left
