"""The errors the project raises on purpose. Each message is one line that names the file, setting or series
and the problem; the command-line entry points print it as the last line of stderr
(:func:`hkafusion_monai.utils.cli.install_cli_handlers`), with the traceback only under ``HKAFUSION_DEBUG=1``.
"""

from __future__ import annotations

__all__ = [
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
]


class HKAFusionError(Exception):
    """Base class: an error the project raises on purpose, with a message a user can act on."""


class FusionInputError(HKAFusionError, ValueError):
    """An input image, volume or series that cannot be used; the message names the file and the problem."""


class InputNotFoundError(FusionInputError, FileNotFoundError):
    """An input file or folder that is missing or cannot be reached (a dangling link, a link loop); the message
    names it and the option or datalist item that gave it."""


class RefusedPairError(FusionInputError):
    """Two inputs that must not be fused together: different patients, frames of reference that were never
    registered, no spatial overlap. The message names both and the override, where one exists."""


class CheckpointError(HKAFusionError, ValueError):
    """A weights file that is missing, unreadable, or not a checkpoint of this network."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No weights file where one was named; the message says how to pass one."""


class DataRootError(HKAFusionError, FileNotFoundError):
    """The data root setting (``HKAFUSION_DATA``) points nowhere usable; the message names it and the path."""


class OutputExistsError(HKAFusionError, FileExistsError):
    """An output that exists already and would be replaced; the message names ``--overwrite`` or ``--resume``."""


class TrainingSetupError(HKAFusionError, RuntimeError):
    """A training that cannot run as configured (e.g. its loader yields no batch)."""


class OptionError(HKAFusionError, ValueError):
    """A command-line option (or config setting) whose value cannot be used; the message names the option."""


class PairsFailedError(HKAFusionError, RuntimeError):
    """A batch run that fused what it could and could not fuse some pairs; the message names each one (item and
    file) and how to continue the run (``--skip_existing true``)."""


class StorageError(HKAFusionError, OSError):
    """An output, checkpoint, report or MLflow store that the machine cannot take: a full file system or disk
    quota, a read-only file system, no permission. The message names the path and what to do."""
