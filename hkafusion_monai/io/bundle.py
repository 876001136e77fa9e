"""Where the bundle's run-time files are, in a source checkout and in an installed wheel.

A source checkout (or an editable install) has the bundle beside the package: ``<repo>/bundle``. A wheel
has no ``bundle/`` folder; it carries the two files the package needs at run time, ``configs/inference.json``
(the network definition and the preprocessing settings) and ``configs/metadata.json`` (the version), as
package data under ``hkafusion_monai/_bundle/`` (copied there by ``setup.py`` when the wheel is built). The
weights are not packaged: a MAP or a user gives them (``-m``, ``HOLOSCAN_MODEL_PATH``, ``weights=``).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["BUNDLE_RUNTIME_FILES", "PACKAGED_BUNDLE", "SOURCE_BUNDLE", "bundle_dir_of", "default_bundle_dir"]

#: the bundle files the package needs at run time (relative to the bundle folder)
BUNDLE_RUNTIME_FILES = ("configs/inference.json", "configs/metadata.json")
#: the bundle of a source checkout or editable install
SOURCE_BUNDLE = Path(__file__).resolve().parents[2] / "bundle"
#: the run-time files packaged in the wheel
PACKAGED_BUNDLE = Path(__file__).resolve().parents[1] / "_bundle"


def default_bundle_dir() -> Path:
    """The source checkout's ``bundle/`` when this package runs from one, else the files packaged with it."""
    if (SOURCE_BUNDLE / BUNDLE_RUNTIME_FILES[0]).is_file():
        return SOURCE_BUNDLE
    return PACKAGED_BUNDLE


def bundle_dir_of(model_path: str | os.PathLike | None) -> Path | None:
    """The bundle folder a model path names, or ``None``: the folder itself when it holds
    ``configs/inference.json``, or the bundle of a weights file in its ``models/`` folder
    (``<bundle>/models/model.pt``). The Deploy application then runs that bundle's ``inference.json``."""
    if not model_path:
        return None
    path = Path(model_path)
    for candidate in (path, path.parent.parent if path.parent.name == "models" else None):
        if candidate is not None and (candidate / BUNDLE_RUNTIME_FILES[0]).is_file():
            return candidate
    return None
