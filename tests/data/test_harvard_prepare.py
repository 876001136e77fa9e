"""The Harvard split lives in the repository (file names and checksums, no images), and
``python -m hkafusion_monai.data.harvard prepare --from <folder>`` builds the Harvard folder from a copy of the
public images, naming every listed image that is missing or differs on one line."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from hkafusion_monai.data import dataset_datalist, harvard
from hkafusion_monai.data.harvard import SPLITS_FILE, main


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def fake_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """A split of two pairs (four images), the public copy in another layout: one image missing, one with other
    bytes under its own name."""
    images = {
        key: f"image {i}".encode()
        for i, key in enumerate(
            ["mri_pet/train/MRI/1.png", "mri_pet/train/PET/1.png", "mri_pet/test/MRI/2.png", "mri_pet/test/PET/2.png"]
        )
    }
    spec = {
        "tasks": {
            "mri_pet": {
                "modalities": ["MRI", "PET"],
                "training": ["train/1.png"],
                "validation": [],
                "test": ["test/2.png"],
            }
        },
        "files": {k: {"sha256": hashlib.sha256(v).hexdigest(), "source": f"upstream:{k}"} for k, v in images.items()},
    }
    spec_file = tmp_path / "harvard_splits.json"
    spec_file.write_text(json.dumps(spec))
    monkeypatch.setattr(harvard, "SPLITS_FILE", spec_file)
    source = tmp_path / "downloads"
    for key, data in images.items():
        if key == "mri_pet/test/PET/2.png":
            continue  # missing
        upstream = source / "MyDatasets" / "PET-MRI" / key.split("/", 1)[1]
        upstream.parent.mkdir(parents=True, exist_ok=True)
        upstream.write_bytes(b"re-encoded" if key == "mri_pet/train/PET/1.png" else data)
    return {"source": source, "images": images, "spec": spec_file}


def test_prepare_names_each_missing_and_differing_image_in_one_line(fake_split, tmp_path, capsys) -> None:
    source, dest = fake_split["source"], tmp_path / "data" / "harvard"
    before = {p: _digest(p) for p in source.rglob("*") if p.is_file()}
    assert main(["prepare", "--from", str(source), "--to", str(dest)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3, lines
    assert (
        lines[1].startswith("differs: mri_pet/train/PET/1.png: ")
        and "PET-MRI/train/PET/1.png has other bytes" in lines[1]
    )
    assert lines[0] == "missing: mri_pet/test/PET/2.png (published as upstream:mri_pet/test/PET/2.png)"
    assert lines[2].startswith(f"error: {dest}: 2 of 4 listed images missing or differing")
    # the two good images are in the Harvard layout, byte for byte; the copy given is untouched
    for key in ("mri_pet/train/MRI/1.png", "mri_pet/test/MRI/2.png"):
        assert (dest / key).read_bytes() == fake_split["images"][key]
    assert not (dest / "mri_pet/train/PET/1.png").exists() and not (dest / "mri_pet/test/PET/2.png").exists()
    assert {p: _digest(p) for p in source.rglob("*") if p.is_file()} == before
    # the user adds the two; a second run copies them and keeps the rest
    (source / "fixed").mkdir()
    for key in ("mri_pet/train/PET/1.png", "mri_pet/test/PET/2.png"):
        (source / "fixed" / key.replace("/", "_")).write_bytes(fake_split["images"][key])
    assert main(["prepare", "--from", str(source), "--to", str(dest)]) == 0
    assert capsys.readouterr().out.strip() == f"{dest}: 4 images in place (2 copied, 2 already there), and splits.json"
    assert json.loads((dest / "splits.json").read_text()) == json.loads(fake_split["spec"].read_text())


def test_a_missing_source_folder_writes_nothing(tmp_path, capsys) -> None:
    assert main(["prepare", "--from", str(tmp_path / "nowhere"), "--to", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err.strip() == f"error: --from {tmp_path / 'nowhere'}: not a folder"
    assert not (tmp_path / "out").exists()


def test_the_repository_split_lists_every_image_with_its_checksum() -> None:
    spec = json.loads(SPLITS_FILE.read_text())
    files = spec["files"]
    for task, entry in spec["tasks"].items():
        for split in ("training", "validation", "test"):
            for listed in entry[split]:
                folder, name = listed.split("/")
                for modality in entry["modalities"]:
                    assert len(files[f"{task}/{folder}/{modality}/{name}"]["sha256"]) == 64
    assert len(files) == 2 * 869
    assert not list(SPLITS_FILE.parent.glob("*.png")), "no images in the repository"


def test_the_shared_harvard_folder_matches_the_repository_split(harvard_dir: Path, tmp_path: Path) -> None:
    """The shared copy (CI's) is what the split's checksums describe, and its datalists come from the repository."""
    assert (
        json.loads((harvard_dir / "splits.json").read_text())["tasks"] == json.loads(SPLITS_FILE.read_text())["tasks"]
    )
    assert main(["prepare", "--from", str(harvard_dir), "--to", str(tmp_path / "harvard")]) == 0
    written = json.loads(Path(dataset_datalist(tmp_path / "harvard", "mri_spect", tmp_path / "lists")).read_text())
    assert [len(written[s]) for s in ("training", "validation", "test")] == [281, 20, 73]
    assert written["source"] == SPLITS_FILE.name
