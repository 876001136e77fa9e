"""Datalists of MRI/other image pairs: build them (command line) and load them (configs).

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

Command line (``python -m hkafusion_monai.data.datalist -h``)::

    # from folders in the Harvard layout (<folder>/MRI/<name> pairs with <folder>/<CT|PET|SPECT>/<name>)
    python -m hkafusion_monai.data.datalist folders --base-dir DATA --training mri_pet/train \\
        --validation mri_pet/test --out pet.json

    # from the de-leaked split of the shared Harvard pairs
    python -m hkafusion_monai.data.datalist splits --splits ../shared/data/harvard/splits.json \\
        --task mri_pet --out pet.json

Unpaired files and duplicate names are reported by name and the command fails (exit status 1) unless
``--skip-unpaired`` is given, in which case they are left out with a warning. The output is written
atomically and an existing file is kept unless ``--overwrite`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

__all__ = [
    "DATALIST_SPLITS",
    "MODALITIES",
    "IMAGE_SUFFIXES",
    "DatalistError",
    "pair_folder",
    "datalist_from_folders",
    "datalist_from_splits",
    "write_datalist",
    "load_fusion_datalist",
    "main",
]

DATALIST_SPLITS = ("training", "validation", "test")
MODALITIES = ("CT", "PET", "SPECT")
MRI_FOLDER = "MRI"
# files a folder pair is built from; others (notes, CSVs, hidden files) are ignored
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


class DatalistError(ValueError):
    """Pairing problems (unpaired files, duplicate names, missing files), one per line in ``problems``."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(
            f"{len(self.problems)} problem(s) (pass --skip-unpaired to leave these out):\n  "
            + "\n  ".join(self.problems)
        )


def _rel(path: Path, base_dir: Path) -> str:
    """``path`` relative to ``base_dir``, POSIX style (may start with ``..``)."""
    return Path(os.path.relpath(path.resolve(), base_dir.resolve())).as_posix()


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


def _subfolder(folder: Path, name: str) -> Path | None:
    """The subfolder called ``name`` (case-insensitive), or None."""
    hits = [p for p in folder.iterdir() if p.is_dir() and p.name.upper() == name.upper()]
    return hits[0] if hits else None


def _by_stem(files: Iterable[Path], problems: list[str]) -> dict[str, Path]:
    """Files keyed by name without suffix; a name present twice (``a.png``, ``a.tif``) is a problem."""
    files = list(files)
    counts = Counter(p.stem for p in files)
    for stem, n in sorted(counts.items()):
        if n > 1:
            names = ", ".join(str(p) for p in files if p.stem == stem)
            problems.append(f"duplicate name {stem!r} in {files[0].parent}: {names}")
    return {p.stem: p for p in files if counts[p.stem] == 1}


