"""Datalists of file pairs: 2-D images in folders of the Harvard layout (``<folder>/MRI/<name>`` pairs with
``<folder>/<CT|PET|SPECT>/<name>``, matched by file name), NIfTI volumes in one folder per subject
(``<subject>/mri.nii.gz`` pairs with ``<subject>/pet.nii.gz``), and the de-leaked split of the Harvard pairs
(``splits.json``).

A symbolic link that leads out of a folder given is never followed: it is skipped with one warning
(:func:`hkafusion_monai.io.study.outside_link`).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from hkafusion_monai.data.datalist_file import DATALIST_SPLITS, DatalistError, finish_datalist, warn, write_datalist
from hkafusion_monai.io.formats import IMAGE_SUFFIXES, NIFTI_SUFFIXES, split_suffix
from hkafusion_monai.io.study import outside_link
from hkafusion_monai.utils.tasks import TASK_MODALITY

__all__ = [
    "JOINT_TASK",
    "MODALITIES",
    "MRI_FOLDER",
    "datalist_from_folders",
    "datalist_from_splits",
    "datalist_from_subjects",
    "harvard_datalist",
    "pair_folder",
]

MODALITIES = tuple(TASK_MODALITY.values())  # the secondary modalities: CT, PET, SPECT
MRI_FOLDER = "MRI"
#: the task name of one model trained on every Harvard task (``configs/joint.json``)
JOINT_TASK = "joint"


def _inside(paths: Iterable[Path], root: Path) -> list[Path]:
    """``paths`` less the symbolic links that lead out of ``root``, each skipped with one warning."""
    kept = []
    for p in paths:
        outside = outside_link(p, root)
        if outside is None:
            kept.append(p)
        else:
            warn(outside)
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
        named = _subfolder(subfolders, other)
        if named is None:
            raise DatalistError([f"{folder}: no {other!r} folder"])
        other_dir = named
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
    return finish_datalist(splits, problems, base, modalities.pop(), skip_unpaired)


def _subject_volume(subject: Path, name: str, problems: list[str]) -> Path | None:
    """The one NIfTI file ``<subject>/<name>.nii(.gz)`` (name case-insensitive), or None with a problem said."""
    found = [
        p
        for p in _inside(sorted(subject.iterdir()), subject)
        if p.is_file()
        and split_suffix(p.name)[1].lower() in NIFTI_SUFFIXES
        and split_suffix(p.name)[0].lower() == name.lower()
    ]
    if len(found) == 1:
        return found[0]
    problems.append(
        f"unpaired: {subject} has no {name}.nii.gz or {name}.nii"
        if not found
        else f"duplicate name {name!r} in {subject}: {', '.join(str(p) for p in found)}"
    )
    return None


def datalist_from_subjects(
    subjects: Mapping[str, Sequence[str | Path]],
    base_dir: str | Path,
    modality: str,
    mri: str = "mri",
    other: str | None = None,
    skip_unpaired: bool = False,
) -> dict:
    """Build a datalist of NIfTI volume pairs, one folder per subject (the phantom's ``nifti/sub-000/`` layout).

    Args:
        subjects: split name to subject folders, each relative to ``base_dir`` (or absolute) and holding
            ``<mri>.nii.gz`` (or ``.nii``) and ``<other>.nii.gz``.
        base_dir: the directory the datalist's paths are relative to.
        modality: ``CT``, ``PET`` or ``SPECT``.
        mri: the MRI file's name without suffix (case-insensitive).
        other: the other file's name without suffix; default: the modality in lower case (``pet``).
        skip_unpaired: leave out subjects missing a file (with a warning) instead of raising.

    Raises:
        DatalistError: listing every subject folder that lacks a file or holds two of one name.
    """
    modality = _modality_of("", modality)
    other = other or modality.lower()
    base = Path(base_dir)
    problems: list[str] = []
    splits: dict[str, list[tuple[Path, Path]]] = {}
    for split, folders in subjects.items():
        if split not in DATALIST_SPLITS:
            raise ValueError(f"unknown split {split!r}; use one of {DATALIST_SPLITS}")
        splits[split] = []
        for f in folders:
            subject = base / f
            if not subject.is_dir():
                raise DatalistError([f"{subject}: folder not found"])
            m, o = _subject_volume(subject, mri, problems), _subject_volume(subject, other, problems)
            if m is not None and o is not None:
                splits[split].append((m, o))
    if not splits:
        raise ValueError("no folders given")
    return finish_datalist(splits, problems, base, modality, skip_unpaired)


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
    return finish_datalist(splits, problems, base, modality, skip_unpaired, extra)


def harvard_datalist(
    splits_json: str | Path, task: str, out_dir: str | os.PathLike, base_dir: str | Path | None = None
) -> str:
    """Write ``<out_dir>/<task>.json`` from the Harvard ``splits.json`` (the de-leaked split) and return its path.

    For the bundle's task overlays (``configs/harvard.json`` with ``--task``, ``configs/joint.json``): the
    datalist is rebuilt at every run, so it always matches the ``splits.json`` it names, and any missing file is
    reported by
    :func:`datalist_from_splits`. ``task="joint"`` concatenates every task of ``splits.json``, split by split;
    each item keeps its own ``modality``, and the top-level ``modality`` lists them joined by ``+``. ``base_dir``
    is the Harvard folder (default: the folder of ``splits_json``).
    """
    if task != JOINT_TASK:
        datalist = datalist_from_splits(splits_json, task, base_dir)
    else:
        tasks = sorted(json.loads(Path(splits_json).read_text()).get("tasks", {}))
        parts = [datalist_from_splits(splits_json, t, base_dir) for t in tasks]
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
