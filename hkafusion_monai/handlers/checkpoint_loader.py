"""Restoring weights and training states: MONAI's ``CheckpointLoader``, subclassed once so that every bad file
ends in one clear error naming it.

:class:`WeightsLoader` loads network weights (a warm start, the evaluated model, the inference workflow's
``initialize`` and :func:`hkafusion_monai.load_fuser`); :class:`TrainingStateLoader` restores a
:class:`~hkafusion_monai.handlers.checkpoint_saver.TrainingStateSaver` checkpoint with ``--resume``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ignite.engine import Engine
from monai.handlers import CheckpointLoader

from hkafusion_monai.handlers.checkpoint_saver import RNGState, latest_checkpoint
from hkafusion_monai.utils import CheckpointError, CheckpointNotFoundError, TrainingSetupError, path_or_flag
from hkafusion_monai.utils.weights import NO_WEIGHTS_MESSAGE, read_checkpoint, state_dict_of

__all__ = ["SafeCheckpointLoader", "TrainingStateLoader", "WeightsLoader"]


class SafeCheckpointLoader(CheckpointLoader):
    """MONAI's ``CheckpointLoader`` (its arguments, ``attach`` and what it restores: ignite's
    ``Checkpoint.load_objects``, a bare state dict taken for the one object to load, the engine's ``max_epochs``
    kept), whose errors end in one error naming the file.

    Before MONAI's ``__call__`` reads the file (``torch.load(weights_only=True)``), the file is read through
    :func:`hkafusion_monai.utils.weights.read_checkpoint`, whose errors name a missing, empty, truncated, foreign or
    unsafe file (torch's own do not, and one advises loading it unsafely) and which lets a subclass check what it
    holds (:meth:`_check`); MONAI's ``__call__`` then runs inside one translation of its errors: the restoring
    errors (missing keys, shapes) into :class:`~hkafusion_monai.utils.errors.CheckpointError`, a checkpoint past
    ``max_epochs`` into :class:`~hkafusion_monai.utils.errors.TrainingSetupError`. MONAI's ``strict_shape=False``
    (skipping layers of another shape) is refused: these loaders read this network's own weights.

    Args:
        load_path: the checkpoint file.
        load_dict: the objects to restore, as for ``CheckpointLoader``.
        option: the option that names the file, for the message of a missing one.
        kwargs: as for ``CheckpointLoader`` (``map_location``, ``strict``, ...).
    """

    #: what the file must be, for the error message
    expected = "a checkpoint of this network"

    def __init__(self, load_path: str, load_dict: dict, option: str = "--ckpt_path", **kwargs: Any) -> None:
        super().__init__(load_path=load_path, load_dict=load_dict, **kwargs)
        self.option = option
        if not self.strict_shape:
            raise ValueError(f"{type(self).__name__}: strict_shape=False is not supported (this network's weights)")

    def _check(self, checkpoint: Any) -> None:
        """Raise a :class:`CheckpointError` for a safely read file that is not what this loader needs."""

    def __call__(self, engine: Engine) -> None:
        if not Path(self.load_path).is_file():
            raise CheckpointNotFoundError(NO_WEIGHTS_MESSAGE.format(path=self.load_path, option=self.option))
        self._check(read_checkpoint(self.load_path, self.map_location or "cpu"))
        try:
            super().__call__(engine)
        except ValueError as e:  # MONAI's: the checkpoint's epoch is past the engine's max_epochs
            first = str(e).split(". ")[0]
            raise TrainingSetupError(f"{self.load_path}: {first}; raise --epochs to continue it") from None
        except (RuntimeError, KeyError, TypeError) as e:  # load_state_dict: missing/unexpected keys, shapes
            detail = " ".join(str(e).split())[:300]
            raise CheckpointError(f"{self.load_path}: not {self.expected} ({detail})") from None


class TrainingStateLoader(SafeCheckpointLoader):
    """Restore a :class:`TrainingStateSaver` checkpoint (and the trainer and RNG states) when training starts.

    The file is read safely first (:func:`hkafusion_monai.utils.weights.read_checkpoint`): a hostile, corrupt or
    foreign ``--resume`` file ends in one error naming it.

    With ``resume`` off it restores nothing, so that a config lists it whether or not a run resumes.

    Args:
        resume: ``True`` for the latest checkpoint in ``ckpt_dir``, or the path of a checkpoint; off (``False``,
            ``"false"``): nothing to restore.
        ckpt_dir: where to look when ``resume`` is True.
        load_dict: the objects to restore besides the trainer and the RNG states (as saved).
        kwargs: as for ``CheckpointLoader`` (e.g. ``map_location``).

    Raises:
        CheckpointNotFoundError: nothing to resume from (a FileNotFoundError).
        CheckpointError: the file is not a training state of this run (when training starts).
    """

    expected = "a training state of this run (checkpoint_epoch=N.pt of --output_dir/checkpoints)"

    def __init__(self, resume: bool | str, ckpt_dir: str, load_dict: dict, **kwargs: Any) -> None:
        requested = path_or_flag(resume, "latest", "resume")
        self.enabled = requested is not None
        if requested is None:
            super().__init__(load_path="", load_dict=dict(load_dict), **kwargs)
            return
        if requested != "latest":
            path = Path(requested)
            if not path.is_file():
                raise CheckpointNotFoundError(f"--resume {resume}: no such checkpoint file")
        else:
            latest = latest_checkpoint(ckpt_dir)
            if latest is None:
                raise CheckpointNotFoundError(
                    f"--resume: no checkpoint_epoch=N.pt in {ckpt_dir} to resume from; start without --resume"
                )
            path = latest
        super().__init__(load_path=str(path), load_dict=dict(load_dict, rng=RNGState()), option="--resume", **kwargs)

    def _check(self, checkpoint: Any) -> None:
        missing = (
            sorted(k for k in self.load_dict if k != "trainer" and k not in checkpoint)
            if isinstance(checkpoint, Mapping)
            else ["model"]
        )
        if missing:
            raise CheckpointError(f"{self.load_path}: not {self.expected}; it has no {', '.join(missing)}")

    def attach(self, engine: Engine) -> None:
        if not self.enabled:
            return
        self.load_dict["trainer"] = engine
        super().attach(engine)


class WeightsLoader(SafeCheckpointLoader):
    """The one loader of network weights: a warm start and the evaluated model (a handler, when the engine
    starts), the inference workflow's weights (``"$@checkpoint_loader(@evaluator)"`` in ``initialize``, as
    model-zoo's spleen bundle loads them) and :func:`hkafusion_monai.inference.load_weights` (``load_fuser``).
    A bad file ends in one clear :class:`~hkafusion_monai.utils.errors.CheckpointError` naming it (see
    :class:`SafeCheckpointLoader`), a file that holds no state dict of tensors too.

    Args:
        load_path: the weights file (a state dict, or a training state with ``"model"``).
        load_dict: ``{"model": network}``.
        option: the option that names the file (``--ckpt_path``, ``--pretrained``), for the message of a missing
            one.
        kwargs: as for ``CheckpointLoader`` (``map_location``, ``strict``, ...).
    """

    def _check(self, checkpoint: Any) -> None:
        state_dict_of(checkpoint, self.load_path)
