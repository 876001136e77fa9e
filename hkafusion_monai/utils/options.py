"""Command-line option values as the bundle configs receive them.

``python -m monai.bundle run ... --register false`` hands the config the *string* ``'false'`` (python-fire
turns only Python literals such as ``False`` into booleans), and ``bool('false')`` is True. Every boolean
option a config reads goes through :func:`as_bool`; options that take either a flag or a path (``--resume``,
``--pretrained``) go through :func:`path_or_flag`; an input path is checked by :func:`existing_path`. Each raises
the project's own error naming the option, so that the command ends with one ``error:`` line.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from hkafusion_monai.utils.errors import InputNotFoundError, OptionError

__all__ = ["as_bool", "existing_path", "option_name", "path_or_flag"]

_TRUE = frozenset({"true", "t", "yes", "y", "on", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "off", "0", "none", ""})


def option_name(name: str) -> str:
    """``"overwrite"`` -> ``"--overwrite"`` (how the command line spells a config id); other words as they are."""
    return f"--{name}" if name.isidentifier() else name


def as_bool(value: object, name: str = "option") -> bool:
    """``True``/``False`` from a bool, a number or a string such as ``'false'``, ``'0'``, ``'no'``, ``'True'``.

    Raises:
        OptionError: a string that is not a recognised boolean (a ValueError naming the option, ``--<name>``).
    """
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise OptionError(f"{option_name(name)}: expected a boolean (true/false, yes/no, 1/0), got {value!r}")


def path_or_flag(value: object, default: str | os.PathLike | None = None, name: str = "option") -> str | None:
    """The path an option names: ``None`` when it is off (``false``, ``0``, ``no``, ``None``), ``default`` when
    it is on (``true``, ``1``, ``yes``), otherwise the value itself as a path."""
    if value is None or isinstance(value, (bool, int, float)):
        return str(default) if value and default is not None else None
    text = str(value).strip()
    if text.lower() in _FALSE:
        return None
    if text.lower() in _TRUE:
        return None if default is None else str(default)
    return text


def existing_path(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` when it names an existing file or folder; otherwise one error naming it and ``what`` gave it
    (``"--mri"``, ``"item 3's 'other'"``), which says whether it is missing, a link that leads nowhere, or a loop
    of symbolic links (:func:`os.path.exists` says False for all three).

    Raises:
        InputNotFoundError: a FileNotFoundError (and a ValueError) naming the path.
    """
    try:
        os.stat(path)
    except FileNotFoundError:
        problem = "no such file or folder"
        if os.path.islink(path):
            problem = f"a symbolic link to {os.readlink(path)}, which does not exist"
        raise InputNotFoundError(f"{path}: missing {what} input ({problem})") from None
    except OSError as e:
        problem = "a loop of symbolic links" if e.errno == errno.ELOOP else (e.strerror or str(e))
        raise InputNotFoundError(f"{path}: {what} input cannot be read ({problem})") from None
    return Path(path)
