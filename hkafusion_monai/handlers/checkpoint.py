"""Resumable training: the latest full training state (network, optimiser, lr scheduler, trainer epoch and
iteration, the loss's mu, the RNG states) saved every epoch, and restored with ``--resume``.

ignite's ``Checkpoint`` (atomic ``DiskSaver``) and MONAI's ``CheckpointLoader`` do the work; these handlers only
add what a bundle config cannot declare: the trainer itself (a handler inside ``train#trainer`` cannot
reference ``@train#trainer`` without a circular reference), the random number generators, and the MLflow run
name to continue.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, DiskSaver
from monai.handlers import CheckpointLoader

from hkafusion_monai.io.atomic import atomic_write, check_output_folder
from hkafusion_monai.utils import (
    CheckpointError,
    CheckpointNotFoundError,
    OutputExistsError,
    TrainingSetupError,
    as_bool,
    file_sha256,
    path_or_flag,
)
from hkafusion_monai.utils.weights import read_checkpoint, state_dict_of

__all__ = [
    "RNGState",
    "TrainingStateSaver",
    "TrainingStateLoader",
    "WeightsLoader",
    "check_output_dir",
    "checkpoint_label",
    "latest_checkpoint",
    "resume_run_name",
    "trained_or_shipped",
]

_RUN_FILE = "run.json"
_CHECKPOINT = re.compile(r"checkpoint_(?:epoch|iteration)=(\d+)\.pt$")


class RNGState:
    """The torch, numpy and Python global random states as tensors (so ``torch.load(weights_only=True)`` works)."""

    def state_dict(self) -> dict[str, torch.Tensor]:
        _, keys, pos, has_gauss, gauss = np.random.get_state()
        version, internal, gauss_next = random.getstate()
        return {
            "torch": torch.get_rng_state(),
            "numpy_keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "numpy_rest": torch.tensor([pos, has_gauss, gauss], dtype=torch.float64),
            "python": torch.tensor(internal, dtype=torch.int64),
            "python_rest": torch.tensor([version, -1.0 if gauss_next is None else gauss_next], dtype=torch.float64),
        }

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        torch.set_rng_state(state["torch"])
        pos, has_gauss, gauss = state["numpy_rest"].tolist()
        np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), int(pos), int(has_gauss), gauss))
        version, gauss_next = state["python_rest"].tolist()
        random.setstate(
            (int(version), tuple(int(v) for v in state["python"].tolist()), None if gauss_next < 0 else gauss_next)
        )


def latest_checkpoint(ckpt_dir: str | os.PathLike) -> Path | None:
    """The ``checkpoint_epoch=N.pt`` (or ``iteration=N``) with the largest N in ``ckpt_dir``, or None."""
    found = [(int(m.group(1)), p) for p in Path(ckpt_dir).glob("checkpoint_*.pt") if (m := _CHECKPOINT.search(p.name))]
    return max(found)[1] if found else None


def resume_run_name(ckpt_dir: str | os.PathLike, resume: Any) -> str | None:
    """The MLflow run name of the training being resumed (from ``ckpt_dir/run.json``), or None when not resuming."""
    if path_or_flag(resume, "latest", "resume") is None:
        return None
    path = Path(ckpt_dir) / _RUN_FILE
    return json.loads(path.read_text())["run_name"] if path.is_file() else None


def trained_or_shipped(ckpt_dir: str | os.PathLike, shipped: str | os.PathLike) -> str:
    """The weights ``evaluating`` scores: the best checkpoint (``model.pt``) of the training run whose
    checkpoints are in ``ckpt_dir`` (the same ``--output_dir``), else the ``shipped`` weights."""
    best = Path(ckpt_dir) / "model.pt"
    return str(best if best.is_file() else shipped)


def checkpoint_label(path: str | os.PathLike) -> str:
    """A checkpoint named for a report: its last three path parts and the start of its SHA-256, e.g.
    ``my_run/checkpoints/model.pt (sha256 1a2b3c4d5e6f)``: enough to tell two runs' ``model.pt`` apart without
    writing the user's folders into a report that travels."""
    p = Path(path)
    return f"{Path(*p.parts[-3:]).as_posix()} (sha256 {file_sha256(p)[:12]})"


