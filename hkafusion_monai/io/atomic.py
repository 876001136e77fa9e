"""Atomic file publication: write to a temporary file beside the target, then move it into place.

Kept free of MONAI and torch imports: the datalist and phantom command-line tools use it and start fast.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from hkafusion_monai.io.formats import split_suffix
from hkafusion_monai.utils.errors import OptionError, OutputExistsError

__all__ = ["atomic_write", "atomic_write_dir", "check_output_folder", "make_output_dir"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _prepare(path: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse an existing ``path`` unless ``overwrite``; create its parent folder."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} exists; pass --overwrite true (overwrite=True) to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def check_output_folder(path: str | os.PathLike, option: str = "--output_dir") -> Path:
    """``path`` when it can be an output folder: it is one, or it and its missing parents can be created.

    Raises:
        OptionError: ``path``, or one of its parents, is a file (a ValueError naming ``option`` and the file).
    """
    path = Path(path)
    for parent in (path, *path.parents):
        if parent.exists():
            if not parent.is_dir():
                what = "a file" if parent == path else f"{parent} is a file"
                raise OptionError(f"{option} {path}: {what}, not a folder; name a folder for the outputs")
            break
    return path


def make_output_dir(path: str | os.PathLike, option: str = "--output_dir") -> Path:
    """Create the output folder ``path`` (and its parents) after :func:`check_output_folder`."""
    path = check_output_folder(path, option)
    path.mkdir(parents=True, exist_ok=True)
    return path


def atomic_write(path: str | os.PathLike, write: Callable[[str], object], overwrite: bool = False) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path`` (same suffix), then move it to ``path``.

    Raises:
        OutputExistsError: ``path`` exists (or appears while writing) and ``overwrite`` is False (a
            FileExistsError).
    """
    path = _prepare(path, overwrite)
    exists = f"{path} exists; pass --overwrite true (overwrite=True) to replace it"
    stem, suffix = split_suffix(path.name)
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private; give it a normal file's mode
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # fails if path appeared meanwhile: never clobbers
            except FileExistsError:
                raise OutputExistsError(exists) from None
            except OSError:  # no hard links on this file system
                if path.exists():
                    raise OutputExistsError(exists) from None
                os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_dir(path: str | os.PathLike, write: Callable[[str], object], overwrite: bool = False) -> Path:
    """Call ``write(tmp_dir)`` on a temporary folder beside ``path``, then rename it to ``path``: a reader (a
    PACS import watching the folder) sees the whole series or nothing.

    Raises:
        OutputExistsError: ``path`` exists (or appears while writing) and ``overwrite`` is False (a
            FileExistsError).
    """
    path = _prepare(path, overwrite)
    exists = f"{path} exists; pass --overwrite true (overwrite=True) to replace it"
    tmp = tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    old, previous, published = None, None, False
    try:
        write(tmp)
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes the folder private
        if path.exists():
            if not overwrite:
                raise OutputExistsError(exists)
            old = tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent)
            previous = os.path.join(old, "previous")
            os.rename(path, previous)
        try:
            os.rename(tmp, path)  # atomic; refuses (ENOTEMPTY) rather than merging if path appeared meanwhile
        except OSError as e:
            if path.exists():
                raise OutputExistsError(exists) from e
            raise
        published = True
    finally:
        if previous is not None and not published and not path.exists():
            os.rename(previous, path)  # the new series did not land: put the old one back
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return path
