"""The DICOM-study datalist mode: pairing by Modality, StudyInstanceUID and FrameOfReferenceUID, the rules
for several candidates, ambiguity as an error listing them, and the CLI."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from hkafusion_monai.data.datalist import DatalistError, datalist_from_dicom, load_fusion_datalist, main, write_datalist
from hkafusion_monai.transforms import LoadFusionVolumed

DICOMDIR_TESTS = Path(get_testdata_file("CT_small.dcm")).parent / "dicomdirtests"


def copy_series(src: Path, dst: Path, **changes) -> Path:
    """Copy a series folder; ``changes`` set tags on every file, with new SOP (and series) instance UIDs."""
    dst.mkdir(parents=True, exist_ok=True)
    series_uid = pydicom.uid.generate_uid() if changes else None
    for f in sorted(src.glob("*.dcm")):
        if not changes:
            shutil.copy(f, dst / f.name)
            continue
        ds = pydicom.dcmread(f)
        for tag, value in changes.items():
            setattr(ds, tag, value)
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
        ds.save_as(dst / f.name)
    return dst


def test_phantom_studies_pair_like_the_phantom_datalists(phantom):
    manifest = json.loads((phantom / "phantom.json").read_text())
    for modality in ("CT", "PET"):
        folders = {split: [f"dicom/{n}" for n in names] for split, names in manifest["subjects"].items()}
        found = datalist_from_dicom(folders, base_dir=phantom, modality=modality)
        written = json.loads((phantom / "datalists" / f"dicom_{modality.lower()}.json").read_text())
        found.pop("base_dir"), written.pop("base_dir")
        assert found == written
    item = found["validation"][0]
    assert item["mri"] == "dicom/sub-001/MR" and item["other"] == "dicom/sub-001/PT" and "register" not in item


def test_several_modalities_in_a_study_are_ambiguous_until_one_is_chosen(phantom, tmp_path):
    with pytest.raises(DatalistError) as info:
        datalist_from_dicom({"test": ["dicom/sub-000"]}, base_dir=phantom)
    text = str(info.value)
    assert "ambiguous" in text and "3 candidate pairs" in text  # CT, PET and the multi-frame NM SPECT
    assert "other candidate: CT #2" in text and "other candidate: PT #3" in text and "MR candidate: MR #1" in text
    assert "other candidate: NM #4" in text
    assert len(datalist_from_dicom({"test": ["dicom/sub-000"]}, base_dir=phantom, modality="CT")["test"]) == 1
    assert len(datalist_from_dicom({"test": ["dicom/sub-000"]}, base_dir=phantom, modality="SPECT")["test"]) == 1


def test_several_mr_series_need_a_description(phantom, tmp_path):
    study = tmp_path / "study"
    copy_series(phantom / "dicom" / "sub-000" / "MR", study / "T1")
    copy_series(phantom / "dicom" / "sub-000" / "MR", study / "T2", SeriesDescription="T2 phantom", SeriesNumber=4)
    copy_series(phantom / "dicom" / "sub-000" / "PT", study / "PET")
    with pytest.raises(DatalistError, match="ambiguous") as info:
        datalist_from_dicom({"training": ["study"]}, base_dir=tmp_path, modality="PET")
    assert "'T2 phantom'" in str(info.value) and "'T1 3D phantom'" in str(info.value)
    dl = datalist_from_dicom({"training": ["study"]}, base_dir=tmp_path, modality="PET", mri_description="^t1")
    assert dl["training"][0]["mri"] == "study/T1" and dl["training"][0]["other"] == "study/PET"


def test_other_frame_of_reference_is_paired_for_registration(phantom, tmp_path):
    study = tmp_path / "study"
    copy_series(phantom / "dicom" / "sub-000" / "MR", study / "MR")
    copy_series(phantom / "dicom" / "sub-000" / "PT", study / "PT", FrameOfReferenceUID=pydicom.uid.generate_uid())
    item = datalist_from_dicom({"training": ["study"]}, base_dir=tmp_path)["training"][0]
    assert item["register"] is True and item["modality"] == "PET"
    # a same-frame candidate is preferred over another frame of reference
    copy_series(phantom / "dicom" / "sub-000" / "CT", study / "CT")
    item = datalist_from_dicom({"training": ["study"]}, base_dir=tmp_path)["training"][0]
    assert item["other"] == "study/CT" and "register" not in item


def test_unpaired_studies_are_errors_or_skipped(phantom, tmp_path, capsys):
    copy_series(phantom / "dicom" / "sub-000" / "MR", tmp_path / "a" / "MR")
    copy_series(phantom / "dicom" / "sub-001" / "MR", tmp_path / "b" / "MR")
    copy_series(phantom / "dicom" / "sub-001" / "CT", tmp_path / "b" / "CT")
    with pytest.raises(
        DatalistError, match=r"unpaired: study .* \(patient PHANTOM-0-000\) .* has no CT/NM/PT series to pair"
    ):
        datalist_from_dicom({"training": ["a", "b"]}, base_dir=tmp_path)
    dl = datalist_from_dicom({"training": ["a", "b"]}, base_dir=tmp_path, skip_unpaired=True)
    assert [it["patient_id"] for it in dl["training"]] == ["PHANTOM-0-001"]
    assert "warning: skipped: unpaired" in capsys.readouterr().err


def test_series_sharing_a_folder_are_loaded_by_their_uid(phantom, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for folder in ("MR", "CT"):
        for f in (phantom / "dicom" / "sub-002" / folder).glob("*.dcm"):
            shutil.copy(f, flat / f"{folder}_{f.name}")
    item = datalist_from_dicom({"test": ["flat"]}, base_dir=tmp_path)["test"][0]
    assert item["mri"] == item["other"] == "flat"
    out = write_datalist(datalist_from_dicom({"test": ["flat"]}, base_dir=tmp_path), tmp_path / "flat.json")
    loaded = LoadFusionVolumed(["mri", "other"])(load_fusion_datalist(out, "test")[0])
    assert loaded["mri"].meta["source_modality"] == "MR" and loaded["other"].meta["source_modality"] == "CT"
    assert loaded["mri"].shape == (1, 64, 64, 32) and loaded["other"].shape == (1, 60, 60, 27)


def test_real_pydicom_studies_have_no_pairs():
    # pydicom's DICOMDIR test folders: six studies of two patients, MR localizers in some, CT or CR in others
    with pytest.raises(DatalistError) as info:
        datalist_from_dicom({"test": [DICOMDIR_TESTS]}, base_dir=DICOMDIR_TESTS.parent)
    text = str(info.value)
    assert text.count("unpaired: study") == 6 and "has no MR series to pair" in text
    assert "ignored MR" in text and "different orientations" in text  # the localizers, and why


def test_cli(phantom, tmp_path, capsys):
    out = tmp_path / "pet.json"
    args = ["dicom", "--base-dir", str(phantom), "--training", "dicom/sub-000", "dicom/sub-001", "--out", str(out)]
    assert main(args) == 1  # CT and PET in each study
    assert "--modality" in capsys.readouterr().err and not out.exists()
    assert main([*args, "--modality", "PET"]) == 0
    assert "PET pairs: training 2, validation 0, test 0" in capsys.readouterr().out
    items = load_fusion_datalist(out, "training")
    assert all(Path(it["mri"]).is_dir() for it in items) and items[1]["other_series_uid"]
    assert main([*args, "--modality", "PET"]) == 1  # exists


def test_a_link_to_a_sibling_study_is_not_followed(phantom, tmp_path, capsys):
    """A link inside the folder given that leads to a sibling study is skipped with one warning;
    the sibling's series are never read."""
    root = tmp_path / "studies"
    study = root / "sub-000"
    study.mkdir(parents=True)
    for name in ("MR", "PT"):
        shutil.copytree(phantom / "dicom" / "sub-000" / name, study / name)
    sibling = tmp_path / "sibling"
    shutil.copytree(phantom / "dicom" / "sub-001", sibling)  # beside the folder given, not in it
    os.symlink(sibling, study / "more")
    found = datalist_from_dicom({"test": ["studies"]}, base_dir=tmp_path)
    assert [it["other"] for it in found["test"]] == ["studies/sub-000/PT"]  # sub-001 would make a second pair
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and str(study / "more") in warnings[0] and "outside the input folder" in warnings[0]
