"""The package as an integrator or a MAP gets it: the wheel, built from a copy of the sources and installed
into a new virtual environment in a temporary folder, runs the Deploy application away from the checkout.

The default test's environment takes its dependencies (torch, MONAI, the SDK, ...) from the test's own
environment through a path entry, as ``--system-site-packages`` would, so that it needs neither the network
nor minutes of installing; only ``hkafusion_monai`` comes from the wheel, and the test checks that it is
imported from there. The ``slow`` test installs everything into an isolated environment from the local
package sources (``pip`` finds them as configured on the machine).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from hkafusion_monai.io.bundle import BUNDLE_RUNTIME_FILES
from tests.helpers import (
    REPO,
    VERSION,
    check_derived_series,
    make_study,
    random_checkpoint,
    require_module,
    series_folders,
)

SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "LICENSE", "requirements-deploy.txt")


@pytest.fixture(scope="module", autouse=True)
def _sdk():
    require_module("monai.deploy.core", "requirements-deploy.txt: monai-deploy-app-sdk")


def build_wheel(tmp: Path) -> Path:
    """The project's wheel, built from a copy of its sources (nothing is written into the checkout)."""
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        shutil.copy(REPO / name, src / name)
    shutil.copytree(
        REPO / "hkafusion_monai", src / "hkafusion_monai", ignore=shutil.ignore_patterns("__pycache__", "wheels")
    )
    for relative in BUNDLE_RUNTIME_FILES:
        (src / "bundle" / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "bundle" / relative, src / "bundle" / relative)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(tmp / "dist"),
        str(src),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = (tmp / "dist").glob("hkafusion_monai-*.whl")
    return wheel


def make_venv(root: Path, wheel: Path, with_dependencies: bool) -> Path:
    """A virtual environment at ``root`` with the wheel installed; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    python = root / "bin" / "python"
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--disable-pip-version-check"]
    if with_dependencies:
        proc = subprocess.run([*pip, f"{wheel}[deploy]"], capture_output=True, text=True, timeout=1800)
    else:
        # the dependencies of this test environment, as --system-site-packages would give them; its .pth files
        # (this checkout's editable install among them) are not read from a path entry
        (site / "_test_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
        proc = subprocess.run([*pip, "--no-deps", str(wheel)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return python


def run_installed(python: Path, cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HKAFUSION_RULES")}
    environ.update(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", **env)
    return subprocess.run([str(python), *args], capture_output=True, text=True, timeout=600, cwd=cwd, env=environ)


def _check_installed_run(python: Path, tmp: Path, phantom: Path, checkpoint: Path) -> None:
    where = run_installed(
        python,
        tmp,
        {},
        "-c",
        "import hkafusion_monai, hkafusion_monai.io.bundle as b; "
        "print(hkafusion_monai.__file__); print(b.default_bundle_dir())",
    )
    assert where.returncode == 0, where.stderr[-2000:]
    module, bundle = where.stdout.split()
    assert Path(module).is_relative_to(python.parents[1]) and not Path(module).is_relative_to(REPO)
    assert bundle.endswith("hkafusion_monai/_bundle"), bundle
    # the start-up hook of `python -m monai.bundle` (Ctrl-C works from the first second) is installed,
    # and imports nothing elsewhere
    hook = run_installed(
        python,
        tmp,
        {},
        "-c",
        "import sys, sysconfig, pathlib; "
        "print((pathlib.Path(sysconfig.get_path('purelib')) / 'hkafusion_monai-cli.pth').is_file(), "
        "'hkafusion_monai' in sys.modules)",
    )
    assert hook.stdout.split() == ["True", "False"], hook.stderr[-2000:]

    # the MAP's way: paths from HOLOSCAN_*; the model a checkpoint, whose network the packaged config defines
    study = make_study(tmp / "study", phantom / "dicom" / "sub-002")
    models = tmp / "models"
    models.mkdir()
    shutil.copy(checkpoint, models / "model.pt")
    out = tmp / "out"
    env = {"HOLOSCAN_INPUT_PATH": str(study), "HOLOSCAN_OUTPUT_PATH": str(out), "HOLOSCAN_MODEL_PATH": str(models)}
    proc = run_installed(python, tmp, env, "-m", "hkafusion_monai.deploy")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert proc.stdout.startswith(f"HKAFusion {VERSION}: 3 derived series written"), proc.stdout  # the version it ran
    folders = series_folders(out)
    assert sorted(folders) == ["CT", "NM", "PT"]
    for modality, folder in folders.items():
        headers = check_derived_series(folder, study / "MR", study / modality)
        assert headers[0].SoftwareVersions == VERSION

    # a TorchScript model with -m loads without any config, and reports the version it carries
    ts = REPO / "bundle" / "models" / "model.ts"
    if ts.is_file():
        shutil.copy(ts, tmp / "model.ts")
        code = (
            "from hkafusion_monai.inference import load_fuser, bundle_version; "
            f"f = load_fuser(weights={str(tmp / 'model.ts')!r}, device='cpu', bundle_dir={str(tmp / 'no-bundle')!r}); "
            f"print(type(f.network).__name__, bundle_version({str(tmp / 'model.ts')!r}))"
        )
        proc = run_installed(python, tmp, {}, "-c", code)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stdout.split() == ["RecursiveScriptModule", VERSION]


def test_the_installed_wheel_runs_the_application(phantom, tmp_path, tmp_path_factory):
    """Wheel -> new environment in a temporary folder -> ``python -m hkafusion_monai.deploy`` there, on a
    study with MR, CT, PT and NM: three derived series on the MR grid (SimpleITK), dciodvfy-clean, naming the
    bundle version; the packaged configs, not the checkout's, define the network."""
    wheel = build_wheel(tmp_path)
    python = make_venv(tmp_path / "venv", wheel, with_dependencies=False)
    _check_installed_run(python, tmp_path, phantom, random_checkpoint(tmp_path_factory))


@pytest.mark.slow
def test_the_wheel_with_its_dependencies_in_an_isolated_environment(phantom, tmp_path, tmp_path_factory):
    """As above, in an environment holding only what ``pip install hkafusion_monai-*.whl[deploy]`` installs."""
    wheel = build_wheel(tmp_path)
    python = make_venv(tmp_path / "venv", wheel, with_dependencies=True)
    _check_installed_run(python, tmp_path, phantom, random_checkpoint(tmp_path_factory))
