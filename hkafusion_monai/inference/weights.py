"""The network's weights for inference: which checkpoint (the shipped one by default), loading it safely, and the
model version recorded with every result."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from ignite.engine import Engine

from hkafusion_monai.handlers.checkpoint_loader import WeightsLoader
from hkafusion_monai.io.bundle import default_bundle_dir
from hkafusion_monai.utils.errors import CheckpointNotFoundError
from hkafusion_monai.utils.weights import NO_WEIGHTS_MESSAGE

__all__ = ["NO_WEIGHTS_MESSAGE", "bundle_version", "load_weights", "shipped_weights"]


def load_weights(
    network: torch.nn.Module, path: str | os.PathLike | None, map_location: str | torch.device = "cpu"
) -> torch.nn.Module:
    """Load a checkpoint into ``network`` (strictly) and put it in eval mode; returns ``network``.

    ``path`` holds a state dict, or a ``CheckpointSaver`` dict with the state dict under ``"model"`` (the
    full training state). The bundle's one weights loader,
    :class:`~hkafusion_monai.handlers.checkpoint_loader.WeightsLoader` (MONAI's ``CheckpointLoader``), does it,
    as the workflows' handlers and ``inference.json``'s ``initialize`` do: read safely, every bad file one clear
    error.

    Raises:
        CheckpointNotFoundError: no file at ``path`` (a FileNotFoundError; the message says how to pass one).
        CheckpointError: the file is unreadable, or holds no state dict of this network (a ValueError).
    """
    if path is None or not Path(path).is_file():
        raise CheckpointNotFoundError(NO_WEIGHTS_MESSAGE.format(path=path, option="--ckpt_path"))
    loader = WeightsLoader(load_path=str(path), load_dict={"model": network}, map_location=map_location)
    loader(Engine(lambda engine, batch: None))  # no engine state to restore: an idle one
    return network.eval()


def shipped_weights(bundle_dir: str | os.PathLike | None, task: str | None) -> Path:
    """The bundle's weights for ``task``: ``models/model_<task>.pt`` when a task-specific model is shipped,
    else (and for ``task=None``) ``models/model.pt`` (the joint model trained on all three tasks).
    ``bundle_dir=None``: the bundle this package runs with (an installed wheel ships no weights: pass them)."""
    models = Path(bundle_dir if bundle_dir is not None else default_bundle_dir()) / "models"
    specific = models / f"model_{task}.pt"
    return specific if task is not None and specific.is_file() else models / "model.pt"


def bundle_version(meta_file: str | os.PathLike | None = None) -> str:
    """The bundle version: ``version`` of a ``metadata.json``, or of the ``metadata.json`` a TorchScript
    export (``.ts``, ``ckpt_export``) carries inside; ``None``: the bundle this package runs with (the source
    checkout's, else the copy packaged in the wheel). ``"unknown"`` when the file is missing or unreadable."""
    path = Path(meta_file) if meta_file is not None else default_bundle_dir() / "configs" / "metadata.json"
    try:
        if path.suffix == ".ts":
            extra = {"metadata.json": ""}
            torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
            text = extra["metadata.json"]
        else:
            text = path.read_text()
        return str(json.loads(text).get("version", "unknown"))
    except (OSError, ValueError, RuntimeError):
        return "unknown"
