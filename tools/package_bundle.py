"""Package the MONAI bundle as a zip that runs where it is unpacked: ``python tools/package_bundle.py``.

The zip holds one folder, ``hkafusion_brain_fusion/`` (the bundle: ``configs/``, ``models/``, ``docs/``,
``LICENSE``), plus what the configs import: this repository's package as a wheel,
``wheels/hkafusion_monai-<version>-py3-none-any.whl`` (the version the bundle's ``metadata.json`` names in
``required_packages_version``), and ``requirements.txt``, which installs that wheel and the versions
``metadata.json`` names. Where it is unpacked::

    cd hkafusion_brain_fusion
    pip install -r requirements.txt
    python -m monai.bundle run inference --config_file configs/inference.json \\
        --mri MRI.png --other PET.png --task mri_pet

The wheel is built (``pip wheel --no-deps --no-build-isolation``) from a copy of the sources in a temporary
folder, so nothing is written into the checkout but the zip. Run outputs (``eval/``, ``runs/``) are left out.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

__all__ = ["BUNDLE_NAME", "build_wheel", "bundle_requirements", "main", "package_bundle"]

REPO = Path(__file__).resolve().parents[1]
#: the bundle's folder name in the zip (model-zoo style: what it does, on what)
BUNDLE_NAME = "hkafusion_brain_fusion"
#: bundle folders that hold run outputs, never packaged
_OUTPUTS = ("eval", "runs")
_PACKAGE = "hkafusion-monai"


def build_wheel(out_dir: Path, repo: Path = REPO) -> Path:
    """Build this project's wheel into ``out_dir`` from a copy of its sources (the files at the repository's top,
    the package, the bundle's configs); returns the wheel's path."""
    with tempfile.TemporaryDirectory(prefix="hkafusion-wheel-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for path in repo.iterdir():
            if path.is_file():
                shutil.copy(path, src / path.name)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "wheels", "_bundle")
        shutil.copytree(repo / "hkafusion_monai", src / "hkafusion_monai", ignore=ignore)
        shutil.copytree(repo / "bundle" / "configs", src / "bundle" / "configs")
        out_dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out_dir)]
        cmd.append(str(src))
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
        if proc.returncode != 0:
            raise RuntimeError(f"pip wheel failed:\n{proc.stderr[-3000:]}")
    wheels = sorted(out_dir.glob("hkafusion_monai-*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"expected one hkafusion_monai wheel in {out_dir}, found {[w.name for w in wheels]}")
    return wheels[0]


def bundle_requirements(metadata: dict, wheel: str) -> list[str]:
    """``requirements.txt`` lines of a bundle: MONAI (with ``fire``, which ``python -m monai.bundle`` needs) and
    PyTorch at the metadata's versions, every ``required_packages_version`` pinned, this project as ``wheel``."""
    lines = [f"monai[fire]=={metadata['monai_version']}", f"torch=={metadata['pytorch_version']}"]
    for name, version in metadata.get("required_packages_version", {}).items():
        lines.append(wheel if name == _PACKAGE else f"{name}=={version}")
    return lines


def package_bundle(out_dir: str | Path, repo: Path = REPO, name: str = BUNDLE_NAME) -> Path:
    """Write ``<out_dir>/<name>_v<version>.zip``; returns its path.

    Raises:
        ValueError: the wheel's version is not the one ``metadata.json`` requires.
    """
    bundle = repo / "bundle"
    metadata = json.loads((bundle / "configs" / "metadata.json").read_text(encoding="utf-8"))
    required = metadata.get("required_packages_version", {}).get(_PACKAGE)
    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="hkafusion-bundle-") as tmp:
        wheel = build_wheel(Path(tmp) / "dist", repo)
        version = wheel.name.split("-")[1]
        if version != required:
            raise ValueError(f"metadata.json requires {_PACKAGE} {required}, the wheel is {version}: update one")
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / f"{name}_v{metadata['version']}.zip"
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(bundle.rglob("*")):
                relative = path.relative_to(bundle)
                if not path.is_file() or relative.parts[0] in _OUTPUTS or "__pycache__" in relative.parts:
                    continue
                archive.write(path, f"{name}/{relative.as_posix()}")
            archive.write(wheel, f"{name}/wheels/{wheel.name}")
            requirements = bundle_requirements(metadata, f"./wheels/{wheel.name}")
            archive.writestr(f"{name}/requirements.txt", "\n".join(requirements) + "\n")
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(REPO / "dist"), help="folder of the zip (default: dist/)")
    args = parser.parse_args(argv)
    print(package_bundle(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
