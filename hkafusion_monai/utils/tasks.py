"""The fusion tasks: which modality is fused with the MRI."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["DICOM_MODALITIES", "TASK_MODALITY", "modality_of_task", "modality_task", "task_of"]

#: the other modality of each task (the MRI is always channel 0)
TASK_MODALITY: dict[str, str] = {"mri_ct": "CT", "mri_pet": "PET", "mri_spect": "SPECT"}
#: DICOM ``Modality`` -> the modality name of the datalists and tasks
DICOM_MODALITIES: dict[str, str] = {"MR": "MRI", "CT": "CT", "PT": "PET", "NM": "SPECT"}


def modality_of_task(task: str) -> str:
    """``"CT"``, ``"PET"`` or ``"SPECT"`` for ``"mri_ct"``, ``"mri_pet"``, ``"mri_spect"``.

    Raises:
        ValueError: an unknown task, naming the known ones.
    """
    if task not in TASK_MODALITY:
        raise ValueError(f"unknown task {task!r}; use one of {sorted(TASK_MODALITY)}")
    return TASK_MODALITY[task]


def modality_task(modality: str) -> str:
    """``"mri_ct"``, ``"mri_pet"`` or ``"mri_spect"`` for a secondary modality (the inverse of TASK_MODALITY).

    Raises:
        ValueError: an unknown modality, naming the known ones.
    """
    for task, m in TASK_MODALITY.items():
        if m == modality:
            return task
    raise ValueError(f"unknown modality {modality!r}; use one of {sorted(TASK_MODALITY.values())}")


def task_of(items: Sequence[Mapping[str, Any]]) -> str:
    """The task of a run's data items, from their modalities (``"mri_ct+mri_pet"`` for a mix, ``"unknown"``
    when none names one); what an inference run records in MLflow."""
    tasks = sorted({modality_task(str(item["modality"])) for item in items if item.get("modality")})
    return "+".join(tasks) or "unknown"
