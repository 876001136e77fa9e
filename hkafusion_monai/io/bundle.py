"""Where the bundle's run-time files are, in a source checkout and in an installed wheel.

A source checkout (or an editable install) has the bundle beside the package: ``<repo>/bundle``. A wheel
has no ``bundle/`` folder; it carries the two files the package needs at run time, ``configs/inference.json``
(the network definition and the preprocessing settings) and ``configs/metadata.json`` (the version), as
package data under ``hkafusion_monai/_bundle/`` (copied there by ``setup.py`` when the wheel is built). The
weights are not packaged: a MAP or a user gives them (``-m``, ``HOLOSCAN_MODEL_PATH``, ``weights=``).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["BUNDLE_RUNTIME_FILES", "PACKAGED_BUNDLE", "SOURCE_BUNDLE", "default_bundle_dir"]

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
