"""One folder walker, :func:`hkafusion_monai.io.study.study_files`, serves the datalist tool, Deploy and bundle
inference: a symbolic link that leads out of the folder given is never followed, at every entry point."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from hkafusion_monai.inference.items import dicom_modality
from hkafusion_monai.io.dicom import scan_dicom
from hkafusion_monai.transforms.volume import LoadFusionVolumed


def test_bundle_inference_does_not_follow_a_link_out_of_the_series_folder(
    phantom: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    series = tmp_path / "MR"
    shutil.copytree(phantom / "dicom" / "sub-000" / "MR", series)
    elsewhere = sorted((phantom / "dicom" / "sub-001" / "MR").iterdir())[0]  # another patient's file
    os.symlink(elsewhere, series / "zz_link.dcm")
    with caplog.at_level(logging.WARNING):
        (found,) = scan_dicom(series)
    assert len(found.slices) == len(list((phantom / "dicom" / "sub-000" / "MR").iterdir()))
    assert any("zz_link.dcm" in r.message and "outside the input folder" in r.message for r in caplog.records)
    # the volume reader of the bundle's inference reads the same files
    volume = LoadFusionVolumed(["mri"])({"mri": str(series)})["mri"]
    assert volume.shape[-1] == len(found.slices)


def test_the_modality_is_not_read_through_a_link_out_of_the_folder(phantom: Path, tmp_path: Path) -> None:
    folder = tmp_path / "other"
    folder.mkdir()
    os.symlink(sorted((phantom / "dicom" / "sub-000" / "PT").iterdir())[0], folder / "pet.dcm")
    assert dicom_modality(folder) is None
    assert dicom_modality(phantom / "dicom" / "sub-000" / "PT") == "PET"
