"""Resumable training, the saving side: the latest full training state (network, optimiser, lr scheduler,
trainer epoch and iteration, the loss's mu, the RNG states) saved every epoch, atomically, into a folder that
holds no earlier training's checkpoints (or that ``--resume`` continues).

ignite's ``Checkpoint`` (atomic ``DiskSaver``) does the work; this handler only adds what a bundle config cannot
declare: the trainer itself (a handler inside ``train#trainer`` cannot reference ``@train#trainer`` without a
circular reference), the random number generators, and the MLflow run name to continue. Restoring is
:mod:`hkafusion_monai.handlers.checkpoint_loader`.
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

from hkafusion_monai.io.atomic import atomic_write, check_output_folder, storage_errors
from hkafusion_monai.utils import OutputExistsError, StorageError, as_bool, file_sha256, path_or_flag
from hkafusion_monai.utils.cli import project_error

__all__ = [
    "RNGState",
    "TrainingStateSaver",
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
            engine.add_event_handler(event(every=self.save_interval), self._save, self.interval_checkpoint)
        if self.final_checkpoint is not None:
            engine.add_event_handler(Events.COMPLETED, self._save, self.final_checkpoint)
            engine.add_event_handler(Events.EXCEPTION_RAISED, self._save_final_on_error)
        if self.run_name:
            text = json.dumps({"run_name": self.run_name})
            atomic_write(
                Path(self.save_dir) / _RUN_FILE,
                lambda tmp: Path(tmp).write_text(text, encoding="utf-8"),
                overwrite=True,
            )

    def _save(self, engine: Engine, checkpoint: Checkpoint) -> None:
        """Save ``checkpoint``; a full or read-only disk ends the training with one line naming the folder."""
        with storage_errors(self.save_dir):
            checkpoint(engine)

    def _save_final_on_error(self, engine: Engine, error: Exception) -> None:
        """Save the state reached (as MONAI's ``CheckpointSaver`` does), then let the error go on; not when the
        error is the disk's (the save would meet it again)."""
        if self.final_checkpoint is not None and not isinstance(project_error(error), StorageError):
            self._save(engine, self.final_checkpoint)
        raise error
