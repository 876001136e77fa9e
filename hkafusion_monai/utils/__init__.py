"""The bottom layer: what every other package of ``hkafusion_monai`` shares. It imports nothing of ours.

- :mod:`~hkafusion_monai.utils.errors`: the error types; :mod:`~hkafusion_monai.utils.options`: command-line
  option values; :mod:`~hkafusion_monai.utils.tasks`: the tasks and modality tables;
- :mod:`~hkafusion_monai.utils.colour`: RGB <-> YCbCr, luma, grey and chroma re-attachment (torch; import it
  from its module, so that the torch-free tools stay light);
- :mod:`~hkafusion_monai.utils.quantisation`: the one quantisation to stored grey levels;
- :mod:`~hkafusion_monai.utils.hashing`: SHA-256 identities of files, inputs and names;
- :mod:`~hkafusion_monai.utils.provenance`: the git commit;
- :mod:`~hkafusion_monai.utils.weights`: reading a checkpoint safely;
- :mod:`~hkafusion_monai.utils.cli`: the command-line behaviour of the entry points.
"""

from hkafusion_monai.utils.errors import (
    CheckpointError,
    CheckpointNotFoundError,
    DataRootError,
    FusionInputError,
    HKAFusionError,
    InputNotFoundError,
    OptionError,
    OutputExistsError,
    PairsFailedError,
    RefusedPairError,
    StorageError,
    TrainingSetupError,
)
from hkafusion_monai.utils.hashing import file_sha256, inputs_summary, name_digest
from hkafusion_monai.utils.options import as_bool, existing_path, path_or_flag
from hkafusion_monai.utils.provenance import git_commit
from hkafusion_monai.utils.quantisation import quantise, to_uint8, to_uint16
from hkafusion_monai.utils.tasks import DICOM_MODALITIES, TASK_MODALITY, modality_of_task, modality_task, task_of

__all__ = [
    "DICOM_MODALITIES",
    "TASK_MODALITY",
    "CheckpointError",
    "CheckpointNotFoundError",
    "DataRootError",
    "FusionInputError",
    "HKAFusionError",
    "InputNotFoundError",
    "OptionError",
    "OutputExistsError",
    "PairsFailedError",
    "RefusedPairError",
    "StorageError",
    "TrainingSetupError",
    "as_bool",
    "existing_path",
    "file_sha256",
    "git_commit",
    "inputs_summary",
    "modality_of_task",
    "modality_task",
    "task_of",
    "name_digest",
    "path_or_flag",
    "quantise",
    "to_uint16",
    "to_uint8",
]
