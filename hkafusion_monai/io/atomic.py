"""Atomic file publication: write to a temporary file beside the target, then move it into place; and the
faults of the machine that a write meets (a full disk, a read-only file system), as one error naming the path.

Kept free of MONAI and torch imports: the datalist and phantom command-line tools use it and start fast.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from hkafusion_monai.io.formats import split_suffix
from hkafusion_monai.utils.cli import exception_chain
from hkafusion_monai.utils.errors import OptionError, OutputExistsError, StorageError

__all__ = [
    "MIN_FREE_BYTES",
    "atomic_write",
    "atomic_write_dir",
    "check_output_folder",
    "check_room",
    "make_output_dir",
    "storage_errors",
    "storage_fault",
]

#: the free space an output folder must have before a run starts (a run writes a few MB per pair or epoch)
MIN_FREE_BYTES = 64 << 20
#: the errors of the machine, not of the input, that a write meets, and what each means
STORAGE_FAULTS = {
    errno.ENOSPC: "the file system is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "no permission to write there",
    errno.EPERM: "no permission to write there",
}
#: SQLite's messages for the same faults (an MLflow store), as the sqlite3 module words them
_SQLITE_FAULTS = {
    "database or disk is full": errno.ENOSPC,
    "attempt to write a readonly database": errno.EROFS,
    "unable to open database file": errno.EACCES,
}
#: torch's C++ writer reports a full disk without an errno ("unexpected pos ...", "file write failed")
_NEARLY_FULL_BYTES = 1 << 20


def _free_bytes(path: Path) -> int | None:
    for folder in (path, *path.parents):
        if folder.is_dir():
            return shutil.disk_usage(folder).free
    return None


def _fault_errno(exc: BaseException, path: Path) -> tuple[int, str] | None:
    """``(errno, the system's words)`` when ``exc``'s chain holds a fault of the machine, else None."""
    chain = exception_chain(exc)
    for e in chain:
        if isinstance(e, OSError) and e.errno in STORAGE_FAULTS:
            return e.errno, e.strerror or os.strerror(e.errno)
        for words, code in _SQLITE_FAULTS.items():
            if words in str(e) and type(e).__name__ in ("OperationalError", "MlflowException"):
                return code, words
    if any(isinstance(e, RuntimeError) for e in chain):  # torch.save on a full disk
        free = _free_bytes(path)
        if free is not None and free < _NEARLY_FULL_BYTES:
            return errno.ENOSPC, os.strerror(errno.ENOSPC)
    return None


def storage_fault(exc: BaseException, path: str | os.PathLike) -> StorageError | None:
    """A :class:`StorageError` naming ``path`` when ``exc`` (or an error in its chain) is a fault of the machine
    that writing ``path`` met: an ``OSError`` ENOSPC, EDQUOT, EROFS, EACCES or EPERM (a full disk or quota, a
    read-only file system, no permission; Python's buffered writes raise them without a file name), SQLite's
    "database or disk is full" / "readonly database" (an MLflow store), or torch's writer failing on a file
    system with less than 1 MB left; the StorageError already in the chain, if any; else None."""
    for e in exception_chain(exc):
        if isinstance(e, StorageError):
            return e
    path = Path(path)
    fault = _fault_errno(exc, path)
    if fault is None:
        return None
    code, words = fault
    what = {errno.ENOSPC: "free some space", errno.EDQUOT: "free some space"}.get(code, "choose a writable place")
    return StorageError(f"{path}: cannot be written: {STORAGE_FAULTS[code]} ({words}); {what}")


@contextmanager
def storage_errors(path: str | os.PathLike) -> Iterator[None]:
    """Turn a fault of the machine raised inside the block (:func:`storage_fault`) into a
    :class:`StorageError` naming ``path``; other errors pass unchanged."""
    try:
        yield
    except Exception as e:
        fault = storage_fault(e, path)
        if fault is None or fault is e:
            raise
        raise fault from e


def check_room(path: str | os.PathLike, needed: int = MIN_FREE_BYTES, option: str = "--output_dir") -> Path:
    """Check, before a run starts, that the output folder ``path`` (or, while it does not exist, the nearest
    folder above it, where it will be created) can be written and has ``needed`` bytes free: a small file is
    written there and removed, and the file system's free space is read.

    Raises:
        StorageError: naming ``option``, the folder and the fault (read-only, no permission, full, too little
            space).
    """
    path = Path(path)
    folder = next((p for p in (path, *path.parents) if p.is_dir()), Path.cwd())
    with storage_errors(folder):
        fd, probe = tempfile.mkstemp(prefix=".hkafusion-probe.", dir=folder)
        try:
            os.write(fd, bytes(4096))
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise StorageError(
            f"{option} {path}: only {free / 2**20:.1f} MB free on its file system ({folder}), the run needs at "
            f"least {needed / 2**20:.0f} MB; free some space or choose another {option}"
        )
    return path


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


def make_output_dir(path: str | os.PathLike, option: str = "--output_dir", needed: int = MIN_FREE_BYTES) -> Path:
    """Create the output folder ``path`` (and its parents) after :func:`check_output_folder`, and check that it
    can be written and has room (:func:`check_room`)."""
    path = check_output_folder(path, option)
    with storage_errors(path):
        path.mkdir(parents=True, exist_ok=True)
    return check_room(path, needed, option)


def atomic_write(path: str | os.PathLike, write: Callable[[str], object], overwrite: bool = False) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path`` (same suffix), then move it to ``path``.

    Raises:
        OutputExistsError: ``path`` exists (or appears while writing) and ``overwrite`` is False (a
            FileExistsError).
        StorageError: the machine cannot take the write (:func:`storage_fault`): one line naming ``path``.
    """
    with storage_errors(path):
        return _atomic_write(_prepare(path, overwrite), write, overwrite)


def _atomic_write(path: Path, write: Callable[[str], object], overwrite: bool) -> Path:
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
        StorageError: the machine cannot take the write (:func:`storage_fault`): one line naming ``path``.
    """
    with storage_errors(path):
        return _atomic_write_dir(_prepare(path, overwrite), write, overwrite)


def _atomic_write_dir(path: Path, write: Callable[[str], object], overwrite: bool) -> Path:
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
