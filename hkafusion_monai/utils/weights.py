"""Reading a weights file safely: ``torch.load(weights_only=True)`` (no code runs from the file), with one
clear error for every way a file can fail to be a checkpoint.

torch's own messages for a text, truncated or empty file do not name the file, and one of them advises
"re-running with weights_only=False will likely succeed", which would execute whatever the file holds;
:func:`read_checkpoint` replaces them with a :class:`~hkafusion_monai.utils.errors.CheckpointError` that
names the file and the problem.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from hkafusion_monai.utils.errors import CheckpointError, CheckpointNotFoundError

__all__ = ["NO_WEIGHTS_MESSAGE", "read_checkpoint", "state_dict_of"]

#: the error for a missing weights file (``.format(path=..., option=...)``, the option that names it)
NO_WEIGHTS_MESSAGE = (
    "no HKAFusion checkpoint at {path}. The bundle ships its trained weights as bundle/models/model.pt "
    "(docs/results.md); pass another checkpoint on the command line with {option} PATH/model.pt, in Python "
    "with load_fuser(weights='PATH/model.pt'). Any checkpoint of this network works: a state dict, or a "
    "CheckpointSaver file holding it under 'model'."
)

#: the object torch's weights_only unpickler refused, as its messages name it ("GLOBAL posix.system")
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device | dict[str, str] = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``, or a one-line :class:`CheckpointError` naming the file.

    Raises:
        CheckpointError: missing, empty, truncated, not a torch file, or holding objects other than tensors
            and plain containers (never loaded unsafely).
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointNotFoundError(f"{p}: no such checkpoint file")
    if p.stat().st_size == 0:
        raise CheckpointError(f"{p}: empty file, not a checkpoint")
    with p.open("rb") as stream:
        magic = stream.read(4)
    if not (magic.startswith(b"PK") or magic[:1] == b"\x80"):  # torch.save writes a zip; old files a pickle
        raise CheckpointError(f"{p}: not a PyTorch checkpoint (neither a zip archive nor a pickle)")
    try:
        return torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"{p}: holds objects other than weights, refused for safety ({_refused(e)})") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError, AttributeError) as e:
        raise CheckpointError(
            f"{p}: not a readable PyTorch checkpoint (truncated or another kind of file: {type(e).__name__})"
        ) from None


def _refused(error: pickle.UnpicklingError) -> str:
    """What torch's ``weights_only`` refusal says the file holds, and nothing of its advice: torch's message
    tells how to load the file unsafely (``weights_only=False``) or how to allow-list the object
    (``add_safe_globals``), which would run whatever the file holds. ``"the object posix.system"``, or the
    error's type when the message names none."""
    found = _GLOBAL.search(str(error))
    return f"the object {found.group(1)}, which is no weight" if found else type(error).__name__


def state_dict_of(checkpoint: Any, path: str | os.PathLike) -> Mapping[str, torch.Tensor]:
    """The network state dict in a checkpoint: the checkpoint itself, or its ``"model"`` entry (a
    ``CheckpointSaver`` file holding the full training state)."""
    if isinstance(checkpoint, Mapping) and "model" in checkpoint and isinstance(checkpoint["model"], Mapping):
        checkpoint = checkpoint["model"]
    if not isinstance(checkpoint, Mapping) or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise CheckpointError(f"{path}: not a state dict of network weights (found {type(checkpoint).__name__})")
    return checkpoint
