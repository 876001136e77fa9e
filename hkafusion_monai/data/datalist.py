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

    # from folders of DICOM files: per study, the MR series paired with its CT, PET (PT) or SPECT (NM) series
    python -m hkafusion_monai.data.datalist dicom --base-dir DATA --training studies/train \\
        --test studies/test --modality PET --out pet_dicom.json

The rules of the ``dicom`` mode are in :func:`datalist_from_dicom`.

Unpaired files and duplicate names are reported by name and the command fails (exit status 1) unless
``--skip-unpaired`` is given, in which case they are left out with a warning. The output is written
atomically and an existing file is kept unless ``--overwrite`` is given. A symbolic link that leads out of a
folder given (``--training`` ...) is never followed: it is skipped with one warning
(:func:`hkafusion_monai.io.study.outside_link`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from hkafusion_monai.io.atomic import atomic_write
from hkafusion_monai.io.formats import IMAGE_SUFFIXES
from hkafusion_monai.io.study import outside_link, study_files
from hkafusion_monai.utils.errors import FusionInputError, InputNotFoundError, OptionError
from hkafusion_monai.utils.options import existing_path
from hkafusion_monai.utils.tasks import TASK_MODALITY

__all__ = [
    "DATALIST_SPLITS",
    "MODALITIES",
    "IMAGE_SUFFIXES",
    "DatalistError",
    "pair_folder",
    "datalist_from_folders",
    "datalist_from_splits",
    "datalist_from_dicom",
    "write_datalist",
    "load_fusion_datalist",
    "harvard_datalist",
    "main",
]

DATALIST_SPLITS = ("training", "validation", "test")
MODALITIES = tuple(TASK_MODALITY.values())  # the secondary modalities: CT, PET, SPECT
MRI_FOLDER = "MRI"
# files a folder pair is built from; others (notes, CSVs, hidden files) are ignored


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


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _inside(paths: Iterable[Path], root: Path) -> list[Path]:
    """``paths`` less the symbolic links that lead out of ``root``, each skipped with one warning."""
    kept = []
    for p in paths:
        outside = outside_link(p, root)
        if outside is None:
            kept.append(p)
        else:
            _warn(outside)
    return kept


def _image_files(folder: Path, root: Path) -> list[Path]:
    names = [p for p in folder.iterdir() if not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(p for p in _inside(names, root) if p.is_file())


def _subfolder(subfolders: Sequence[Path], name: str) -> Path | None:
    """The one of ``subfolders`` called ``name`` (case-insensitive), or None."""
    hits = [p for p in subfolders if p.name.upper() == name.upper()]
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
    subfolders = [p for p in _inside(sorted(folder.iterdir()), folder) if p.is_dir()]
    mri_dir = _subfolder(subfolders, mri)
    if mri_dir is None:
        raise DatalistError([f"{folder}: no {mri!r} folder"])
    if other is None:
        found = [d for d in (_subfolder(subfolders, m) for m in MODALITIES) if d is not None]
        if len(found) != 1:
            what = "none" if not found else ", ".join(d.name for d in found)
            raise DatalistError(
                [f"{folder}: expected one of {', '.join(MODALITIES)} folders, found {what} (use --other)"]
            )
        other_dir = found[0]
    else:
        other_dir = _subfolder(subfolders, other)
        if other_dir is None:
            raise DatalistError([f"{folder}: no {other!r} folder"])
    problems: list[str] = []
    mris = _by_stem(_image_files(mri_dir, folder), problems)
    others = _by_stem(_image_files(other_dir, folder), problems)
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


def _study_pair(
    study: Sequence,
    wanted: Sequence[str],
    mri_description: str | None,
    other_description: str | None,
    min_slices: int,
) -> tuple[tuple | None, str | None]:
    """Pair one study's series by the documented rules; returns ``((mri, other, register), None)`` or
    ``(None, problem)``."""
    import re

    from hkafusion_monai.io.dicom import order_series
    from hkafusion_monai.utils.errors import FusionInputError

    usable, ignored = [], []
    for s in study:
        reason = None
        if "LOCALIZER" in s.image_type:
            reason = "a localizer"
        elif sum(max(1, sl.frames) for sl in s.slices) < min_slices:  # a multi-frame NM object holds many
            reason = f"{sum(max(1, sl.frames) for sl in s.slices)} slice(s), fewer than {min_slices}"
        elif len(s.folders) > 1:
            reason = "its files are spread over several folders"
        else:
            try:
                order_series(s)
            except FusionInputError as e:
                reason = f"not one regular volume: {str(e).split(': ', 1)[-1]}"
        if reason:
            ignored.append(f"ignored {s.summary()}: {reason}")
        else:
            usable.append(s)

    def matches(s, pattern: str | None) -> bool:
        return pattern is None or re.search(pattern, s.description, flags=re.IGNORECASE) is not None

    mris = [s for s in usable if s.modality == "MR" and matches(s, mri_description)]
    others = [s for s in usable if s.modality in wanted and matches(s, other_description)]
    first = study[0]
    folder = os.path.commonpath([str(f) for s in study for f in s.folders])
    where = f"study {first.study_uid} (patient {first.patient_id or '?'}) in {folder}"
    notes = "".join(f"\n    {line}" for line in ignored)
    if not mris or not others:
        missing = "MR" if not mris else "/".join(wanted)
        return None, f"unpaired: {where} has no {missing} series to pair{notes}"
    pairs = [
        (m, o)
        for m in mris
        for o in others
        if m.frame_of_reference_uid and m.frame_of_reference_uid == o.frame_of_reference_uid
    ]
    register = not pairs
    if register:  # nothing shares the MR's frame of reference: pair anyway, marked for registration
        pairs = [(m, o) for m in mris for o in others]
    if len(pairs) > 1:
        listed = "".join(f"\n    MR candidate: {m.summary()}" for m in mris)
        listed += "".join(f"\n    other candidate: {o.summary()}" for o in others)
        return None, (
            f"ambiguous: {where} gives {len(pairs)} candidate pairs; narrow them with --modality, "
            f"--mri-description or --other-description{listed}{notes}"
        )
    return (*pairs[0], register), None


def datalist_from_dicom(
    folders: Mapping[str, Sequence[str | Path]],
    base_dir: str | Path,
    modality: str | None = None,
    mri_description: str | None = None,
    other_description: str | None = None,
    min_slices: int = 2,
    skip_unpaired: bool = False,
) -> dict:
    """Build a datalist from folders of DICOM files: per study, the MR series and its CT/PET/SPECT series.

    Every DICOM file below each folder is read (headers only) and grouped into series, and the series
    into studies (``StudyInstanceUID``). In each study:

    1. Candidates are image series that form one regular volume (the loader's checks: one orientation,
       even spacing, ...), have at least ``min_slices`` slices, lie in one folder and are not localizers;
       other series are ignored (and listed in any problem about the study).
    2. The MR candidates are the ``MR`` series (whose ``SeriesDescription`` matches ``mri_description``,
       a case-insensitive regular expression, if given); the other candidates are the ``CT``, ``PT``
       (PET) and ``NM`` (SPECT) series, only those of ``modality`` if given (and matching
       ``other_description``).
    3. Pairs of an MR and an other candidate with the same ``FrameOfReferenceUID`` are preferred; if no
       pair shares one, every combination is a candidate and the item gets ``"register": true``, which
       switches on :class:`~hkafusion_monai.transforms.RigidRegisterd` for it.
    4. Exactly one candidate pair must remain. A study with none (no MR, or no other series) is unpaired;
       one with several is ambiguous, and the problem lists every candidate. Both are errors unless
       ``skip_unpaired``.

    Items are ``{"mri", "other", "modality", "mri_series_uid", "other_series_uid", "study_uid",
    "patient_id"}`` (plus ``"register": true``), with the series folders relative to ``base_dir``; the
    series UIDs let the loader pick the series when a folder holds several.

    Args:
        folders: split name to folders (relative to ``base_dir`` or absolute), each searched recursively.
        base_dir: the directory the datalist's paths are relative to.
        modality: ``CT``, ``PET`` or ``SPECT``: pair only that modality (needed when studies hold several).
        mri_description: regular expression the MR series' ``SeriesDescription`` must match.
        other_description: the same for the other series.
        min_slices: the fewest slices a candidate series may have.
        skip_unpaired: leave unpaired and ambiguous studies out (with a warning) instead of raising.

    Raises:
        DatalistError: listing every unpaired or ambiguous study, unreadable file, and pairs of mixed
            modalities.
    """
    from hkafusion_monai.io.dicom import DICOM_MODALITIES, scan_dicom

    base = Path(base_dir)
    tags = {v: k for k, v in DICOM_MODALITIES.items() if v != "MRI"}  # PET -> PT ...
    if modality is not None and modality.upper() not in tags:
        raise ValueError(f"modality must be one of {sorted(tags)}, got {modality!r}")
    wanted = [tags[modality.upper()]] if modality else sorted(tags.values())
    problems: list[str] = []
    items: dict[str, list[dict]] = {}
    seen: dict[tuple[str, str], str] = {}
    for split, split_folders in folders.items():
        if split not in DATALIST_SPLITS:
            raise ValueError(f"unknown split {split!r}; use one of {DATALIST_SPLITS}")
        items[split] = []
        for folder in split_folders:
            root = base / folder
            if not root.is_dir():
                problems.append(f"{root}: folder not found")
                continue
            studies: dict[str, list] = {}
            files, skipped = study_files(root)  # links out of the folder, and loops, are not followed
            for line in skipped:
                _warn(line)
            files = [f for f in files if f.name.upper() != "DICOMDIR"]
            for s in scan_dicom(files, errors=problems):
                studies.setdefault(s.study_uid, []).append(s)
            if not studies:
                problems.append(f"{root}: no DICOM image series found")
            for study in sorted(studies.values(), key=lambda ss: (str(ss[0].folders[0]), ss[0].study_uid)):
                pair, problem = _study_pair(study, wanted, mri_description, other_description, min_slices)
                if problem:
                    problems.append(problem)
                    continue
                mri, other, register = pair
                key = (mri.series_uid, other.series_uid)
                if key in seen:
                    problems.append(
                        f"duplicate: MR {mri.series_uid} / {other.series_uid} is listed in {seen[key]} and in {split}"
                    )
                    continue
                seen[key] = split
                item = {
                    "mri": _rel(mri.folders[0], base),
                    "other": _rel(other.folders[0], base),
                    "modality": DICOM_MODALITIES[other.modality],
                    "mri_series_uid": mri.series_uid,
                    "other_series_uid": other.series_uid,
                    "study_uid": mri.study_uid,
                    "patient_id": mri.patient_id,
                }
                if register:
                    item["register"] = True
                items[split].append(item)
    modalities = sorted({it["modality"] for split_items in items.values() for it in split_items})
    if len(modalities) > 1:
        problems.append(f"studies mix modalities {modalities}; pass --modality to build one datalist per modality")
    if problems:
        if not skip_unpaired or len(modalities) > 1:
            raise DatalistError(problems)
        for p in problems:
            print(f"warning: skipped: {p}", file=sys.stderr)
    if not modalities and not modality:
        raise DatalistError(problems or ["no MR/CT/PET/SPECT pairs found"])
    out: dict = {"base_dir": str(base.resolve()), "modality": modalities[0] if modalities else modality.upper()}
    out["source"] = "dicom"
    for split in DATALIST_SPLITS:
        out[split] = items.get(split, [])
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
JOINT_TASK = "joint"


def harvard_datalist(splits_json: str | Path, task: str, out_dir: str | Path) -> str:
    """Write ``<out_dir>/<task>.json`` from the Harvard ``splits.json`` (the de-leaked split) and return its path.

    For the bundle's task overlays (``configs/harvard.json`` with ``--task``, ``configs/joint.json``): the datalist is rebuilt at
    every run, so it always matches the ``splits.json`` it names, and any missing file is reported by
    :func:`datalist_from_splits`. ``task="joint"`` concatenates every task of ``splits.json``, split by split;
    each item keeps its own ``modality``, and the top-level ``modality`` lists them joined by ``+``.
    """
    if task != JOINT_TASK:
        datalist = datalist_from_splits(splits_json, task)
    else:
        tasks = sorted(json.loads(Path(splits_json).read_text()).get("tasks", {}))
        parts = [datalist_from_splits(splits_json, t) for t in tasks]
        datalist = {
            "base_dir": parts[0]["base_dir"],
            "modality": "+".join(p["modality"] for p in parts),
            "task": JOINT_TASK,
            "tasks": tasks,
            "source": Path(splits_json).name,
        }
        for split in DATALIST_SPLITS:
            datalist[split] = [item for p in parts for item in p[split]]
    return str(write_datalist(datalist, Path(out_dir) / f"{task}.json", overwrite=True))


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

    d = sub.add_parser(
        "dicom", parents=[common], help="pair, per DICOM study, the MR series with its CT/PT/NM series (tags)"
    )
    d.add_argument("--base-dir", required=True, help="directory the datalist's paths are relative to")
    for split in DATALIST_SPLITS:
        d.add_argument(
            f"--{split}", nargs="+", default=[], metavar="FOLDER", help=f"DICOM folder(s) for the {split} list"
        )
    d.add_argument("--modality", choices=MODALITIES, default=None, help="pair only this modality")
    d.add_argument("--mri-description", default=None, metavar="REGEX", help="the MR SeriesDescription must match")
    d.add_argument("--other-description", default=None, metavar="REGEX", help="the other SeriesDescription must match")
    d.add_argument("--min-slices", type=int, default=2, help="fewest slices of a candidate series (default 2)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 1 problems found)."""
    args = _parser().parse_args(argv)
    out = Path(args.out)
    try:
        if out.exists() and not args.overwrite:
            raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
        if args.mode in ("folders", "dicom"):
            folders = {s: getattr(args, s) for s in DATALIST_SPLITS if getattr(args, s)}
            if not folders:
                raise ValueError("give at least one of --training, --validation, --test")
        if args.mode == "folders":
            datalist = datalist_from_folders(
                folders,
                args.base_dir,
                other=args.other,
                mri=args.mri,
                modality=args.modality,
                skip_unpaired=args.skip_unpaired,
            )
        elif args.mode == "dicom":
            datalist = datalist_from_dicom(
                folders,
                args.base_dir,
                modality=args.modality,
                mri_description=args.mri_description,
                other_description=args.other_description,
                min_slices=args.min_slices,
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
