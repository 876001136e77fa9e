"""Datalists of DICOM studies: per study, the MR series paired with its CT, PET (PT) or SPECT (NM) series.

Every DICOM file below each folder given is read (headers only) and grouped into series, and the series into
studies (``StudyInstanceUID``). In each study:

1. **Candidates** are the series that are volumes by their type (not localizers, and for NM only tomographic
   reconstructions: :func:`hkafusion_monai.io.pairing.not_a_volume`), form one regular volume (the loader's
   checks: one orientation, even spacing, ...), have at least ``min_slices`` slices and lie in one folder;
   other series are ignored (and listed in any problem about the study).
2. The **MR candidates** are the ``MR`` series (whose ``SeriesDescription`` matches ``mri_description``, a
   case-insensitive regular expression, if given); the **other candidates** are the ``CT``, ``PT`` (PET) and
   ``NM`` (SPECT) series, only those of ``modality`` if given (and matching ``other_description``).
3. Each other candidate gets its MR series by the pairing rule the Deploy application applies too
   (:func:`hkafusion_monai.io.pairing.pair_series`): one in its frame of reference, then the largest
   coverage, then the most images.
4. Pairs whose two series share a ``FrameOfReferenceUID`` are preferred; if none does, the item gets
   ``"register": true``, which switches on :class:`~hkafusion_monai.transforms.RigidRegisterd` for it.
5. Exactly one pair must remain. A study with none (no MR, or no other series) is unpaired; one with several
   other candidates, or whose MR series are equal by the rule (where the Deploy application would go by the
   series number), is ambiguous, and the problem lists every candidate. Both are errors unless
   ``skip_unpaired``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hkafusion_monai.data.datalist_file import DATALIST_SPLITS, DatalistError, relative, report_problems, warn
from hkafusion_monai.io.dicom import DicomSeries, scan_dicom
from hkafusion_monai.io.pairing import VolumeSeries, measure, not_a_volume, pair_series
from hkafusion_monai.io.study import study_files
from hkafusion_monai.utils.errors import FusionInputError
from hkafusion_monai.utils.tasks import DICOM_MODALITIES

__all__ = ["datalist_from_dicom"]


def _candidates(study: Sequence[DicomSeries], min_slices: int) -> tuple[list[VolumeSeries], list[str]]:
    """The study's candidate volumes (rule 1), and one ``ignored …`` line per other series."""
    usable, ignored = [], []
    for s in study:
        reason = not_a_volume(s.modality, s.image_type)
        slices = sum(max(1, sl.frames) for sl in s.slices)  # a multi-frame NM object holds many
        if reason is None and slices < min_slices:
            reason = f"{slices} slice(s), fewer than {min_slices}"
        elif reason is None and len(s.folders) > 1:
            reason = "its files are spread over several folders"
        if reason is None:
            try:
                usable.append(measure(s))
            except FusionInputError as e:
                reason = f"not one regular volume: {str(e).split(': ', 1)[-1]}"
        if reason:
            ignored.append(f"ignored {s.summary()}: {reason}")
    return usable, ignored


def _matches(series: VolumeSeries, pattern: str | None) -> bool:
    return pattern is None or re.search(pattern, series.header.description, flags=re.IGNORECASE) is not None


def _study_pair(
    study: Sequence[DicomSeries],
    wanted: Sequence[str],
    mri_description: str | None,
    other_description: str | None,
    min_slices: int,
) -> tuple[tuple[DicomSeries, DicomSeries, bool] | None, str | None]:
    """Pair one study's series by the rules of the module docstring; returns ``((mri, other, register), None)``
    or ``(None, problem)``."""
    usable, ignored = _candidates(study, min_slices)
    mris = [v for v in usable if v.header.modality == "MR" and _matches(v, mri_description)]
    others = [v for v in usable if v.header.modality in wanted and _matches(v, other_description)]
    first = study[0]
    folder = os.path.commonpath([str(f) for s in study for f in s.folders])
    where = f"study {first.study_uid} (patient {first.patient_id or '?'}) in {folder}"
    notes = "".join(f"\n    {line}" for line in ignored)
    if not mris or not others:
        missing = "MR" if not mris else "/".join(wanted)
        return None, f"unpaired: {where} has no {missing} series to pair{notes}"
    pairs = pair_series(mris, others)
    kept = [p for p in pairs if p.same_frame] or pairs  # nothing shares a frame of reference: register
    candidates = [(m, p.other) for p in kept for m in p.tied]
    if len(candidates) > 1:
        listed = "".join(f"\n    MR candidate: {m.header.summary()}" for m in mris)
        listed += "".join(f"\n    other candidate: {o.header.summary()}" for o in others)
        return None, (
            f"ambiguous: {where} gives {len(candidates)} candidate pairs; narrow them with --modality, "
            f"--mri-description or --other-description{listed}{notes}"
        )
    return (kept[0].mri.header, kept[0].other.header, not kept[0].same_frame), None


