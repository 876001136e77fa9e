"""Shared fixtures. Tests that need ``../shared`` skip when it is absent, and fail under CI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HKAFUSION_SHARED", REPO_ROOT.parent / "shared"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(msg: str) -> None:
    """Skip the test (locally) or fail it (under ``CI=true``), where CI provides what is missing."""
    if IN_CI:
        pytest.fail(f"CI: {msg}")
    pytest.skip(msg)


def require_path(path: Path, what: str) -> Path:
    """Return ``path`` if it exists; otherwise skip (locally) or fail (under ``CI=true``)."""
    if not path.exists():
        missing(f"{what} not found at {path} (set HKAFUSION_SHARED to the shared/ folder)")
    return path


def require_tool(name: str, package: str) -> str:
    """The path of command-line tool ``name``; skip (locally) or fail (under ``CI=true``) when it is absent."""
    import shutil

    path = shutil.which(name)
    if path is None:
        missing(f"{name} not found on PATH (Debian package {package}; .ci/run installs it)")
    return path


#: optional requirement files whose absence CI declares for a run (``HKAFUSION_CI_WITHOUT=requirements-deploy.txt``):
#: .ci/run runs the suite once before installing them, where their tests must skip, not fail
CI_WITHOUT = {f.strip() for f in os.environ.get("HKAFUSION_CI_WITHOUT", "").split(",") if f.strip()}


def _importable(name: str) -> bool:
    """Whether ``name`` can be imported; False also when a parent package is absent (where find_spec raises)."""
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # find_spec("a.b") imports "a" first
        return False


def require_module(name: str, requirement: str) -> None:
    """Import check for an optional dependency; skip (locally) or fail (under ``CI=true``) when absent.

    ``requirement`` starts with the requirements file that installs it (``"requirements-deploy.txt: ..."``);
    a file that CI declared absent (:data:`CI_WITHOUT`) skips under CI too."""
    if not _importable(name):
        msg = f"{name} is not installed ({requirement}; .ci/run installs it)"
        if requirement.split(":", 1)[0].strip() in CI_WITHOUT:
            pytest.skip(msg)
        missing(msg)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return require_path(SHARED, "the shared data folder")


@pytest.fixture(scope="session")
def harvard_dir(shared_dir: Path) -> Path:
    return require_path(shared_dir / "data" / "harvard", "the Harvard pairs")


@pytest.fixture(scope="session")
def reference_dir(shared_dir: Path) -> Path:
    return require_path(shared_dir / "reference", "the metric reference values")


@pytest.fixture(scope="session")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small synthetic phantom (tests/_phantom.py), generated once per session."""
    from _phantom import small_phantom

    return small_phantom(tmp_path_factory)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of small-tensor tests: intra-op threads only add contention on 2 cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def stop_process(proc, timeout: float = 20) -> None:
    """Terminate a server the test started, and kill it if it does not stop within ``timeout`` seconds."""
    import subprocess

    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session", autouse=True)
def _session_mlflow_home(tmp_path_factory: pytest.TempPathFactory):
    """The per-user MLflow store (``HKAFUSION_HOME``) in a temporary folder, never the real home: for the
    session-scoped fixtures, which run before any test's own."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HKAFUSION_HOME", str(tmp_path_factory.mktemp("hkafusion_home")))
        yield


@pytest.fixture(autouse=True)
def _mlflow_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's runs go to a store of its own, ``tmp_path/hkafusion_home/mlruns.db``
    (``hkafusion_monai.handlers.default_tracking_uri()``)."""
    monkeypatch.setenv("HKAFUSION_HOME", str(tmp_path / "hkafusion_home"))