def check_output_dir(ckpt_dir: str | os.PathLike, resuming: bool, overwrite: bool | str = False) -> None:
    """Refuse to start a new training over the checkpoints of an earlier one.

    Without ``--resume``, a folder that holds ``model.pt``, ``model_final.pt`` or ``checkpoint_*.pt`` is an
    earlier run's result: the new run would replace it. With ``overwrite``, those files (and ``run.json``) are
    removed first, so that a later ``--resume`` cannot pick up the old run's state.

    Raises:
        OutputExistsError: naming the folder, its files and the three ways on.
        OptionError: a file stands where the folder (or one of its parents, ``--output_dir``) must be.
    """
    folder = check_output_folder(ckpt_dir, "--output_dir")
    if resuming:
        return
    found = sorted(
        p for p in folder.glob("*.pt") if p.name in ("model.pt", "model_final.pt") or _CHECKPOINT.search(p.name)
    )
    if not found:
        return
    if not as_bool(overwrite, "overwrite"):
        names = ", ".join(p.name for p in found[:4]) + (" ..." if len(found) > 4 else "")
        raise OutputExistsError(
            f"{folder} holds the checkpoints of an earlier training ({names}); continue it with --resume true, "
            "train into another --output_dir, or replace it with --overwrite true"
        )
    for path in [*found, folder / _RUN_FILE]:
        path.unlink(missing_ok=True)


class TrainingStateSaver:
    """Save the latest full training state every ``save_interval`` epochs (or iterations), and once more at the
    end, atomically; adds the trainer and the RNG states when attached.

    ignite's public ``Checkpoint`` with ``DiskSaver(atomic=True)``, as MONAI's ``CheckpointSaver`` builds them
    (same file names: ``checkpoint_epoch=N.pt``, the final ``final_filename``) but atomic: MONAI writes in place
    (``atomic=False``), and a training killed mid-write would leave a truncated latest checkpoint and nothing to
    resume from. An atomic write goes to a temporary file that is then renamed (the file is readable by its
    owner only, which suits a training state).

    Args:
        save_dir: the checkpoint folder.
        save_dict: the objects to save besides the trainer, e.g. network, optimiser, lr scheduler, the
            dynamic-mu handler.
        run_name: the MLflow run name, written to ``save_dir/run.json`` so that ``--resume`` continues that run.
        save_interval: save every this many epochs (``epoch_level``) or iterations; 0: never.
        n_saved: how many interval checkpoints to keep.
        epoch_level: count ``save_interval`` in epochs (True) or iterations.
        save_final: also save when the training completes (or raises).
        final_filename: the final checkpoint's file name (default ``checkpoint_final.pt``).
        file_prefix: prefix of the interval checkpoints' names.
    """

    def __init__(
        self,
        save_dir: str,
        save_dict: dict,
        run_name: str | None = None,
        save_interval: int = 1,
        n_saved: int | None = 1,
        epoch_level: bool = True,
        save_final: bool = False,
        final_filename: str | None = None,
        file_prefix: str = "",
    ) -> None:
        # the Checkpoint objects keep this same dict, so adding the trainer later reaches them
        self.save_dict = dict(save_dict, rng=RNGState())
        self.save_dir = save_dir
        self.run_name = run_name
        self.save_interval = save_interval
        self.epoch_level = epoch_level
        unit = "epoch" if epoch_level else "iteration"
        self.interval_checkpoint = None
        if save_interval > 0:
            self.interval_checkpoint = Checkpoint(
                to_save=self.save_dict,
                save_handler=DiskSaver(save_dir, require_empty=False, atomic=True),
                filename_prefix=file_prefix,
                score_function=lambda engine: engine.state.epoch if epoch_level else engine.state.iteration,
                score_name=unit,
                n_saved=n_saved,
            )
        self.final_checkpoint = None
        if save_final:
            self.final_checkpoint = Checkpoint(
                to_save=self.save_dict,
                save_handler=DiskSaver(save_dir, require_empty=False, atomic=True),
                filename_pattern=final_filename or "checkpoint_final.pt",
                n_saved=1,
            )

    def attach(self, engine: Engine) -> None:
        self.save_dict["trainer"] = engine
        if self.interval_checkpoint is not None:
            event = Events.EPOCH_COMPLETED if self.epoch_level else Events.ITERATION_COMPLETED
            engine.add_event_handler(event(every=self.save_interval), self.interval_checkpoint)
        if self.final_checkpoint is not None:
            engine.add_event_handler(Events.COMPLETED, self.final_checkpoint)
            engine.add_event_handler(Events.EXCEPTION_RAISED, self._save_final_on_error)
        if self.run_name:
            text = json.dumps({"run_name": self.run_name})
            atomic_write(
                Path(self.save_dir) / _RUN_FILE,
                lambda tmp: Path(tmp).write_text(text, encoding="utf-8"),
                overwrite=True,
            )

    def _save_final_on_error(self, engine: Engine, error: Exception) -> None:
        """Save the state reached (as MONAI's ``CheckpointSaver`` does), then let the error go on."""
        if self.final_checkpoint is not None:  # always: attach() adds this handler with the final checkpoint
            self.final_checkpoint(engine)
        raise error


