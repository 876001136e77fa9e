"""The data items of an inference run and their outputs: which pairs, which modality, which output file, and
the checks made before any work."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hkafusion_monai.io.formats import is_image_file
from hkafusion_monai.io.writers import OUTPUT_FORMATS, output_name
from hkafusion_monai.utils import TASK_MODALITY, as_bool
from hkafusion_monai.utils.tasks import DICOM_MODALITIES, modality_task

__all__ = ["ASSUMED_MODALITY", "check_outputs", "dicom_modality", "inference_items", "task_of"]

#: the secondary modality assumed when nothing names it (see :func:`inference_items`)
ASSUMED_MODALITY = "PET"

logger = logging.getLogger(__name__)


def inference_items(
    mri: str | None = None,
    other: str | None = None,
    datalist: str | None = None,
    split: str = "test",
    task: str | None = None,
    modality: str | None = None,
    output_dir: str | os.PathLike = ".",
    output_format: str = "auto",
) -> list[dict[str, Any]]:
    """The data items of an inference run: one pair (``mri`` and ``other`` paths) or a datalist's ``split``.

    Each item gets ``"output"``: ``<output_dir>/<MRI name>_fused.png`` (2-D) or ``..._fused.nii.gz``
    (volume) unless the datalist item names one, and ``"modality"`` (``CT``, ``PET`` or ``SPECT``), from the
    first that gives one: ``modality``; the item's own (datalist); the ``Modality`` of a DICOM ``other``
    series; ``task``. When none does (a 2-D pair or NIfTI volumes and no ``--task``), PET is assumed and a
    warning says so: the modality decides how a volume is scaled, and what the run records as its task.

    With ``output_format="dicom"`` every pair must be two DICOM series folders; the output is a derived
    series folder ``<output_dir>/<MRI name>_fused`` and the items keep the folders as ``"mri_series"`` and
    ``"other_series"`` for the writer.

    Raises:
        ValueError: neither or both of a pair and a datalist, half a pair, or DICOM output for inputs that
            are not DICOM series folders.
        FileNotFoundError: an input path that does not exist.
    """
    if output_format not in OUTPUT_FORMATS:
        raise ValueError(f"output_format must be one of {OUTPUT_FORMATS}, got {output_format!r}")
    if (mri is None) != (other is None):
        raise ValueError("give both --mri PATH and --other PATH (or a --datalist)")
    if mri is not None and datalist is not None:
        raise ValueError("give either a pair (--mri, --other) or a --datalist, not both")
    if mri is None and datalist is None:
        raise ValueError("nothing to fuse: give --mri PATH --other PATH, or --datalist PATH [--split test]")
    if task is not None and task not in TASK_MODALITY:
        raise ValueError(f"unknown task {task!r}; use one of {sorted(TASK_MODALITY)}")
    if datalist is not None:
        from hkafusion_monai.data import load_fusion_datalist

        items = load_fusion_datalist(datalist, split)
        if not items:
            raise ValueError(f"{datalist}: the {split!r} list is empty")
    else:
        items = [{"mri": str(mri), "other": str(other)}]
    out = []
    for item in items:
        item = dict(item)
        for key in ("mri", "other"):
            if not Path(str(item[key])).exists():
                raise FileNotFoundError(f"{item[key]}: missing {key} input (no such file or directory)")
        kind = "2d" if is_image_file(item["mri"]) else "volume"
        if is_image_file(item["other"]) != (kind == "2d"):
            raise ValueError(
                f"{item['mri']} and {item['other']}: a pair is two 2-D images or two volumes, not one of each"
            )
        if modality is not None:
            item["modality"] = modality
        elif "modality" not in item:
            found = dicom_modality(item["other"]) if Path(str(item["other"])).is_dir() else None
            if found is None and task is None:
                found = ASSUMED_MODALITY
                logger.warning(
                    "%s: no modality for the secondary image (no --task, --modality, datalist field or DICOM "
                    "Modality); assuming %s (task %s)", Path(str(item["other"])).name, found, modality_task(found),
                )
            item["modality"] = found or TASK_MODALITY[task]
        if output_format == "dicom":
            not_series = [str(item[k]) for k in ("mri", "other") if not Path(str(item[k])).is_dir()]
            if not_series:
                raise ValueError(
                    f"DICOM output needs DICOM series folders as inputs; not a folder: {', '.join(not_series)}"
                )
            item["mri_series"], item["other_series"] = str(item["mri"]), str(item["other"])
            kind = "dicom"
        item["output"] = str(Path(output_dir) / item["output"]) if "output" in item else str(
            Path(output_dir) / output_name(item["mri"], kind)
        )
        out.append(item)
    return out


def dicom_modality(folder: str | os.PathLike) -> str | None:
    """``CT``, ``PET`` or ``SPECT`` from the ``Modality`` of the first DICOM file found in ``folder`` (CT, PT,
    NM), or None when there is none or it is another modality."""
    import pydicom

    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Modality"])
            except Exception:  # not DICOM: look further
                continue
            found = DICOM_MODALITIES.get(str(ds.get("Modality", "")))
            return found if found in TASK_MODALITY.values() else None
    return None


def task_of(items: Sequence[Mapping[str, Any]]) -> str:
    """The task an inference run performed, from its items' modalities (``"mri_ct+mri_pet"`` for a mix); what
    the run records in MLflow."""
    tasks = sorted({modality_task(str(item["modality"])) for item in items if item.get("modality")})
    return "+".join(tasks) or "unknown"


def check_outputs(items: Sequence[Mapping[str, Any]], overwrite: bool | str = False) -> list[str]:
    """Fail before any work when two items would write one file, or an output exists and not ``overwrite``.

    Returns:
        the output paths.
    """
    paths = [str(Path(item["output"]).resolve()) for item in items]
    seen: dict[str, int] = {}
    for i, p in enumerate(paths):
        if p in seen:
            raise ValueError(
                f"pairs {seen[p]} and {i} ({items[seen[p]]['mri']}, {items[i]['mri']}) would both write {p}; "
                "give the items distinct 'output' names"
            )
        seen[p] = i
    if not as_bool(overwrite):
        existing = [p for p in paths if os.path.exists(p)]
        if existing:
            shown = "\n  ".join(existing[:10]) + ("\n  ..." if len(existing) > 10 else "")
            raise FileExistsError(
                f"{len(existing)} output(s) exist and are kept; pass --overwrite true to replace them:\n  {shown}"
            )
    return paths
