"""Crash injection, reduced (the full run is ``python benchmarks/crash_injection.py``): bundle inference killed
with SIGKILL while it writes its derived series (and, marked slow, while its MLflow store is built); each time,
nothing partial is published and the same command then succeeds in the same folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.crash_injection import bundle_application, kill_and_rerun
from tests.helpers import random_checkpoint


@pytest.mark.parametrize("point", ["writing", pytest.param("store creation", marks=pytest.mark.slow)])
def test_a_killed_bundle_run_leaves_a_folder_the_next_run_completes(
    phantom: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, point: str
) -> None:
    app = bundle_application(tmp_path, phantom, random_checkpoint(tmp_path_factory))
    result = kill_and_rerun(app, tmp_path, point, None, timeout=300)
    assert result.phase == point, result
    assert not result.partial and result.rerun_rc == 0 and not result.rerun_problems, result