def pair_folder(
    folder: str | Path,
    other: str | None = None,
    mri: str = MRI_FOLDER,
) -> tuple[list[tuple[Path, Path]], str, list[str]]:
    """Pair ``<folder>/<mri>/<name>`` with ``<folder>/<other>/<name>`` by file name (suffix ignored).

    Args:
        folder: a folder holding the MRI folder and one CT, PET or SPECT folder.
        other: name of the other modality's folder; default: the one of CT/PET/SPECT that exists.
        mri: name of the MRI folder.

    Returns:
        ``(pairs, other_folder_name, problems)``: the (mri, other) paths sorted by name, and one line per
        unpaired file or duplicate name.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatalistError([f"{folder}: folder not found"])
    mri_dir = _subfolder(folder, mri)
    if mri_dir is None:
        raise DatalistError([f"{folder}: no {mri!r} folder"])
    if other is None:
        found = [d for d in (_subfolder(folder, m) for m in MODALITIES) if d is not None]
        if len(found) != 1:
            what = "none" if not found else ", ".join(d.name for d in found)
            raise DatalistError(
                [f"{folder}: expected one of {', '.join(MODALITIES)} folders, found {what} (use --other)"]
            )
        other_dir = found[0]
    else:
        other_dir = _subfolder(folder, other)
        if other_dir is None:
            raise DatalistError([f"{folder}: no {other!r} folder"])
    problems: list[str] = []
    mris, others = _by_stem(_image_files(mri_dir), problems), _by_stem(_image_files(other_dir), problems)
    for stem in sorted(set(mris) - set(others)):
        problems.append(f"unpaired: {mris[stem]} has no partner in {other_dir}")
    for stem in sorted(set(others) - set(mris)):
        problems.append(f"unpaired: {others[stem]} has no partner in {mri_dir}")
    pairs = [(mris[s], others[s]) for s in sorted(set(mris) & set(others))]
    return pairs, other_dir.name, problems


def _modality_of(folder_name: str, modality: str | None) -> str:
    if modality:
        return modality.upper()
    if folder_name.upper() in MODALITIES:
        return folder_name.upper()
    raise DatalistError([f"cannot tell the modality from folder {folder_name!r}; pass --modality"])


def _finish(
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
    if problems:
        if not skip_unpaired:
            raise DatalistError(problems)
        for p in problems:
            print(f"warning: skipped: {p}", file=sys.stderr)
    out: dict = {"base_dir": str(base_dir.resolve()), "modality": modality}  # made relative on writing
    out.update(extra or {})
    for split in DATALIST_SPLITS:
        out[split] = [
            {"mri": _rel(m, base_dir), "other": _rel(o, base_dir), "modality": modality}
            for m, o in cleaned.get(split, [])
        ]
    return out


def datalist_from_folders(
    folders: Mapping[str, Sequence[str | Path]],
    base_dir: str | Path,
    other: str | None = None,
    mri: str = MRI_FOLDER,
    modality: str | None = None,
    skip_unpaired: bool = False,
) -> dict:
    """Build a datalist from folders in the Harvard layout, matched by file name.

    Args:
        folders: split name (``training``, ``validation``, ``test``) to folders, each relative to
            ``base_dir`` (or absolute) and holding ``MRI/`` and one ``CT/``, ``PET/`` or ``SPECT/``.
        base_dir: the directory the datalist's paths are relative to.
        other: name of the other modality's folder (default: found).
        mri: name of the MRI folder.
        modality: ``CT``, ``PET`` or ``SPECT`` (default: the other folder's name).
        skip_unpaired: leave unpaired files and duplicate names out (with a warning) instead of raising.

    Raises:
        DatalistError: listing every unpaired file and duplicate name.
    """
    base = Path(base_dir)
    problems: list[str] = []
    splits: dict[str, list[tuple[Path, Path]]] = {}
    modalities = set()
    for split, split_folders in folders.items():
        if split not in DATALIST_SPLITS:
            raise ValueError(f"unknown split {split!r}; use one of {DATALIST_SPLITS}")
        splits[split] = []
        for f in split_folders:
            pairs, other_name, found = pair_folder(base / f, other=other, mri=mri)
            problems += found
            splits[split] += pairs
            modalities.add(_modality_of(other_name, modality))
    if len(modalities) > 1:
        raise DatalistError([f"folders mix modalities {sorted(modalities)}; build one datalist per modality"])
    if not modalities:
        raise ValueError("no folders given")
    return _finish(splits, problems, base, modalities.pop(), skip_unpaired)


def datalist_from_splits(
    splits_json: str | Path,
    task: str,
    base_dir: str | Path | None = None,
    skip_unpaired: bool = False,
) -> dict:
    """Build a datalist from the shared Harvard ``splits.json`` (the de-leaked split).

    ``splits.json`` has ``tasks.<task>.modalities`` (``["MRI", "PET"]``) and the lists ``training``,
    ``validation`` and ``test`` of ``<split folder>/<file name>``; the pair is
    ``<task>/<split folder>/MRI/<name>`` and ``<task>/<split folder>/<other>/<name>`` under ``base_dir``.

    Args:
        splits_json: path to ``splits.json``.
        task: ``mri_ct``, ``mri_pet`` or ``mri_spect``.
        base_dir: the Harvard folder (default: the folder of ``splits.json``).
        skip_unpaired: leave out entries whose files are missing, or listed twice, instead of raising.

    Raises:
        DatalistError: listing every missing file and duplicate entry.
    """
    splits_json = Path(splits_json)
    spec = json.loads(splits_json.read_text())
    tasks = spec.get("tasks", {})
    if task not in tasks:
        raise ValueError(f"{splits_json}: no task {task!r}; it has {sorted(tasks)}")
    base = Path(base_dir) if base_dir is not None else splits_json.parent
    entry = tasks[task]
    mri_name, other_name = entry.get("modalities", [MRI_FOLDER, None])
    modality = _modality_of(other_name or "", None)
    problems: list[str] = []
    splits: dict[str, list[tuple[Path, Path]]] = {}
    for split in DATALIST_SPLITS:
        splits[split] = []
        names = entry.get(split, [])
        for name, n in sorted(Counter(names).items()):
            if n > 1:
                problems.append(f"duplicate: {name!r} is listed {n} times in {split} of {splits_json}")
        for name in dict.fromkeys(names):  # keeps order, drops repeats
            folder, _, fname = str(name).rpartition("/")
            m = base / task / folder / mri_name / fname
            o = base / task / folder / other_name / fname
            missing = [str(p) for p in (m, o) if not p.is_file()]
            if missing:
                problems.append(f"unpaired: {name!r} in {split}: missing {', '.join(missing)}")
                continue
            splits[split].append((m, o))
    extra = {"task": task, "source": str(splits_json.name)}
    return _finish(splits, problems, base, modality, skip_unpaired, extra)


def write_datalist(datalist: Mapping, out: str | Path, overwrite: bool = False) -> Path:
    """Write ``datalist`` to ``out`` atomically (a temporary file, then a rename or hard link).

    An absolute ``base_dir`` is stored relative to ``out``'s folder, so that the datalist and its data can
    move together. An existing ``out`` is kept (and ``FileExistsError`` raised) unless ``overwrite``.
    """
    out = Path(out)
    data = dict(datalist)
    if os.path.isabs(str(data.get("base_dir", ""))):
        data["base_dir"] = Path(os.path.relpath(data["base_dir"], out.parent.resolve())).as_posix()
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, out)
        else:
            try:
                os.link(tmp, out)  # fails if out appeared meanwhile: never clobbers
            except FileExistsError:
                raise FileExistsError(f"{out} exists; pass --overwrite to replace it") from None
            except OSError:  # no hard links on this file system
                if out.exists():
                    raise FileExistsError(f"{out} exists; pass --overwrite to replace it") from None
                os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def load_fusion_datalist(
    datalist: str | Path,
    split: str = "training",
    base_dir: str | Path | None = None,
    keys: Sequence[str] = ("mri", "other"),
) -> list[dict]:
    """Read one split of a datalist with absolute paths, ready for a ``Dataset``; usable from a config.

    The base directory is ``base_dir`` if given, else the file's ``base_dir`` field taken relative to
    the datalist's folder, else that folder. Items are dicts ``{"mri", "other", "modality"}``.

    Example (bundle config)::

        "data": "$hkafusion_monai.data.load_fusion_datalist(@datalist, 'training')"
    """
    path = Path(datalist)
    spec = json.loads(path.read_text())
    if split not in spec:
        raise KeyError(f"{path}: no {split!r} list; it has {[k for k in spec if isinstance(spec[k], list)]}")
    if base_dir is None:
        base = path.parent / spec.get("base_dir", ".")
    else:
        base = Path(base_dir)
    items = []
    for item in spec[split]:
        item = dict(item)
        for key in keys:
            if key in item and not os.path.isabs(item[key]):
                item[key] = os.path.normpath(base / item[key])
        items.append(item)
    return items


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m hkafusion_monai.data.datalist",
        description="Build a datalist JSON of MRI/other pairs (paths relative to --base-dir).",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", required=True, help="output datalist JSON")
    common.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    common.add_argument(
        "--skip-unpaired",
        action="store_true",
        help="leave out unpaired files and duplicate names (warn) instead of failing",
    )
    sub = parser.add_subparsers(dest="mode", required=True)

    f = sub.add_parser("folders", parents=[common], help="pair <folder>/MRI/<name> with <folder>/<CT|PET|SPECT>/<name>")
    f.add_argument("--base-dir", required=True, help="directory the datalist's paths are relative to")
    for split in DATALIST_SPLITS:
        f.add_argument(f"--{split}", nargs="+", default=[], metavar="FOLDER", help=f"folder(s) for the {split} list")
    f.add_argument("--mri", default=MRI_FOLDER, help="name of the MRI folder (default MRI)")
    f.add_argument("--other", default=None, help="name of the other folder (default: the CT/PET/SPECT one present)")
    f.add_argument("--modality", choices=MODALITIES, default=None, help="modality (default: the other folder's name)")

    s = sub.add_parser("splits", parents=[common], help="use the Harvard splits.json (de-leaked split)")
    s.add_argument("--splits", required=True, help="path to splits.json")
    s.add_argument("--task", required=True, help="mri_ct, mri_pet or mri_spect")
    s.add_argument("--base-dir", default=None, help="the Harvard folder (default: the folder of splits.json)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 1 problems found)."""
    args = _parser().parse_args(argv)
    out = Path(args.out)
    try:
        if out.exists() and not args.overwrite:
            raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
        if args.mode == "folders":
            folders = {s: getattr(args, s) for s in DATALIST_SPLITS if getattr(args, s)}
            if not folders:
                raise ValueError("give at least one of --training, --validation, --test")
            datalist = datalist_from_folders(
                folders,
                args.base_dir,
                other=args.other,
                mri=args.mri,
                modality=args.modality,
                skip_unpaired=args.skip_unpaired,
            )
        else:
            datalist = datalist_from_splits(args.splits, args.task, args.base_dir, skip_unpaired=args.skip_unpaired)
        write_datalist(datalist, out, overwrite=args.overwrite)
    except (DatalistError, FileExistsError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    counts = ", ".join(f"{s} {len(datalist[s])}" for s in DATALIST_SPLITS)
    print(f"wrote {out}: {datalist['modality']} pairs: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
