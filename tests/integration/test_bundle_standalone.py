"""The bundle on its own, as a model-zoo bundle runs: from its own folder with ``--dataset_dir``, from the
repository root as the README runs it, and from a zip (``tools/package_bundle.py``) unpacked elsewhere, with
the package installed from the wheel inside it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from monai.bundle import ConfigParser

from hkafusion_monai.data import DatalistError, bundle_root, dataset_datalist
from hkafusion_monai.utils import DataRootError, OptionError
from tests.helpers import BUNDLE, REPO

sys.path.insert(0, str(REPO / "tools"))
from package_bundle import BUNDLE_NAME, package_bundle  # noqa: E402

TRAIN_JSON = "configs/train.json"
INFERENCE_JSON = "configs/inference.json"
#: a smoke-sized training: two iterations of two 64x64 crops, one validation
SMOKE = [
    "--epochs",
    "1",
    "--epoch_length",
    "2",
    "--batch_size",
    "2",
    "--val_batch_size",
    "2",
    "--image_size",
    "[64, 64]",
    "--roi_size",
    "[64, 64]",
    "--num_workers",
    "0",
    "--cache_rate",
    "0.0",
    "--log_figures",
    "false",
    "--device",
    "$torch.device('cpu')",
]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MLFLOW_TRACKING_URI")}
    return {**env, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}


def _resolved(cwd: Path, files: list[str], key: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(cwd)
    parser = ConfigParser()
    parser.read_config(files)
    return parser.get_parsed_content(key)


def test_bundle_root_resolves_inside_the_bundle_and_from_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    """The repository-root form keeps its outputs under bundle/eval; inside the bundle, the model zoo's ``.``."""
    root = ["bundle/configs/train.json"]
    assert _resolved(REPO, root, "bundle_root", monkeypatch) == "bundle"
    assert _resolved(REPO, root, "output_dir", monkeypatch) == "bundle/eval"
    assert _resolved(REPO, [*root, "configs/demo.json"], "output_dir", monkeypatch) == "bundle/eval/demo"
    assert _resolved(REPO, ["bundle/configs/inference.json"], "ckpt_path", monkeypatch) == "bundle/models/model.pt"
    assert _resolved(BUNDLE, [TRAIN_JSON], "output_dir", monkeypatch) == "./eval"
    assert _resolved(BUNDLE, [INFERENCE_JSON], "ckpt_path", monkeypatch) == "./models/model.pt"
    with pytest.raises(OptionError, match="--bundle_root"):
        bundle_root(REPO / "docs")


def test_dataset_dir_names_the_phantom_or_the_harvard_pairs(phantom: Path, tmp_path: Path) -> None:
    assert dataset_datalist(phantom, "mri_spect", tmp_path) == str(phantom / "datalists" / "png_spect.json")
    with pytest.raises(OptionError, match="--task"):
        dataset_datalist(phantom, None, tmp_path)
    with pytest.raises(DataRootError, match="--datalist"):
        dataset_datalist(tmp_path, "mri_pet", tmp_path)
    # a Harvard folder (it holds splits.json) is read with the repository's split, which names what is missing
    (tmp_path / "splits.json").write_text(json.dumps({"tasks": {}}))
    with pytest.raises(
        DatalistError, match=r"(?s)unpaired: 'train/25016.png' in training: missing .*mri_pet/train/MRI"
    ):
        dataset_datalist(tmp_path, "mri_pet", tmp_path / "lists")


def test_training_runs_from_the_bundle_folder(phantom: Path, tmp_path: Path) -> None:
    """``cd bundle && python -m monai.bundle run training --config_file configs/train.json --dataset_dir ...``"""
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "monai.bundle",
        "run",
        "training",
        "--config_file",
        TRAIN_JSON,
        "--dataset_dir",
        str(phantom),
        "--task",
        "mri_pet",
        "--output_dir",
        str(out),
        *SMOKE,
    ]
    proc = subprocess.run(cmd, cwd=BUNDLE, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert (out / "checkpoints" / "model.pt").is_file()
    executed = json.loads((out / "executed_config.json").read_text())
    assert executed["dataset_dir"].startswith("<path sha256:")
    # the command line's overrides, as the workflow got them through python-fire
    assert (executed["task"], executed["epochs"], executed["epoch_length"]) == ("mri_pet", 1, 2)


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundle zip, unpacked in a temporary folder far from the checkout."""
    dist = tmp_path_factory.mktemp("dist")
    archive = package_bundle(dist)
    version = json.loads((BUNDLE / "configs" / "metadata.json").read_text())["version"]
    assert archive.name == f"{BUNDLE_NAME}_v{version}.zip"
    where = tmp_path_factory.mktemp("elsewhere")
    with zipfile.ZipFile(archive) as z:
        z.extractall(where)
    return where / BUNDLE_NAME


def test_the_bundle_zip_holds_the_bundle_and_the_wheel_it_requires(unpacked: Path) -> None:
    metadata = json.loads((unpacked / "configs" / "metadata.json").read_text())
    version = metadata["required_packages_version"]["hkafusion-monai"]
    wheel = unpacked / "wheels" / f"hkafusion_monai-{version}-py3-none-any.whl"
    assert wheel.is_file()
    requirements = (unpacked / "requirements.txt").read_text().splitlines()
    assert f"./wheels/{wheel.name}" in requirements and f"monai[fire]=={metadata['monai_version']}" in requirements
    for name in ("LICENSE", "configs/inference.json", "models/model.pt", "docs/README.md", "docs/data_license.txt"):
        assert (unpacked / name).is_file(), name
    assert not (unpacked / "eval").exists()


def test_the_unpacked_bundle_fuses_the_phantom_with_the_wheels_package(
    unpacked: Path, phantom: Path, tmp_path: Path
) -> None:
    """A new environment holding the zip's wheel (its dependencies from this one, as --system-site-packages
    would give them) runs the bundle's inference from the unpacked folder, with the shipped weights."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # the dependencies of this environment; its .pth files (this checkout's editable install) are not read
    (Path(site) / "_test_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    (wheel,) = (unpacked / "wheels").glob("*.whl")
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps"]
    proc = subprocess.run([*pip, str(wheel)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]

    out = unpacked / "eval" / "inference"
    cmd = [
        str(python),
        "-m",
        "monai.bundle",
        "run",
        "inference",
        "--config_file",
        INFERENCE_JSON,
        "--dataset_dir",
        str(phantom),
        "--task",
        "mri_pet",
        "--split",
        "test",
        "--progress",
        "false",
        "--device",
        "$torch.device('cpu')",
    ]
    proc = subprocess.run(cmd, cwd=unpacked, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    test_pairs = json.loads((phantom / "datalists" / "png_pet.json").read_text())["test"]
    assert len(list(out.glob("*.png"))) == len(test_pairs)
    where = subprocess.run(
        [python, "-c", "import hkafusion_monai; print(hkafusion_monai.__file__)"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(venv) and not Path(where).is_relative_to(REPO)
