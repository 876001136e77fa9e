"""The data items of an inference run and their outputs: which pairs, which modality, which output file, the
checks made before any work, and the dataset that lets a batch run go on past a pair that cannot be fused."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from monai.data import Dataset

from hkafusion_monai.data.datalist_file import load_fusion_datalist
from hkafusion_monai.data.roots import dataset_datalist
from hkafusion_monai.io.atomic import make_output_dir
from hkafusion_monai.io.formats import is_image_file
from hkafusion_monai.io.study import study_files
from hkafusion_monai.io.writers import OUTPUT_FORMATS, output_name
from hkafusion_monai.utils import TASK_MODALITY, as_bool
from hkafusion_monai.utils.errors import FusionInputError, OptionError, OutputExistsError
from hkafusion_monai.utils.options import existing_path
from hkafusion_monai.utils.tasks import DICOM_MODALITIES, modality_task, task_of

__all__ = [
    "ASSUMED_MODALITY",
    "FAILED_KEY",
    "InferenceDataset",
    "InferenceItems",
    "check_outputs",
    "dicom_modality",
    "inference_items",
    "task_of",
]

#: the secondary modality assumed when nothing names it (see :func:`inference_items`)
ASSUMED_MODALITY = "PET"
#: the item key that holds why a datalist item cannot be fused (set by :func:`inference_items`)
FAILED_KEY = "failed"

logger = logging.getLogger(__name__)


class InferenceItems(list):
    """The data items of an inference run (a ``list`` of dicts), with what its end needs to name them:

    - ``numbers``: each item's number in the datalist's split (0-based), which ``--skip_existing`` changes from
      its place in this list;
    - ``total``: the pairs of the split, those left out by ``--skip_existing`` included;
    - ``single``: one pair (``--mri``, ``--other``, or a split of one), which ends with its own error rather than
      the batch summary.
    """

    def __init__(self, items: list[dict[str, Any]], numbers: list[int], total: int, single: bool) -> None:
        super().__init__(items)
        self.numbers, self.total, self.single = numbers, total, single


def inference_items(
    mri: str | None = None,
    other: str | None = None,
    datalist: str | None = None,
    split: str = "test",
    task: str | None = None,
    modality: str | None = None,
    output_dir: str | os.PathLike = ".",
    output_format: str = "auto",
    skip_existing: bool | str = False,
    dataset_dir: str | os.PathLike | None = None,
) -> InferenceItems:
    """The data items of an inference run: one pair (``mri`` and ``other`` paths) or a datalist's ``split``;
    without a ``datalist``, a ``dataset_dir`` (the Harvard pairs or the phantom) gives the datalist of ``task``
    (:func:`hkafusion_monai.data.dataset_datalist`, written under ``<output_dir>/datalists``).

    Each item gets ``"output"``: ``<output_dir>/<MRI name>_fused.png`` (2-D) or ``..._fused.nii.gz``
    (volume) unless the datalist item names one, and ``"modality"`` (``CT``, ``PET`` or ``SPECT``), from the
    first that gives one: ``modality``; the item's own (datalist); the ``Modality`` of a DICOM ``other``
    series; ``task``. When none does (a 2-D pair or NIfTI volumes and no ``--task``), PET is assumed and a
    warning says so: the modality decides how a volume is scaled, and what the run records as its task.

    With ``output_format="dicom"`` every pair must be two DICOM series folders; the output is a derived
    series folder ``<output_dir>/<MRI name>_fused`` and the items keep the folders as ``"mri_series"`` and
    ``"other_series"`` for the writer.

    A datalist item that cannot be fused (an input missing, a 2-D image paired with a volume, DICOM output for
    files) keeps the problem under :data:`FAILED_KEY`, and the run goes on with the others
    (:class:`InferenceDataset`, :class:`~hkafusion_monai.engines.FusionEvaluator`), naming it at the end; a
    single pair with such a problem is refused at once. With ``skip_existing`` the items whose output exists
    are left out (a partial run continued: each output was written whole, :mod:`hkafusion_monai.io.atomic`).

    Raises:
        OptionError: neither or both of a pair and a datalist, half a pair, an unknown task or output format,
            an empty split.
        InputNotFoundError: the single pair's input, or the datalist, does not exist (a FileNotFoundError).
        FusionInputError: the single pair is a 2-D image and a volume, or not DICOM series for DICOM output.
    """
    if datalist is None and dataset_dir is not None:
        datalist = dataset_datalist(dataset_dir, task, Path(output_dir) / "datalists")
    _check_options(mri, other, datalist, task, output_format)
    if datalist is not None:
        items = load_fusion_datalist(datalist, split, check_files=False)
        if not items:
            raise OptionError(f"--datalist {datalist}: the {split!r} list is empty; nothing to fuse (see --split)")
    else:
        items = [{"mri": str(mri), "other": str(other)}]
    out = [
        _prepared_item(dict(item), i, datalist, modality, task, output_dir, output_format)
        for i, item in enumerate(items)
    ]
    kept = {id(item) for item in (_without_existing(out) if as_bool(skip_existing, "skip_existing") else out)}
    numbers = [i for i, item in enumerate(out) if id(item) in kept]
    single = datalist is None or len(out) == 1
    return InferenceItems([out[i] for i in numbers], numbers, len(out), single)


def _check_options(
    mri: str | None, other: str | None, datalist: str | None, task: str | None, output_format: str
) -> None:
    """Raise the :class:`OptionError` of :func:`inference_items`'s arguments that do not go together."""
    if output_format not in OUTPUT_FORMATS:
        raise OptionError(f"--output_format {output_format}: use one of {', '.join(OUTPUT_FORMATS)}")
    if (mri is None) != (other is None):
        raise OptionError("--mri and --other: give both --mri PATH and --other PATH (or a --datalist)")
    if mri is not None and datalist is not None:
        raise OptionError("--datalist: give either a pair (--mri, --other) or a --datalist, not both")
    if mri is None and datalist is None:
        raise OptionError(
            "nothing to fuse: give --mri PATH --other PATH, --datalist PATH [--split test], or --dataset_dir PATH "
            "--task TASK"
        )
    if task is not None and task not in TASK_MODALITY:
        raise OptionError(f"--task {task}: unknown task; use one of {', '.join(sorted(TASK_MODALITY))}")


