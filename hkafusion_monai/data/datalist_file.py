"""A datalist file: its splits, the problems found while building one, and writing and reading it.

A datalist is a MONAI-style JSON file::

    {
      "base_dir": "../../shared/data/harvard",       # relative to this file's folder
      "modality": "PET",
      "training":   [{"mri": "mri_pet/train/MRI/25016.png", "other": "mri_pet/train/PET/25016.png",
                      "modality": "PET"}, ...],
      "validation": [...],
      "test":       [...]
    }

Paths are relative to the base directory, so a datalist moves with its data. A path may name a 2-D image
file, a NIfTI volume or a DICOM series folder (volumes are loaded by the volume transforms).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from hkafusion_monai.io.atomic import atomic_write
from hkafusion_monai.utils.errors import FusionInputError, InputNotFoundError, OptionError
from hkafusion_monai.utils.options import existing_path

__all__ = [
    "DATALIST_SPLITS",
    "DatalistError",
    "finish_datalist",
    "load_fusion_datalist",
    "relative",
    "report_problems",
    "warn",
    "write_datalist",
]

DATALIST_SPLITS = ("training", "validation", "test")


class DatalistError(ValueError):
    """Pairing problems (unpaired files, duplicate names, missing files), one per line in ``problems``."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(
            f"{len(self.problems)} problem(s) (pass --skip-unpaired to leave these out):\n  "
            + "\n  ".join(self.problems)
        )


def relative(path: Path, base_dir: Path) -> str:
    """``path`` relative to ``base_dir``, POSIX style (may start with ``..``)."""
    return Path(os.path.relpath(path.resolve(), base_dir.resolve())).as_posix()


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def report_problems(problems: Sequence[str], skip_unpaired: bool) -> None:
    """Raise :class:`DatalistError` for ``problems``, or, with ``skip_unpaired``, print each as a warning."""
    if problems and not skip_unpaired:
        raise DatalistError(problems)
    for p in problems:
        print(f"warning: skipped: {p}", file=sys.stderr)


def finish_datalist(
    splits: Mapping[str, list[tuple[Path, Path]]],
    problems: list[str],
    base_dir: Path,
    modality: str,
    skip_unpaired: bool,
    extra: Mapping[str, object] | None = None,
) -> dict:
    """Check for pairs listed twice, raise or warn about problems, and make the datalist dict."""
    seen: dict[tuple[Path, Path], str] = {}
    cleaned: dict[str, list[tuple[Path, Path]]] = {}
    for split, pairs in splits.items():
        cleaned[split] = []
        for pair in pairs:
            key = (pair[0].resolve(), pair[1].resolve())
            if key in seen:
                problems.append(f"duplicate: pair {pair[0]} / {pair[1]} is listed in {seen[key]} and in {split}")
                continue
            seen[key] = split
            cleaned[split].append(pair)
    report_problems(problems, skip_unpaired)
    out: dict = {"base_dir": str(base_dir.resolve()), "modality": modality}  # made relative on writing
    out.update(extra or {})
    for split in DATALIST_SPLITS:
        out[split] = [
            {"mri": relative(m, base_dir), "other": relative(o, base_dir), "modality": modality}
            for m, o in cleaned.get(split, [])
        ]
    return out


def write_datalist(datalist: Mapping, out: str | Path, overwrite: bool = False) -> Path:
    """Write ``datalist`` to ``out`` atomically (:func:`hkafusion_monai.io.atomic.atomic_write`).

    An absolute ``base_dir`` is stored relative to ``out``'s folder, so that the datalist and its data can
    move together. An existing ``out`` is kept (and ``FileExistsError`` raised) unless ``overwrite``.
    """
    out = Path(out)
    data = dict(datalist)
    if os.path.isabs(str(data.get("base_dir", ""))):
        data["base_dir"] = Path(os.path.relpath(data["base_dir"], out.parent.resolve())).as_posix()

    def dump(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())

    return atomic_write(out, dump, overwrite=overwrite)


def load_fusion_datalist(
    datalist: str | Path,
    split: str = "training",
    base_dir: str | Path | None = None,
    keys: Sequence[str] = ("mri", "other"),
    check_files: bool = True,
) -> list[dict]:
    """Read one split of a datalist with absolute paths, ready for a ``Dataset``; usable from a config.

    The base directory is ``base_dir`` if given, else the file's ``base_dir`` field taken relative to
    the datalist's folder, else that folder. Items are dicts ``{"mri", "other", "modality"}``.

    Example (bundle config)::

        "data": "$hkafusion_monai.data.load_fusion_datalist(@datalist, 'training')"

    Raises:
        InputNotFoundError: the datalist file is missing; with ``check_files``, inputs of the split are missing
            (every one named, with its item), before any is loaded (a training would otherwise stop at the
            first, in a loader worker, or while caching).
        FusionInputError: the file is not a JSON datalist.
        OptionError: the datalist has no ``split`` list.
    """
    path = existing_path(datalist, "--datalist")
    try:
        spec = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise FusionInputError(f"{path}: not a JSON datalist ({e})") from None
    if not isinstance(spec, dict):
        raise FusionInputError(f"{path}: not a datalist (a JSON object with 'training', 'validation', 'test' lists)")
    if split not in spec:
        lists = [k for k in spec if isinstance(spec[k], list)]
        raise OptionError(f"--datalist {path}: no {split!r} list; it has {lists}")
    if base_dir is None:
        base = path.parent / spec.get("base_dir", ".")
    else:
        base = Path(base_dir)
    items = []
    missing = []
    for i, item in enumerate(spec[split]):
        item = dict(item)
        for key in keys:
            if key in item and not os.path.isabs(item[key]):
                item[key] = os.path.normpath(base / item[key])
            if check_files and key in item and not os.path.exists(item[key]):
                missing.append(f"item {i} {key!r} {item[key]}")
        items.append(item)
    if missing:
        shown = "; ".join(missing[:5]) + (f"; and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise InputNotFoundError(f"{path}: {len(missing)} input(s) of the {split!r} list are missing: {shown}")
    return items


#: the task name of one model trained on every Harvard task (``configs/joint.json``)
