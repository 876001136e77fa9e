"""Datalists: pairing folders by file name, splits.json, problems reported by name, atomic output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hkafusion_monai.data.datalist import (
    DatalistError,
    datalist_from_folders,
    datalist_from_splits,
    datalist_from_subjects,
    load_fusion_datalist,
    main,
    write_datalist,
)
from tests.helpers import REPO


def _png(path: Path, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (8, 8), dtype=np.uint8)).save(path)


def make_task(root: Path, split: str, other: str, names: list[str], extra_mri=(), extra_other=()) -> Path:
    """``root/<split>/MRI/<name>.png`` paired with ``root/<split>/<other>/<name>.png``."""
    for i, n in enumerate(names):
        _png(root / split / "MRI" / f"{n}.png", i)
        _png(root / split / other / f"{n}.png", i + 100)
    for n in extra_mri:
        _png(root / split / "MRI" / n)
    for n in extra_other:
        _png(root / split / other / n)
    return root / split


def test_folders_pairs_by_name_with_relative_paths(tmp_path):
    data = tmp_path / "data"
    make_task(data / "mri_pet", "train", "PET", ["3", "1", "2"])
    make_task(data / "mri_pet", "test", "PET", ["9"])
    (data / "mri_pet" / "train" / "MRI" / "README.txt").write_text("ignored: not an image")
    dl = datalist_from_folders({"training": ["mri_pet/train"], "test": ["mri_pet/test"]}, base_dir=data)
    assert dl["modality"] == "PET" and dl["validation"] == []
    assert [it["mri"] for it in dl["training"]] == [f"mri_pet/train/MRI/{n}.png" for n in "123"]
    assert dl["training"][0] == {
        "mri": "mri_pet/train/MRI/1.png",
        "other": "mri_pet/train/PET/1.png",
        "modality": "PET",
    }

    out = write_datalist(dl, tmp_path / "lists" / "pet.json")
    spec = json.loads(out.read_text())
    assert spec["base_dir"] == "../data"  # relative to the datalist's folder: they move together
    items = load_fusion_datalist(out, "training")
    assert all(os.path.isfile(it["mri"]) and os.path.isfile(it["other"]) for it in items)
    # moving data and datalist together keeps it valid
    moved = tmp_path / "moved"
    moved.mkdir()
    (tmp_path / "data").rename(moved / "data")
    (tmp_path / "lists").rename(moved / "lists")
    items = load_fusion_datalist(moved / "lists" / "pet.json", "test")
    assert os.path.isfile(items[0]["other"]) and items[0]["modality"] == "PET"
    # an explicit base_dir wins
    assert (
        load_fusion_datalist(moved / "lists" / "pet.json", "test", base_dir="/x", check_files=False)[0]["mri"]
        == "/x/mri_pet/test/MRI/9.png"
    )


def test_folders_unpaired_and_duplicates_are_named_and_fail(tmp_path):
    make_task(tmp_path, "train", "CT", ["1", "2"], extra_mri=["7.png", "2.tif"], extra_other=["8.png"])
    with pytest.raises(DatalistError) as info:
        datalist_from_folders({"training": ["train"]}, base_dir=tmp_path)
    text = str(info.value)
    assert "7.png" in text and "8.png" in text and "unpaired" in text
    assert "duplicate name '2'" in text and "2.tif" in text
    dl = datalist_from_folders({"training": ["train"]}, base_dir=tmp_path, skip_unpaired=True)
    assert [it["mri"] for it in dl["training"]] == ["train/MRI/1.png"]  # the ambiguous '2' is left out too


def test_subjects_pair_volumes_in_each_subject_folder_and_name_what_is_missing(tmp_path):
    for subject, files in {
        "a": ["mri.nii.gz", "PET.nii"],
        "b": ["mri.nii.gz"],
        "c": ["mri.nii", "mri.nii.gz", "pet.nii"],
    }.items():
        for name in files:
            (tmp_path / subject).mkdir(exist_ok=True)
            (tmp_path / subject / name).write_bytes(b"not read here")
    with pytest.raises(DatalistError) as info:
        datalist_from_subjects({"training": ["a", "b"], "test": ["c"]}, tmp_path, "PET")
    problems = info.value.problems
    assert len(problems) == 2, problems
    assert f"unpaired: {tmp_path / 'b'} has no pet.nii.gz or pet.nii" in problems
    assert any(p.startswith("duplicate name 'mri' in") and str(tmp_path / "c") in p for p in problems), problems
    dl = datalist_from_subjects({"training": ["a", "b"], "test": ["c"]}, tmp_path, "PET", skip_unpaired=True)
    assert dl["training"] == [{"mri": "a/mri.nii.gz", "other": "a/PET.nii", "modality": "PET"}] and not dl["test"]


def test_folders_same_folder_in_two_splits_is_a_duplicate(tmp_path):
    make_task(tmp_path, "train", "SPECT", ["1"])
    with pytest.raises(DatalistError, match="listed in training and in validation"):
        datalist_from_folders({"training": ["train"], "validation": ["train"]}, base_dir=tmp_path)


def test_modality_needed_for_unknown_folder_name(tmp_path):
    make_task(tmp_path, "a", "FDG", ["1"])
    with pytest.raises(DatalistError, match="CT, PET, SPECT"):
        datalist_from_folders({"training": ["a"]}, base_dir=tmp_path)
    dl = datalist_from_folders({"training": ["a"]}, base_dir=tmp_path, other="FDG", modality="PET")
    assert dl["training"][0]["other"] == "a/FDG/1.png" and dl["modality"] == "PET"


def _fake_splits(root: Path) -> Path:
    task = root / "mri_spect"
    make_task(task, "train", "SPECT", ["101", "102", "103"])
    make_task(task, "test", "SPECT", ["201", "202"])
    spec = {
        "description": "test",
        "tasks": {
            "mri_spect": {
                "modalities": ["MRI", "SPECT"],
                "training": ["train/101.png", "train/102.png"],
                "validation": ["test/201.png"],
                "test": ["test/202.png"],
                "excluded_near_duplicates_of_test": ["train/103.png"],
            }
        },
    }
    path = root / "splits.json"
    path.write_text(json.dumps(spec))
    return path


def test_splits_json(tmp_path):
    splits = _fake_splits(tmp_path)
    dl = datalist_from_splits(splits, "mri_spect")
    assert dl["modality"] == "SPECT" and dl["task"] == "mri_spect"
    assert [it["mri"] for it in dl["training"]] == ["mri_spect/train/MRI/101.png", "mri_spect/train/MRI/102.png"]
    assert dl["validation"][0]["other"] == "mri_spect/test/SPECT/201.png"
    assert len(dl["test"]) == 1  # the excluded near-duplicate appears nowhere
    spec = json.loads(splits.read_text())
    spec["tasks"]["mri_spect"]["training"] += ["train/999.png", "train/101.png"]
    splits.write_text(json.dumps(spec))
    with pytest.raises(DatalistError) as info:
        datalist_from_splits(splits, "mri_spect")
    assert "999.png" in str(info.value) and "'train/101.png' is listed 2 times" in str(info.value)
    assert len(datalist_from_splits(splits, "mri_spect", skip_unpaired=True)["training"]) == 2


def test_write_is_atomic_and_refuses_to_overwrite(tmp_path):
    out = tmp_path / "dl.json"
    write_datalist({"training": []}, out)
    with pytest.raises(FileExistsError, match="--overwrite"):
        write_datalist({"training": [1]}, out)
    assert json.loads(out.read_text()) == {"training": []}
    write_datalist({"training": [1]}, out, overwrite=True)
    assert json.loads(out.read_text()) == {"training": [1]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dl.json"]  # no temporary files left


def test_cli_exit_status_and_messages(tmp_path, capsys):
    make_task(tmp_path, "train", "PET", ["1"], extra_mri=["lonely.png"])
    out = tmp_path / "out.json"
    args = ["folders", "--base-dir", str(tmp_path), "--training", "train", "--out", str(out)]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "lonely.png" in err and "--skip-unpaired" in err and not out.exists()
    assert main(args + ["--skip-unpaired"]) == 0
    assert "lonely.png" in capsys.readouterr().err  # still reported, as a warning
    assert len(json.loads(out.read_text())["training"]) == 1
    assert main(args + ["--skip-unpaired"]) == 1  # exists
    assert "--overwrite" in capsys.readouterr().err
    assert main(args + ["--skip-unpaired", "--overwrite"]) == 0


def test_cli_module_runs(tmp_path):
    splits = _fake_splits(tmp_path)
    out = tmp_path / "o.json"
    cmd = [
        sys.executable,
        "-m",
        "hkafusion_monai.data.datalist",
        "splits",
        "--splits",
        str(splits),
        "--task",
        "mri_spect",
        "--out",
        str(out),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert "training 2, validation 1, test 1" in r.stdout and "RuntimeWarning" not in r.stderr
    assert len(load_fusion_datalist(out, "validation")) == 1


@pytest.mark.parametrize(
    "task, counts", [("mri_ct", (147, 16, 21)), ("mri_pet", (245, 24, 42)), ("mri_spect", (281, 20, 73))]
)
def test_harvard_splits(harvard_dir, tmp_path, task, counts):
    spec = json.loads((harvard_dir / "splits.json").read_text())["tasks"][task]
    assert counts == tuple(len(spec[s]) for s in ("training", "validation", "test"))
    out = write_datalist(datalist_from_splits(harvard_dir / "splits.json", task), tmp_path / f"{task}.json")
    for split, n in zip(("training", "validation", "test"), counts, strict=True):
        items = load_fusion_datalist(out, split)
        assert len(items) == n
        assert os.path.isfile(items[0]["mri"]) and os.path.isfile(items[-1]["other"])
    excluded = {
        f"{task}/{e.rsplit('/', 1)[0]}/MRI/{e.rsplit('/', 1)[1]}" for e in spec["excluded_near_duplicates_of_test"]
    }
    listed = {it["mri"] for s in ("training", "validation", "test") for it in json.loads(out.read_text())[s]}
    assert not excluded & listed


def test_links_out_of_the_folder_given_are_skipped_with_one_warning(tmp_path, capsys):
    """A folder given is a trust boundary; a link inside it to a sibling's files or folder is not
    followed (one warning each)."""
    data = tmp_path / "data"
    study = make_task(data, "train", "PET", ["1"])
    sibling = make_task(data, "sibling", "PET", ["5", "6"])
    os.symlink(sibling / "MRI" / "5.png", study / "MRI" / "5.png")  # a file of the sibling
    os.symlink(sibling / "PET" / "5.png", study / "PET" / "5.png")
    os.symlink(sibling / "MRI", study / "mri")  # a second MRI folder (case-insensitive match), the sibling's
    dl = datalist_from_folders({"training": ["train"]}, base_dir=data)
    assert [(it["mri"], it["other"]) for it in dl["training"]] == [("train/MRI/1.png", "train/PET/1.png")]
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 3, warnings
    assert all("outside the input folder" in w and str(sibling) in w for w in warnings)
