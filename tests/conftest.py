"""Shared fixtures. Tests that need ``../shared`` skip when it is absent, and fail under CI
(:func:`tests.helpers.require_path`); the helpers the tests import are in ``tests/helpers.py``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.helpers import SHARED, require_path, small_phantom


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
    """The small synthetic phantom (:func:`tests.helpers.small_phantom`), generated once per session."""
    return small_phantom(tmp_path_factory)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of small-tensor tests: intra-op threads only add contention on 2 cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


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
