"""The one pairing rule (hkafusion_monai/io/pairing.py): the datalist tool and the Deploy application pick the
same pairs for the same study, with localizers, NM projections, several MR and several secondary series.

The Deploy side runs without the MONAI Deploy SDK (``planner``: the application's planning on the series the
packaged rules select) and, where the SDK is installed, through its loader and selector operators (``sdk``)."""

from __future__ import annotations

import re
from pathlib import Path

import pydicom
import pytest

from hkafusion_monai.data.datalist import datalist_from_dicom
from hkafusion_monai.deploy.planning import plan_study
from hkafusion_monai.deploy.rules import load_rules
from hkafusion_monai.io.dicom import scan_dicom
from tests.helpers import copy_series, make_study, require_module

MODALITIES = {"CT": "CT", "PT": "PET", "NM": "SPECT"}


def _study(phantom: Path, root: Path) -> dict[str, str]:
    """Three MR series: two in the CT's and the SPECT's frame of reference (the second covering less), one in
    the PET's (covering less); a CT, a PET and a SPECT reconstruction; an MR localizer, a CT scout and the raw
    SPECT projections. Returns the series UIDs by folder name."""
    subject = phantom / "dicom" / "sub-000"
    study = make_study(root, subject, ["MR", "CT", "NM"])
    copy_series(subject / "MR", study / "T2", drop=8, SeriesNumber=9, SeriesDescription="T2 phantom")
    rescan = pydicom.uid.generate_uid()
    copy_series(
        subject / "MR", study / "MR2", drop=8, SeriesNumber=5, SeriesDescription="T1 rescan", FrameOfReferenceUID=rescan
    )
    copy_series(subject / "PT", study / "PT", FrameOfReferenceUID=rescan)
    localizer = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    copy_series(subject / "MR", study / "LOCALIZER", drop=28, SeriesNumber=6, ImageType=localizer)
    copy_series(subject / "CT", study / "SCOUT", drop=24, SeriesNumber=7, ImageType=localizer)
    copy_series(subject / "NM", study / "NM-raw", SeriesNumber=8, ImageType=["ORIGINAL", "PRIMARY", "TOMO", "EMISSION"])
    return {
        f.name: pydicom.dcmread(next(f.iterdir()), stop_before_pixels=True).SeriesInstanceUID for f in study.iterdir()
    }


def _selected(headers: list, selection: dict) -> list:
    """The series a selection of the rules file matches (its ``Modality`` pattern, its ``!VALUE`` ImageTypes)."""
    conditions = selection["conditions"]
    absent = [v[1:] for v in conditions.get("ImageType", []) if v.startswith("!")]
    return [
        h
        for h in headers
        if re.search(conditions["Modality"], h.modality) and not any(v in h.image_type for v in absent)
    ]


def _deploy_pairs(study: Path, how: str) -> list:
    rules = load_rules()
    if how == "planner":
        headers = scan_dicom(study, recursive=True)
        chosen = {s["name"]: _selected(headers, s) for s in rules["selections"]}
        return plan_study(chosen, rules, str(study))
    require_module("monai.deploy.core", "requirements-deploy.txt: monai-deploy-app-sdk")
    from monai.deploy.core import Fragment

    from hkafusion_monai.deploy.operators import FusionSeriesSelectorOperator, StudyLoaderOperator

    fragment = Fragment()
    studies = StudyLoaderOperator(fragment, name="loader").load_data_to_studies(study)
    return FusionSeriesSelectorOperator(fragment, rules=rules, input_folder=str(study), name="select").pairs(studies)


@pytest.mark.parametrize("how", ["planner", "sdk"])
def test_the_datalist_tool_and_deploy_pick_the_same_pairs(phantom, tmp_path, how):
    uid = _study(phantom, tmp_path / "study")
    deploy = {p.modality: (p.mri.uid, p.other.uid, p.register) for p in _deploy_pairs(tmp_path / "study", how)}
    datalist = {}
    for modality in MODALITIES.values():
        (item,) = datalist_from_dicom({"test": ["study"]}, base_dir=tmp_path, modality=modality)["test"]
        datalist[modality] = (item["mri_series_uid"], item["other_series_uid"], item.get("register", False))
    assert datalist == deploy
    # the PET goes with the MR in its frame of reference, the CT and the SPECT with the largest MR in theirs;
    # the localizer, the scout and the projections are no volumes to either
    assert deploy == {
        "CT": (uid["MR"], uid["CT"], False),
        "PET": (uid["MR2"], uid["PT"], False),
        "SPECT": (uid["MR"], uid["NM"], False),
    }
    # with the PET in a frame of reference of its own, both pair it with the larger MR, to be registered
    for f in (tmp_path / "study" / "PT").iterdir():
        ds = pydicom.dcmread(f)
        ds.FrameOfReferenceUID = pydicom.uid.generate_uid()
        ds.save_as(f)
    (pet,) = [p for p in _deploy_pairs(tmp_path / "study", how) if p.modality == "PET"]
    (item,) = datalist_from_dicom({"test": ["study"]}, base_dir=tmp_path, modality="PET")["test"]
    assert (pet.mri.uid, pet.register) == (item["mri_series_uid"], item["register"]) == (uid["MR"], True)