def _prepared_item(
    item: dict[str, Any],
    index: int,
    datalist: str | None,
    modality: str | None,
    task: str | None,
    output_dir: str | os.PathLike,
    output_format: str,
) -> dict[str, Any]:
    """``item`` checked (a datalist item's problem kept under :data:`FAILED_KEY`, a single pair's raised), with
    its modality, its series folders for DICOM output, and its output path."""
    try:
        _check_item(item, single=datalist is None, index=index, output_format=output_format)
    except FusionInputError as e:
        if datalist is None:
            raise
        item[FAILED_KEY] = str(e)
        logger.warning("item %d of %s: %s; it is skipped, the others are fused", index, Path(datalist).name, e)
    kind = "2d" if is_image_file(item["mri"]) else ("dicom" if output_format == "dicom" else "volume")
    if FAILED_KEY not in item:
        _set_modality(item, modality, task)
        if output_format == "dicom":
            item["mri_series"], item["other_series"] = str(item["mri"]), str(item["other"])
    item["output"] = (
        str(Path(output_dir) / item["output"])
        if "output" in item
        else str(Path(output_dir) / output_name(item["mri"], kind))
    )
    return item


def _without_existing(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The items whose output does not exist yet (``--skip_existing``), with a warning naming how many exist."""
    kept = [item for item in items if not os.path.lexists(item["output"])]
    if len(kept) < len(items):
        logger.warning(
            "--skip_existing: %d of %d output(s) exist and are kept; fusing the other %d pair(s)",
            len(items) - len(kept),
            len(items),
            len(kept),
        )
    return kept


def _check_item(item: dict[str, Any], single: bool, index: int, output_format: str) -> None:
    """Raise the problem that keeps ``item`` from being fused: a missing input, a 2-D image with a volume, DICOM
    output for files (the option or the datalist item named)."""
    for key in ("mri", "other"):
        existing_path(item[key], f"--{key}" if single else f"item {index} {key!r}")
    if is_image_file(item["other"]) != is_image_file(item["mri"]):
        raise FusionInputError(
            f"{item['mri']} and {item['other']}: a pair is two 2-D images or two volumes, not one of each"
        )
    if output_format == "dicom":
        not_series = [str(item[k]) for k in ("mri", "other") if not Path(str(item[k])).is_dir()]
        if not_series:
            raise FusionInputError(
                f"{', '.join(not_series)}: not a DICOM series folder; --output_format dicom needs DICOM series "
                "folders as inputs (--output_format auto writes PNG or NIfTI)"
            )


def _set_modality(item: dict[str, Any], modality: str | None, task: str | None) -> None:
    if modality is not None:
        item["modality"] = modality
    elif "modality" not in item:
        found = dicom_modality(item["other"]) if Path(str(item["other"])).is_dir() else None
        if found is None and task is not None:
            found = TASK_MODALITY[task]
        elif found is None:
            found = ASSUMED_MODALITY
            logger.warning(
                "%s: no modality for the secondary image (no --task, --modality, datalist field or DICOM "
                "Modality); assuming %s (task %s)",
                Path(str(item["other"])).name,
                found,
                modality_task(found),
            )
        item["modality"] = found


class InferenceDataset(Dataset):
    """MONAI's ``Dataset`` over :func:`inference_items`: an item marked :data:`FAILED_KEY` (an input missing, a
    2-D image paired with a volume, ...) raises its problem instead of being loaded, so that
    :class:`~hkafusion_monai.engines.FusionEvaluator` names it with the pairs that fail later and fuses the rest.
    """

    def _transform(self, index: int) -> Any:
        problem = self.data[index].get(FAILED_KEY)
        if problem:
            raise FusionInputError(problem)
        return super()._transform(index)


def dicom_modality(folder: str | os.PathLike) -> str | None:
    """``CT``, ``PET`` or ``SPECT`` from the ``Modality`` of the first DICOM file found in ``folder`` (CT, PT,
    NM), or None when there is none or it is another modality. The files are those of the one folder walker,
    :func:`hkafusion_monai.io.study.study_files` (no link out of ``folder`` is followed)."""
    import pydicom

    if not Path(folder).is_dir():
        return None
    for path in study_files(folder)[0]:
        if path.is_file():
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Modality"])
            except Exception:  # not DICOM: look further
                continue
            found = DICOM_MODALITIES.get(str(ds.get("Modality", "")))
            return found if found in TASK_MODALITY.values() else None
    return None


def check_outputs(
    items: Sequence[Mapping[str, Any]],
    overwrite: bool | str = False,
    skip_existing: bool | str = False,
    output_dir: str | os.PathLike | None = None,
) -> list[str]:
    """Fail before any work when two items would write one file, or an output exists and neither ``overwrite``
    nor ``skip_existing`` (which :func:`inference_items` has applied already) is given; then create
    ``output_dir`` (:func:`hkafusion_monai.io.make_output_dir`), when given.

    Returns:
        the output paths.

    Raises:
        OptionError: both ``overwrite`` and ``skip_existing``; two items with one output (a ValueError).
        OutputExistsError: outputs that exist (a FileExistsError), the first ones named.
    """
    overwrite, skip_existing = as_bool(overwrite, "overwrite"), as_bool(skip_existing, "skip_existing")
    if overwrite and skip_existing:
        raise OptionError(
            "--overwrite and --skip_existing: give one (--overwrite true replaces every output, --skip_existing "
            "true keeps them and fuses only the pairs without one)"
        )
    paths = [str(Path(item["output"]).resolve()) for item in items]
    seen: dict[str, int] = {}
    for i, p in enumerate(paths):
        if p in seen:
            raise OptionError(
                f"{p}: pairs {seen[p]} and {i} ({items[seen[p]]['mri']}, {items[i]['mri']}) would both write it; "
                "give the datalist items distinct 'output' names"
            )
        seen[p] = i
    if not overwrite:
        existing = [p for p in paths if os.path.lexists(p)]
        if existing:
            shown = ", ".join(existing[:3]) + (f" and {len(existing) - 3} more" if len(existing) > 3 else "")
            raise OutputExistsError(
                f"{shown}: {len(existing)} output(s) exist and are kept; pass --overwrite true to replace them, or "
                "--skip_existing true to fuse only the pairs without one"
            )
    if output_dir is not None:
        make_output_dir(output_dir)
    return paths
