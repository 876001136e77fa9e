"""The fusion tasks: which modality is fused with the MRI."""

from __future__ import annotations

__all__ = ["TASK_MODALITY", "modality_of_task"]

#: the other modality of each task (the MRI is always channel 0)
TASK_MODALITY: dict[str, str] = {"mri_ct": "CT", "mri_pet": "PET", "mri_spect": "SPECT"}


def modality_of_task(task: str) -> str:
    """``"CT"``, ``"PET"`` or ``"SPECT"`` for ``"mri_ct"``, ``"mri_pet"``, ``"mri_spect"``.

    Raises:
        ValueError: an unknown task, naming the known ones.
    """
    if task not in TASK_MODALITY:
        raise ValueError(f"unknown task {task!r}; use one of {sorted(TASK_MODALITY)}")
    return TASK_MODALITY[task]
