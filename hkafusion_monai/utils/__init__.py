"""The bottom layer: what every other package of ``hkafusion_monai`` shares. It imports nothing of ours."""

from hkafusion_monai.utils.errors import (
    CheckpointError,
    CheckpointNotFoundError,
    DataRootError,
    FusionInputError,
    HKAFusionError,
    OutputExistsError,
    RefusedPairError,
    TrainingSetupError,
)
from hkafusion_monai.utils.options import as_bool, path_or_flag
from hkafusion_monai.utils.tasks import TASK_MODALITY, modality_of_task

__all__ = [
    "TASK_MODALITY",
    "CheckpointError",
    "CheckpointNotFoundError",
    "DataRootError",
    "FusionInputError",
    "HKAFusionError",
    "OutputExistsError",
    "RefusedPairError",
    "TrainingSetupError",
    "as_bool",
    "modality_of_task",
    "path_or_flag",
]