def _studies(root: Path, problems: list[str]) -> list[list[DicomSeries]]:
    """The studies below ``root``, each a list of series, in folder order; unreadable files are problems."""
    if not root.is_dir():
        problems.append(f"{root}: folder not found")
        return []
    studies: dict[str, list[DicomSeries]] = {}
    files, skipped = study_files(root)  # links out of the folder, and loops, are not followed
    for line in skipped:
        warn(line)
    files = [f for f in files if f.name.upper() != "DICOMDIR"]
    for s in scan_dicom(files, errors=problems):
        studies.setdefault(s.study_uid, []).append(s)
    if not studies:
        problems.append(f"{root}: no DICOM image series found")
    return sorted(studies.values(), key=lambda ss: (str(ss[0].folders[0]), ss[0].study_uid))


def _item(mri: DicomSeries, other: DicomSeries, register: bool, base: Path) -> dict:
    item: dict[str, Any] = {
        "mri": relative(mri.folders[0], base),
        "other": relative(other.folders[0], base),
        "modality": DICOM_MODALITIES[other.modality],
        "mri_series_uid": mri.series_uid,
        "other_series_uid": other.series_uid,
        "study_uid": mri.study_uid,
        "patient_id": mri.patient_id,
    }
    if register:
        item["register"] = True
    return item


def datalist_from_dicom(
    folders: Mapping[str, Sequence[str | Path]],
    base_dir: str | Path,
    modality: str | None = None,
    mri_description: str | None = None,
    other_description: str | None = None,
    min_slices: int = 2,
    skip_unpaired: bool = False,
) -> dict:
    """Build a datalist from folders of DICOM files, one item per study (the rules of the module docstring).

    Items are ``{"mri", "other", "modality", "mri_series_uid", "other_series_uid", "study_uid",
    "patient_id"}`` (plus ``"register": true``), with the series folders relative to ``base_dir``; the
    series UIDs let the loader pick the series when a folder holds several.

    Args:
        folders: split name to folders (relative to ``base_dir`` or absolute), each searched recursively.
        base_dir: the directory the datalist's paths are relative to.
        modality: ``CT``, ``PET`` or ``SPECT``: pair only that modality (needed when studies hold several).
        mri_description, other_description: regular expressions the series' ``SeriesDescription`` must match.
        min_slices: the fewest slices a candidate series may have.
        skip_unpaired: leave unpaired and ambiguous studies out (with a warning) instead of raising.

    Raises:
        DatalistError: listing every unpaired or ambiguous study, unreadable file, and pairs of mixed modalities.
    """
    base = Path(base_dir)
    tags = {v: k for k, v in DICOM_MODALITIES.items() if v != "MRI"}  # PET -> PT ...
    if modality is not None and modality.upper() not in tags:
        raise ValueError(f"modality must be one of {sorted(tags)}, got {modality!r}")
    wanted = [tags[modality.upper()]] if modality else sorted(tags.values())
    problems: list[str] = []
    items = _split_items(folders, base, wanted, mri_description, other_description, min_slices, problems)
    modalities = sorted({it["modality"] for split_items in items.values() for it in split_items})
    if len(modalities) > 1:
        problems.append(f"studies mix modalities {modalities}; pass --modality to build one datalist per modality")
    report_problems(problems, skip_unpaired and len(modalities) <= 1)
    if modalities:
        chosen = modalities[0]
    elif modality:
        chosen = modality.upper()
    else:
        raise DatalistError(problems or ["no MR/CT/PET/SPECT pairs found"])
    out: dict = {"base_dir": str(base.resolve()), "modality": chosen}
    out["source"] = "dicom"
    for split in DATALIST_SPLITS:
        out[split] = items.get(split, [])
    return out


def _split_items(
    folders: Mapping[str, Sequence[str | Path]],
    base: Path,
    wanted: Sequence[str],
    mri_description: str | None,
    other_description: str | None,
    min_slices: int,
    problems: list[str],
) -> dict[str, list[dict]]:
    """Each split's items, one per paired study of its folders; unpaired and ambiguous studies, and a pair listed
    twice, are added to ``problems``."""
    items: dict[str, list[dict]] = {}
    seen: dict[tuple[str, str], str] = {}
    for split, split_folders in folders.items():
        if split not in DATALIST_SPLITS:
            raise ValueError(f"unknown split {split!r}; use one of {DATALIST_SPLITS}")
        items[split] = []
        for study in (st for folder in split_folders for st in _studies(base / folder, problems)):
            pair, problem = _study_pair(study, wanted, mri_description, other_description, min_slices)
            if problem:
                problems.append(problem)
                continue
            assert pair is not None  # a pair, or a problem
            key = (pair[0].series_uid, pair[1].series_uid)
            if key in seen:
                problems.append(f"duplicate: MR {key[0]} / {key[1]} is listed in {seen[key]} and in {split}")
                continue
            seen[key] = split
            items[split].append(_item(*pair, base))
    return items
