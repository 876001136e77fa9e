"""The phantom demo data: layout, DICOM modules and UIDs, DICOM == NIfTI, Harvard-like PNGs, the CLI."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from monai.transforms import Orientationd
from PIL import Image

from hkafusion_monai.data.datalist import DATALIST_SPLITS, load_fusion_datalist
from hkafusion_monai.data.phantom import PROFILES, main, split_of
from hkafusion_monai.transforms import LoadFusionImaged, LoadFusionVolumed, ScaleByBitDepthd, SplitYCbCrd, StackPaird
from tests.helpers import REPO


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_layout_and_datalists(phantom):
    manifest = json.loads((phantom / "phantom.json").read_text())
    assert manifest["subjects"] == {"training": ["sub-000"], "validation": ["sub-001"], "test": ["sub-002"]}
    names = sorted(p.name for p in (phantom / "datalists").iterdir())
    assert names == [f"{k}_{m}.json" for k in ("dicom", "nifti", "png") for m in ("ct", "pet", "spect")]
    for path in (phantom / "datalists").iterdir():
        spec = json.loads(path.read_text())
        assert spec["base_dir"] == ".."  # relative: the set can move
        for split in DATALIST_SPLITS:
            items = load_fusion_datalist(path, split)
            per_subject = 2 if path.name.startswith("png") else 1
            assert len(items) == per_subject, (path.name, split)
            for item in items:
                assert Path(item["mri"]).exists() and Path(item["other"]).exists()
                assert item["modality"] == spec["modality"] == path.stem.split("_")[1].upper()


def test_png_pairs_look_like_harvard_pairs(phantom):
    for task, other in (("mri_ct", "CT"), ("mri_pet", "PET"), ("mri_spect", "SPECT")):
        mris = sorted((phantom / "png" / task / "train" / "MRI").glob("*.png"))
        assert [p.name for p in mris] == ["sub-000_z+050.png", "sub-000_z-020.png"]
        for mri_path in mris:
            mri, oth = Image.open(mri_path), Image.open(mri_path.parents[1] / other / mri_path.name)
            assert mri.size == oth.size == (256, 256) and mri.mode == "L"
            assert oth.mode == ("L" if other == "CT" else "RGB")
            a, b = np.asarray(mri, dtype=np.float32), np.asarray(oth, dtype=np.float32)
            assert a.max() > 200 and (a > 20).mean() > 0.3  # a head filling most of the picture
            if other != "CT":  # pseudo-colour, not grey stored as RGB
                assert np.abs(b[..., 0] - b[..., 2]).max() > 100
    # the MRI of a slice is the same picture in each task's folder
    same = [phantom / "png" / t / "test" / "MRI" / "sub-002_z-020.png" for t in ("mri_ct", "mri_pet", "mri_spect")]
    assert len({p.read_bytes() for p in same}) == 1


@pytest.mark.parametrize("modality", ["ct", "pet", "spect"])
def test_png_pairs_feed_the_2d_chain(phantom, modality):
    keys = ["mri", "other"]
    chain = [LoadFusionImaged(keys), ScaleByBitDepthd(keys), SplitYCbCrd(keys, keep_cbcr=True), StackPaird(keys)]
    for item in load_fusion_datalist(phantom / "datalists" / f"png_{modality}.json", "training"):
        for t in chain:
            item = t(item)
        assert item["image"].shape == (2, 256, 256) and float(item["image"].max()) <= 1.0
        assert item["image"].meta["other_colour"] == ("grey" if modality == "ct" else "ycbcr")
        assert ("other_cbcr" in item) == (modality != "ct")


def test_dicom_series_have_the_modules_and_consistent_uids(phantom):
    headers = {}
    for folder in ("MR", "CT", "PT"):
        files = sorted((phantom / "dicom" / "sub-000" / folder).glob("*.dcm"))
        headers[folder] = [pydicom.dcmread(f) for f in files]
    required = [
        # Patient, General Study, General Series, Frame of Reference, General Equipment, General Image
        "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate", "StudyTime",
        "ReferringPhysicianName", "StudyID", "AccessionNumber", "Modality", "SeriesInstanceUID", "SeriesNumber",
        "FrameOfReferenceUID", "PositionReferenceIndicator", "Manufacturer", "InstanceNumber",
        # Image Plane, Image Pixel, SOP Common
        "PixelSpacing", "ImageOrientationPatient", "ImagePositionPatient", "SliceThickness", "SamplesPerPixel",
        "PhotometricInterpretation", "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit",
        "PixelRepresentation", "PixelData", "SOPClassUID", "SOPInstanceUID", "ImageType",
    ]  # fmt: skip
    per_modality = {
        "MR": ["ScanningSequence", "SequenceVariant", "ScanOptions", "MRAcquisitionType", "EchoTime"],
        "CT": ["RescaleIntercept", "RescaleSlope", "KVP"],
        "PT": ["Units", "CountsSource", "SeriesType", "CorrectedImage", "DecayCorrection", "NumberOfSlices",
               "RadiopharmaceuticalInformationSequence", "RescaleSlope", "ImageIndex", "FrameReferenceTime",
               "ActualFrameDuration", "PatientOrientationCodeSequence"],
    }  # fmt: skip
    sop = {"MR": "1.2.840.10008.5.1.4.1.1.4", "CT": "1.2.840.10008.5.1.4.1.1.2", "PT": "1.2.840.10008.5.1.4.1.1.128"}
    for folder, series in headers.items():
        for ds in series:
            missing = [k for k in required + per_modality[folder] if k not in ds]
            assert not missing, (folder, missing)
            assert ds.Modality == folder and ds.SOPClassUID == sop[folder]
            assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
            assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert len({ds.SeriesInstanceUID for ds in series}) == 1
    (nm,) = [pydicom.dcmread(f) for f in (phantom / "dicom" / "sub-000" / "NM").iterdir()]
    everything = [ds for series in headers.values() for ds in series] + [nm]
    # one study and one frame of reference per subject; distinct series and instances
    assert len({ds.StudyInstanceUID for ds in everything}) == 1
    assert len({ds.FrameOfReferenceUID for ds in everything}) == 1
    assert len({ds.PatientID for ds in everything}) == 1
    assert len({ds.SeriesInstanceUID for ds in everything}) == 4
    assert len({ds.SOPInstanceUID for ds in everything}) == len(everything)
    # PET: its own in-plane resolution and slice spacing; CT numbered from the top down
    mr, ct, pt = headers["MR"], headers["CT"], headers["PT"]
    assert float(pt[0].PixelSpacing[0]) != float(mr[0].PixelSpacing[0])
    assert abs(pt[1].ImagePositionPatient[2] - pt[0].ImagePositionPatient[2]) != float(mr[0].SliceThickness)
    assert ct[0].ImagePositionPatient[2] > ct[-1].ImagePositionPatient[2]
    assert mr[0].ImagePositionPatient[2] < mr[-1].ImagePositionPatient[2]
    # other subjects have other UIDs
    other = pydicom.dcmread(next((phantom / "dicom" / "sub-001" / "MR").glob("*.dcm")))
    assert other.StudyInstanceUID != mr[0].StudyInstanceUID and other.PatientID != mr[0].PatientID


def test_spect_is_one_multiframe_nm_reconstruction(phantom):
    """SPECT as SPECT systems export it: one NM Image object, RECON TOMO, frames along the Slice Vector,
    geometry in the Detector Information Sequence, counts through a linear real-world value mapping."""
    (path,) = (phantom / "dicom" / "sub-000" / "NM").iterdir()
    ds = pydicom.dcmread(path)
    grid = PROFILES["small"]["SPECT"]
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.20" and ds.Modality == "NM"
    assert list(ds.ImageType)[2:] == ["RECON TOMO", "EMISSION"]
    assert ds.NumberOfFrames == ds.NumberOfSlices == grid.shape[2] and ds.FrameIncrementPointer == 0x00540080
    assert list(ds.SliceVector) == list(range(1, grid.shape[2] + 1))
    assert "ImagePositionPatient" not in ds and "ImagePositionPatient" in ds.DetectorInformationSequence[0]
    assert float(ds.SpacingBetweenSlices) == grid.spacing[2]
    assert ds.pixel_array.shape == (grid.shape[2], grid.shape[0], grid.shape[1])  # frames, rows, columns
    mapping = ds.RealWorldValueMappingSequence[0]
    assert mapping.MeasurementUnitsCodeSequence[0].CodeValue == "{counts}" and float(mapping.RealWorldValueSlope) > 0


def test_spect_passes_dciodvfy(phantom):
    from tests.helpers import require_tool

    tool = require_tool("dciodvfy", "dicom3tools")
    (path,) = (phantom / "dicom" / "sub-000" / "NM").iterdir()
    r = subprocess.run([tool, str(path)], capture_output=True, text=True)
    report = r.stdout + r.stderr
    assert "NMImage" in report
    errors = [line for line in report.splitlines() if line.startswith("Error")]
    assert not errors, report
    # the one warning: Laterality empty (type 2C), as for the derived series (docs/deploy.md)
    warnings = [line for line in report.splitlines() if line.startswith("Warning")]
    assert all("Laterality" in w for w in warnings), report


@pytest.mark.parametrize("folder, nifti", [("MR", "mri"), ("CT", "ct"), ("PT", "pet"), ("NM", "spect")])
def test_dicom_and_nifti_hold_the_same_volume(phantom, folder, nifti):
    load = LoadFusionVolumed(["dicom", "nifti"])
    d = load(
        {"dicom": phantom / "dicom" / "sub-001" / folder, "nifti": phantom / "nifti" / "sub-001" / f"{nifti}.nii.gz"}
    )
    # the two files store the voxels in different orders; one orientation makes them comparable
    d = Orientationd(["dicom", "nifti"], axcodes="PLS", labels=None)(d)
    a, b = d["dicom"], d["nifti"]
    assert a.shape == b.shape
    np.testing.assert_allclose(a.affine.numpy(), b.affine.numpy(), atol=1e-4)
    torch.testing.assert_close(a.as_tensor(), b.as_tensor(), rtol=1e-4, atol=1e-3)
    meta = a.meta
    assert meta["source_modality"] == folder and meta["source_format"] == "dicom"
    assert b.meta["source_format"] == "nifti" and b.meta["source_modality"] == ""
    if folder == "CT":
        assert float(a.min()) < -900 and float(a.max()) > 1000  # HU: air and bone


def test_grids_differ_per_modality():
    for grids in PROFILES.values():
        assert grids["PET"].spacing[0] != grids["MRI"].spacing[0]
        assert grids["PET"].spacing[2] != grids["MRI"].spacing[2]
        assert grids["CT"].descending


def test_split_rule():
    assert [split_of(i, 1) for i in range(1)] == ["training"]
    assert [split_of(i, 2) for i in range(2)] == ["training", "test"]
    assert [split_of(i, 4) for i in range(4)] == ["training", "training", "validation", "test"]
    assert [split_of(i, 10) for i in range(10)].count("test") == 2


def test_cli_is_deterministic_atomic_and_keeps_existing_output(tmp_path, capsys):
    args = ["--size", "small", "--subjects", "1", "--png-slices", "1"]
    cmd = [sys.executable, "-m", "hkafusion_monai.data.phantom", "--out", str(tmp_path / "a"), *args]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stdout and "MB" in r.stdout
    (tmp_path / "b").mkdir()  # an existing empty folder is fine
    assert main(["--out", str(tmp_path / "b"), *args]) == 0
    first = _digest(tmp_path / "a")
    assert first == _digest(tmp_path / "b")  # same arguments, same bytes
    assert main(["--out", str(tmp_path / "b"), *args, "--seed", "1"]) == 1  # non-empty: kept
    assert "--overwrite" in capsys.readouterr().err
    assert _digest(tmp_path / "b") == first
    assert main(["--out", str(tmp_path / "b"), *args, "--seed", "1", "--overwrite"]) == 0
    assert _digest(tmp_path / "b") != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]  # no temporary folders left
