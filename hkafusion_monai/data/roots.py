"""Where the shared data lie: one setting, ``HKAFUSION_SHARED``, names the shared folder that holds the Harvard
pairs (``data/harvard``) and the reference values (``reference/``). Every overlay, workflow, benchmark and test
reads it through these functions; the default is ``../shared`` beside the checkout's working directory."""

from __future__ import annotations

import os
from pathlib import Path

from hkafusion_monai.utils import DataRootError

__all__ = ["SHARED_VARIABLE", "harvard_root", "reference_file", "shared_root"]

#: the one environment variable naming the data root
SHARED_VARIABLE = "HKAFUSION_SHARED"
_DEFAULT = "../shared"


def shared_root() -> str:
    """The shared folder: ``$HKAFUSION_SHARED``, else ``../shared`` (not checked: see :func:`harvard_root`)."""
    return os.environ.get(SHARED_VARIABLE) or _DEFAULT


def _setting() -> str:
    value = os.environ.get(SHARED_VARIABLE)
    return f"{SHARED_VARIABLE}={value}" if value else f"{SHARED_VARIABLE} is unset (default {_DEFAULT})"


def harvard_root() -> str:
    """``<shared>/data/harvard``, checked to hold ``splits.json``.

    Raises:
        DataRootError: one line naming the setting and the path tried.
    """
    root = Path(shared_root()) / "data" / "harvard"
    if not (root / "splits.json").is_file():
        raise DataRootError(
            f"no Harvard pairs at {root} (no splits.json there; {_setting()}): set {SHARED_VARIABLE} to the shared "
            "folder that holds data/harvard, or train on the phantom with configs/demo.json"
        )
    return str(root)


def reference_file(name: str) -> str:
    """``<shared>/reference/<name>`` (e.g. ``peer_results.json``); its absence is for the caller to judge."""
    return str(Path(shared_root()) / "reference" / name)
