"""The small phantom data set, generated once per test session and shared by the volume test modules.

The ``phantom`` fixture of ``conftest.py`` calls :func:`small_phantom`; the data is written once, into the
session's base temporary folder, and reused (also by tests that call it with their own factory).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hkafusion_monai.data.phantom import write_phantom

SUBJECTS, PNG_SLICES, SEED = 3, 2, 0


def small_phantom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<basetemp>/phantom-small``: 3 subjects (training, validation, test), MR 64x64x32, 2 PNG pairs each."""
    out = tmp_path_factory.getbasetemp() / "phantom-small"
    if not (out / "phantom.json").is_file():
        write_phantom(out, subjects=SUBJECTS, seed=SEED, size="small", png_slices=PNG_SLICES)
    return out
