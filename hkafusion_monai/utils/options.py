"""Command-line option values as the bundle configs receive them.

``python -m monai.bundle run ... --register false`` hands the config the *string* ``'false'`` (python-fire
turns only Python literals such as ``False`` into booleans), and ``bool('false')`` is True. Every boolean
option a config reads goes through :func:`as_bool`; options that take either a flag or a path (``--resume``,
``--pretrained``) go through :func:`path_or_flag`.
"""

from __future__ import annotations

import os

__all__ = ["as_bool", "path_or_flag"]

_TRUE = frozenset({"true", "t", "yes", "y", "on", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "off", "0", "none", ""})


def as_bool(value: object, name: str = "option") -> bool:
    """``True``/``False`` from a bool, a number or a string such as ``'false'``, ``'0'``, ``'no'``, ``'True'``.

    Raises:
        ValueError: a string that is not a recognised boolean (named in the message).
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
    raise ValueError(f"{name}: expected a boolean (true/false, yes/no, 1/0), got {value!r}")


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
