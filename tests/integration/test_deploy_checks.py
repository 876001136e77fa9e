"""The Deploy application's hot-spot guard (docs/failure_behaviour.md): a PET/SPECT fusion that loses a hot
spot is said in the log (one warning line naming the instances), and in the derived series itself
(``SeriesDescription`` and ``ImageComments``), so that a reader looks at the PET; a fusion that keeps them is
one INFO line and an unmarked series. The "fusions" are TorchScript models that return the MRI alone or the
secondary alone, so that the verdict is known. Needs requirements-deploy.txt, like ``test_deploy.py``."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest
import torch

from hkafusion_monai.io.dicom_series import RESEARCH_USE_COMMENT
from tests.helpers import REPO, check_derived_series, make_study, require_module, run_main, series_folders

RULES = REPO / "hkafusion_monai" / "deploy" / "selection_rules.json"


@pytest.fixture(scope="module", autouse=True)
def _sdk():
    require_module("monai.deploy.core", "requirements-deploy.txt: monai-deploy-app-sdk")


class _Channel(torch.nn.Module):
    """A "fusion" that returns one of the two input channels."""

    def __init__(self, channel: int) -> None:
        super().__init__()
        self.channel = channel

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return image[:, self.channel : self.channel + 1]


def _model(folder: Path, channel: int) -> Path:
    path = folder / f"channel{channel}.ts"
    torch.jit.save(torch.jit.trace(_Channel(channel), torch.rand(1, 2, 32, 32)), str(path))
    return path


def test_a_lost_hot_spot_is_logged_and_noted_in_the_derived_series(phantom, tmp_path, capfd):
    study = make_study(tmp_path / "in", phantom / "dicom" / "sub-001", ["MR", "PT"])
    out = tmp_path / "out"
    code = run_main(["-i", str(study), "-o", str(out), "-m", str(_model(tmp_path, 0))])  # the MRI alone
    err = capfd.readouterr().err
    assert code == 0, err[-3000:]
    (line,) = [line for line in err.splitlines() if "hot-spot guard" in line]
    assert " WARNING " in line and "keeping less than 50% of their contrast" in line and "(instance " in line
    assert "look at the PT series there" in line
    folder = series_folders(out)["PT"]
    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in sorted(folder.glob("MR_*.dcm"))]
    assert all(h.SeriesDescription.endswith(" - hot spot lost: see PT") for h in headers)
    assert all(len(h.SeriesDescription) <= 64 for h in headers)
    assert all(h.ImageComments.startswith(RESEARCH_USE_COMMENT + " HOT-SPOT GUARD: ") for h in headers)
    # every instance names the instances holding a lost hot spot, and those say where it lies
    marked = [int(h.InstanceNumber) for h in headers if "In this instance, the hot spot at row" in h.ImageComments]
    named = headers[0].ImageComments.split("(instances ", 1)[1].split(")", 1)[0]
    assert marked and [int(v) for v in named.split(", ")] == sorted(marked)
    # the instance the warning names first carries its own note
    first = int(line.split("(instance ", 1)[1].split(",", 1)[0])
    assert "In this instance" in headers[first - 1].ImageComments
    check_derived_series(folder, study / "MR", study / "PT")  # still a valid series (skips without dciodvfy)


def test_kept_hot_spots_leave_the_series_unmarked(phantom, tmp_path, capfd):
    """The secondary itself as the "fusion" keeps every hot spot of the PET and the SPECT; the guard's
    fraction comes from the rules file (here 0.9)."""
    rules = json.loads(RULES.read_text())
    rules["fusion"]["hot_spot_min_kept"] = 0.9
    rules_file = tmp_path / "rules.json"
    rules_file.write_text(json.dumps(rules))
    study = make_study(tmp_path / "in", phantom / "dicom" / "sub-001", ["MR", "PT", "NM"])
    out = tmp_path / "out"
    code = run_main(["-i", str(study), "-o", str(out), "-m", str(_model(tmp_path, 1)), "--rules", str(rules_file)])
    err = capfd.readouterr().err
    assert code == 0, err[-3000:]
    lines = [line for line in err.splitlines() if "hot-spot guard" in line]
    assert len(lines) == 2 and all(" INFO " in line and "0 keeping less than 90%" in line for line in lines), err
    for modality, folder in series_folders(out).items():
        h = pydicom.dcmread(next(folder.glob("MR_*.dcm")), stop_before_pixels=True)
        assert h.ImageComments == RESEARCH_USE_COMMENT and "hot spot" not in h.SeriesDescription, modality


def test_a_bad_guard_fraction_in_the_rules_is_one_line(tmp_path, capfd):
    rules = json.loads(RULES.read_text())
    rules["fusion"]["hot_spot_min_kept"] = 50
    rules_file = tmp_path / "rules.json"
    rules_file.write_text(json.dumps(rules))
    (tmp_path / "in").mkdir()
    code = run_main(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--rules", str(rules_file)])
    err = capfd.readouterr().err
    assert code != 0
    assert err.strip().splitlines()[-1] == (
        f"error: {rules_file}: fusion.hot_spot_min_kept is 50; use a fraction from 0 to 1"
    ), err[-2000:]