class _SafeCheckpointLoader(CheckpointLoader):
    """MONAI's ``CheckpointLoader`` (its arguments, ``attach`` and what it restores), whose file is read once and
    safely: :func:`hkafusion_monai.utils.weights.read_checkpoint` (``weights_only=True``, one
    :class:`~hkafusion_monai.utils.errors.CheckpointError` naming a bad file, never torch's advice to load it
    unsafely); its loading errors (missing keys, shapes) end in one error naming the file.

    MONAI's ``__call__`` reads the file itself (``torch.load``) and takes no checkpoint already read, so this
    ``__call__`` reads it through the safe reader and restores it as MONAI's does: ignite's
    ``Checkpoint.load_objects``, a bare state dict taken for the one object to load, the trainer's
    ``max_epochs`` kept. MONAI's ``strict_shape=False`` (skipping layers of another shape) is refused: these
    loaders read this network's own weights.
    """

    #: what the file must be, for the error message
    expected = "a checkpoint of this network"

    def __init__(self, load_path: str, load_dict: dict, **kwargs: Any) -> None:
        super().__init__(load_path=load_path, load_dict=load_dict, **kwargs)
        if not self.strict_shape:
            raise ValueError(f"{type(self).__name__}: strict_shape=False is not supported (this network's weights)")

    def _check(self, checkpoint: Any) -> None:
        """Raise a :class:`CheckpointError` for a safely read file that is not what this loader needs."""

    def __call__(self, engine: Engine) -> None:
        checkpoint = read_checkpoint(self.load_path, self.map_location or "cpu")
        self._check(checkpoint)
        first = next(iter(self.load_dict))
        if len(self.load_dict) == 1 and first not in checkpoint:  # a bare state dict of the one object
            checkpoint = {first: checkpoint}
        prior_max_epochs = engine.state.max_epochs
        try:
            Checkpoint.load_objects(to_load=self.load_dict, checkpoint=checkpoint, strict=self.strict)
        except (RuntimeError, KeyError, TypeError) as e:  # load_state_dict: missing/unexpected keys, shapes
            detail = " ".join(str(e).split())[:300]
            raise CheckpointError(f"{self.load_path}: not {self.expected} ({detail})") from None
        if prior_max_epochs is not None and engine.state.epoch > prior_max_epochs:
            raise TrainingSetupError(
                f"{self.load_path}: Epoch count ({engine.state.epoch}) in checkpoint is larger than the "
                f"`engine.state.max_epochs` ({prior_max_epochs}) of engine; raise --epochs to continue it"
            )
        engine.state.max_epochs = prior_max_epochs
        self.logger.info(f"Restored all variables from {self.load_path}")


class TrainingStateLoader(_SafeCheckpointLoader):
    """Restore a :class:`TrainingStateSaver` checkpoint (and the trainer and RNG states) when training starts.

    The file is read safely first (:func:`hkafusion_monai.utils.weights.read_checkpoint`): a hostile, corrupt or
    foreign ``--resume`` file ends in one error naming it.

    Args:
        resume: ``True`` for the latest checkpoint in ``ckpt_dir``, or the path of a checkpoint.
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
        if requested is None:
            raise ValueError("TrainingStateLoader: resume is off; disable the handler instead.")
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
        super().__init__(load_path=str(path), load_dict=dict(load_dict, rng=RNGState()), **kwargs)

    def _check(self, checkpoint: Any) -> None:
        missing = (
            sorted(k for k in self.load_dict if k != "trainer" and k not in checkpoint)
            if isinstance(checkpoint, Mapping)
            else ["model"]
        )
        if missing:
            raise CheckpointError(f"{self.load_path}: not {self.expected}; it has no {', '.join(missing)}")

    def attach(self, engine: Engine) -> None:
        self.load_dict["trainer"] = engine
        super().attach(engine)


class WeightsLoader(_SafeCheckpointLoader):
    """MONAI's ``CheckpointLoader`` for network weights (a warm start, the evaluated model), whose bad file ends
    in one clear :class:`~hkafusion_monai.utils.errors.CheckpointError` naming it instead of torch's raw error
    (which advises the unsafe ``weights_only=False``).

    The file is read once, safely (:func:`hkafusion_monai.utils.weights.read_checkpoint`), when the engine
    starts, and restored as MONAI's loader restores it.

    Args:
        load_path: the weights file (a state dict, or a training state with ``"model"``).
        load_dict: ``{"model": network}``.
        kwargs: as for ``CheckpointLoader`` (``map_location``, ``strict``, ...).
    """

    def _check(self, checkpoint: Any) -> None:
        state_dict_of(checkpoint, self.load_path)
