"""The README's "Your own data" section, followed word for word on the phantom's folders: every command of its
code blocks runs as written (a datalist from 2-D pairs, from NIfTI volumes and from DICOM studies; two training
iterations; the evaluation of that run's checkpoint; fusion and Deploy with those weights), in a folder holding
``demo_data/`` and the repository's ``bundle/`` and ``configs/``.

The datalist commands run in the default suite (under a second each); the whole route starts the bundle
command six times and Deploy's twice, and is marked ``slow`` (213 s without Deploy, 386 s with it, on 2
busy CPU cores)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from hkafusion_monai.data.phantom import write_phantom
from hkafusion_monai.utils import file_sha256
from tests.helpers import REPO, require_module

SECTION = "Your own data"
TIMEOUT_S = 600


def section_commands(readme: Path = REPO / "README.md", title: str = SECTION) -> list[str]:
    """The shell commands of the ``bash`` code blocks under ``## <title>``, continuation lines joined,
    comments left out."""
    text = readme.read_text()
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", text, re.M | re.S)
    assert match, f"README.md has no section '## {title}'"
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", match.group(1), re.S):
        joined = re.sub(r"\\\n\s*", "", block)
        commands += [line.strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")]
    return commands


def _run(command: str, cwd: Path) -> subprocess.CompletedProcess:
    argv = shlex.split(command)
    assert argv[0] == "python", command
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, *argv[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
    )
    assert result.returncode == 0, f"{command}\nexit {result.returncode}\n{result.stderr[-3000:]}"
    return result


def _is_deploy(command: str) -> bool:
    return command.startswith("python -m hkafusion_monai.deploy")


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's working folder: the repository's bundle and overlays, and the demo's phantom data."""
    home = tmp_path_factory.mktemp("user")
    for name in ("bundle", "configs"):
        (home / name).symlink_to(REPO / name, target_is_directory=True)
    write_phantom(home / "demo_data", subjects=4, seed=0, size="small", png_slices=4)
    return home


def _is_datalist(command: str) -> bool:
    return command.startswith("python -m hkafusion_monai.data.datalist")


@pytest.fixture(scope="module")
def followed(user_dir: Path) -> Path:
    """Every command of the section but Deploy's, in order (Deploy's need requirements-deploy.txt)."""
    for command in section_commands():
        if not _is_deploy(command):
            _run(command, user_dir)
    return user_dir


def test_the_section_has_each_step() -> None:
    commands = section_commands()
    for step in ("datalist folders", "datalist subjects", "datalist dicom", "run training", "run evaluating"):
        assert any(step in c for c in commands), step
    # the volumes of the NIfTI and the DICOM datalists are trained on too, slice by slice
    for datalist in ("my_volumes.json", "my_studies.json"):
        assert any("train_volumes.json" in c and datalist in c for c in commands), datalist
    assert sum("run inference" in c for c in commands) == 3
    assert any(_is_deploy(c) for c in commands) and any("ckpt_export" in c for c in commands)


def test_the_datalist_commands_as_written(tmp_path: Path, user_dir: Path) -> None:
    (tmp_path / "demo_data").symlink_to(user_dir / "demo_data", target_is_directory=True)
    for command in filter(_is_datalist, section_commands()):
        _run(command, tmp_path)
    datalists = {n: json.loads((tmp_path / f"{n}.json").read_text()) for n in ("my_pairs", "my_volumes", "my_studies")}
    assert [len(datalists["my_pairs"][s]) for s in ("training", "validation", "test")] == [8, 4, 4]
    for name in ("my_volumes", "my_studies"):
        assert [len(datalists[name][s]) for s in ("training", "validation", "test")] == [2, 1, 1], name
    assert datalists["my_studies"]["test"][0]["other"].endswith("sub-003/PT"), datalists["my_studies"]["test"]


@pytest.mark.slow
def test_training_evaluation_and_fusion_as_written(followed: Path) -> None:
    ckpt = followed / "runs" / "my_pairs" / "checkpoints" / "model.pt"
    assert ckpt.is_file()
    # the evaluation scored that run's checkpoint, and its report says which
    (summary,) = (followed / "runs" / "my_pairs" / "evaluation").glob("*/summary.json")
    label = json.loads(summary.read_text())["checkpoint"]
    assert label == f"my_pairs/checkpoints/model.pt (sha256 {file_sha256(ckpt)[:12]})", label
    assert label in (summary.parent / "report.html").read_text()
    assert len(list((followed / "runs" / "fused_pairs").glob("*_fused.png"))) == 4
    assert len(list((followed / "runs" / "fused_volumes").glob("*_fused.nii.gz"))) == 1
    assert len(list((followed / "runs" / "fused_studies").glob("*_fused.nii.gz"))) == 1
    assert (followed / "runs" / "my_pairs" / "model.ts").is_file()
    for run in ("my_volumes", "my_studies"):  # slice by slice on the volumes of each datalist
        assert (followed / "runs" / run / "checkpoints" / "model.pt").is_file(), run


@pytest.mark.slow
def test_deploy_as_written(followed: Path) -> None:
    require_module("monai.deploy", "requirements-deploy.txt: the MONAI Deploy App SDK")
    for command in section_commands():
        if _is_deploy(command):
            _run(command, followed)
    for out in ("deployed", "deployed_ts"):
        assert list((followed / "runs" / out).rglob("*.dcm")), out
