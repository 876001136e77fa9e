"""SHA-256 identities: what identifies a run's inputs, checkpoint and data without logging a path or file name,
which can identify patients."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["file_sha256", "inputs_summary", "name_digest"]


def _hash_path(h: Any, path: Path) -> None:
    """Feed a file's bytes into ``h``; a folder's files in sorted order, each preceded by its relative path; a
    path that cannot be read (a batch run's missing input, which the run names and skips) a marker."""
    if not path.exists():
        h.update(b"\0missing\0")
        return
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(f.relative_to(path).as_posix().encode() if path.is_dir() else b"")
        with f.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                h.update(block)


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file (the checkpoint's identity in the MLflow record), or of a folder's files."""
    h = hashlib.sha256()
    _hash_path(h, Path(path))
    return h.hexdigest()


def inputs_summary(items: Sequence[Mapping[str, Any]], keys: Sequence[str] = ("mri", "other")) -> dict[str, Any]:
    """Count and SHA-256 of an inference run's inputs (file bytes, in order; a DICOM folder's files sorted),
    enough to identify them without logging their paths, which can identify patients."""
    h = hashlib.sha256()
    for item in items:
        for key in keys:
            _hash_path(h, Path(str(item[key])))
    return {"inputs_count": len(items), "inputs_sha256": h.hexdigest()}


def name_digest(text: str) -> str:
    """A short, stable stand-in for a file or folder name that must not leave the site: 12 hex digits of its
    SHA-256."""
    return hashlib.sha256(str(text).encode("utf-8")).hexdigest()[:12]
