"""What MONAI's ``MLFlowHandler`` does not log on its own: the run record (flattened config, datalist summary,
git commit, the executed configs), the learning rate per epoch, and PNG grids of validation fusions.

Each handler here works beside an ``MLFlowHandler`` and uses its client and run, so there is one MLflow run
per workflow run. Without an MLflow handler they still write their files.
"""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from monai.utils import IgniteInfo, min_version, optional_import

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import(
        "ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine", as_type="decorator"
    )

__all__ = [
    "MLflowRunRecorder",
    "LearningRateRecorder",
    "FusionGridHandler",
    "config_files_from_argv",
    "datalist_summary",
    "flatten_config",
    "git_commit",
    "fusion_grid",
    "report_outputs",
]

logger = logging.getLogger(__name__)

#: MLflow accepts at most 100 params per request (and MONAI's handler sends all in one).
_PARAMS_PER_BATCH = 100
_MAX_PARAM_CHARS = 500


def git_commit(path: str | os.PathLike = ".") -> str:
    """The checked-out commit of the repository containing ``path`` (``+dirty`` if modified), or ``"unknown"``."""
    try:
        cwd = Path(path).resolve()
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=cwd, capture_output=True, text=True, check=True)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def datalist_summary(datalist: str | os.PathLike) -> dict[str, Any]:
    """File name, item counts per list and a SHA-256 of the datalist's bytes: enough to identify the data of a
    run without logging the item paths, which can identify patients."""
    path = Path(datalist)
    raw = path.read_bytes()
    spec = json.loads(raw)
    summary: dict[str, Any] = {"datalist_file": path.name, "datalist_sha256": hashlib.sha256(raw).hexdigest()}
    for key, value in spec.items():
        if isinstance(value, list):
            summary[f"datalist_{key}_count"] = len(value)
    return summary


def config_files_from_argv(argv: Sequence[str] | None = None) -> list[str]:
    """The ``--config_file`` list of a ``python -m monai.bundle run ...`` command line (empty if none)."""
    argv = list(sys.argv if argv is None else argv)
    value = None
    for i, arg in enumerate(argv):
        if arg == "--config_file" and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--config_file="):
            value = arg.split("=", 1)[1]
    if value is None:
        return []
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        parsed = value
    files = [parsed] if isinstance(parsed, str) else list(parsed)
    return [str(f) for f in files]


def _instantiating_parser() -> Any:
    """The ``monai.bundle.ConfigParser`` that is instantiating the caller, found on the call stack, or None.

    MONAI saves the executed config only under ``--tracking``, which would add a second set of MLflow handlers
    to the ones our configs declare, and a config expression cannot reference the whole config (``@`` alone is
    circular). The parser that builds a handler is, however, a few frames up while it builds it; its ``get()``
    is the merged config with the command line's overrides, exactly what MONAI would save.
    """
    from monai.bundle import ConfigParser

    frame = sys._getframe(1)
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, ConfigParser):
            return candidate
        frame = frame.f_back
    return None


def flatten_config(config: Any, prefix: str = "") -> dict[str, str]:
    """A nested config as ``{"train.trainer.max_epochs": "10", ...}``, values as strings cut to 500 characters.

    Keys join the config ids with ``.`` (MLflow rejects MONAI's ``#`` in param names)."""
    flat: dict[str, str] = {}
    if isinstance(config, Mapping):
        items = config.items()
    elif isinstance(config, list) and any(isinstance(v, (Mapping, list)) for v in config):
        items = ((str(i), v) for i, v in enumerate(config))
    else:
        text = json.dumps(config) if not isinstance(config, str) else config
        return {prefix or "value": text[:_MAX_PARAM_CHARS]}
    for key, value in items:
        flat.update(flatten_config(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


class MLflowRunRecorder:
    """At the start of a training or evaluation run, record in the MLflow run what makes it reproducible.

    - params: the flattened executed config (the merged configs with their overrides, taken from the
      ``ConfigParser`` that builds this handler, or ``config``), with the datalist replaced by its
      :func:`datalist_summary` (file name, counts, hash), never the item paths;
    - params and tags: the git commit of the code;
    - artifacts: the executed config as ``executed_config.json`` (also written to ``output_dir``) and the
      config files named on the command line.

    Args:
        mlflow_handler: the ``monai.handlers.MLFlowHandler`` of the same engine (attach this recorder after it).
        output_dir: where ``executed_config.json`` is written; ``None`` to skip the file.
        datalist: path of the run's datalist JSON.
        config: the executed config; default: that of the parser building this handler.
        extra_params: more params to log, e.g. ``{"task": "mri_pet"}``.
    """

    def __init__(
        self,
        mlflow_handler: Any = None,
        output_dir: str | os.PathLike | None = None,
        datalist: str | os.PathLike | None = None,
        config: Mapping[str, Any] | None = None,
        extra_params: Mapping[str, Any] | None = None,
    ) -> None:
        self.mlflow_handler = mlflow_handler
        self.output_dir = output_dir
        self.datalist = datalist
        if config is None:
            parser = _instantiating_parser()
            config = parser.get() if parser is not None else {}
        # a deep copy as plain JSON: later parsing must not change what is recorded
        self.config = json.loads(json.dumps(config, default=str))
        self.extra_params = dict(extra_params or {})

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Engine) -> None:
        config = {k: v for k, v in self.config.items() if k != "_meta_"}
        files = [f for f in config_files_from_argv() if Path(f).is_file()]
        if "version" in self.config.get("_meta_", {}):
            config["bundle_version"] = self.config["_meta_"]["version"]
        params: dict[str, str] = {k: v for k, v in flatten_config(config).items() if "datalist" not in k.lower()}
        if self.datalist is not None:
            params.update({k: str(v) for k, v in datalist_summary(self.datalist).items()})
        commit = git_commit(Path(__file__).parent)
        params["git_commit"] = commit
        if files:
            params["config_files"] = ", ".join(Path(f).name for f in files)[:_MAX_PARAM_CHARS]
        params.update({k: str(v)[:_MAX_PARAM_CHARS] for k, v in self.extra_params.items()})

        written = None
        if self.output_dir is not None and config:
            Path(self.output_dir).mkdir(parents=True, exist_ok=True)
            written = Path(self.output_dir) / "executed_config.json"
            tmp = written.with_suffix(".tmp")
            tmp.write_text(json.dumps(config, indent=2))
            tmp.replace(written)

        handler = self.mlflow_handler
        if handler is None or getattr(handler, "cur_run", None) is None:
            return
        import mlflow

        run_id = handler.cur_run.info.run_id
        logged = handler.client.get_run(run_id).data.params
        new = [mlflow.entities.Param(k, v) for k, v in params.items() if k not in logged]
        for start in range(0, len(new), _PARAMS_PER_BATCH):
            handler.client.log_batch(run_id, params=new[start : start + _PARAMS_PER_BATCH])
        handler.client.set_tag(run_id, "git_commit", commit)
        for f in files:
            handler.client.log_artifact(run_id, f, artifact_path="configs")
        if written is not None:
            handler.client.log_artifact(run_id, str(written), artifact_path="configs")


class LearningRateRecorder:
    """Put the optimiser's learning rate into ``engine.state.metrics`` at every epoch end, so that the epoch
    loggers (``MLFlowHandler``, ``StatsHandler``) record the lr per epoch. Attach it before them.

    Args:
        name: the metrics key.
        group: the optimiser parameter group.
    """

    def __init__(self, name: str = "lr", group: int = 0) -> None:
        self.name = name
        self.group = group

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        engine.state.metrics[self.name] = float(engine.optimizer.param_groups[self.group]["lr"])


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def fusion_grid(columns: Sequence[Sequence[np.ndarray]], gap: int = 2) -> np.ndarray:
    """Tile rows of 2-D images in [0, 1] into one uint8 grey image: ``columns[c][r]`` is row r of column c."""
    n_rows = len(columns[0])
    h = max(img.shape[0] for col in columns for img in col)
    w = max(img.shape[1] for col in columns for img in col)
    grid = np.full((n_rows * (h + gap) - gap, len(columns) * (w + gap) - gap), 255, dtype=np.uint8)
    for c, col in enumerate(columns):
        for r, img in enumerate(col):
            y, x = r * (h + gap), c * (w + gap)
            grid[y : y + img.shape[0], x : x + img.shape[1]] = _to_uint8(img)
    return grid


class FusionGridHandler:
    """Save a PNG grid of the first validation fusions at every evaluator run, and log it to MLflow.

    Rows are pairs; columns are MRI | other | pixel average | pixel max | fused. The grid is grey (the
    network's view: the Y channel of colour sources). Switch it off (``enabled=False``) for data that must not
    leave the site: nothing is then written or logged.

    Args:
        output_dir: folder of the PNG files (``val_epoch_0001.png``, ...).
        mlflow_handler: the evaluator's ``MLFlowHandler``; its run receives the PNG under ``figures/``.
        max_pairs: rows of the grid.
        filename: file name, formatted with the evaluator's ``epoch``.
        enabled: False to write nothing.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        mlflow_handler: Any = None,
        max_pairs: int = 4,
        filename: str = "val_epoch_{epoch:04d}.png",
        enabled: bool = True,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.mlflow_handler = mlflow_handler
        self.max_pairs = max_pairs
        self.filename = filename
        self.enabled = enabled
        self._images: list[np.ndarray] = []
        self._preds: list[np.ndarray] = []
        self.last_path: Path | None = None

    def attach(self, engine: Engine) -> None:
        if not self.enabled:
            return
        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._write)

    def _reset(self, engine: Engine) -> None:
        self._images, self._preds = [], []

    def _collect(self, engine: Engine) -> None:
        if len(self._images) >= self.max_pairs:
            return
        output = engine.state.output
        items = output if isinstance(output, list) else [output]
        for item in items:
            image, pred = torch.as_tensor(item["image"]).detach().cpu(), torch.as_tensor(item["pred"]).detach().cpu()
            if image.ndim == 3:  # decollated: one channel-first sample
                image, pred = image[None], pred[None]
            for b in range(image.shape[0]):
                if len(self._images) < self.max_pairs:
                    self._images.append(image[b].float().numpy())
                    self._preds.append(pred[b, 0].float().numpy())

    def _write(self, engine: Engine) -> None:
        if not self._images:
            return
        mri = [img[0] for img in self._images]
        other = [img[1] for img in self._images]
        columns = [mri, other, [(a + b) / 2 for a, b in zip(mri, other)], [np.maximum(a, b) for a, b in zip(mri, other)]]
        columns.append(self._preds)
        from PIL import Image

        self.output_dir.mkdir(parents=True, exist_ok=True)
        path = self.output_dir / self.filename.format(epoch=int(engine.state.epoch))
        tmp = path.with_suffix(".tmp.png")
        Image.fromarray(fusion_grid(columns)).save(tmp)
        tmp.replace(path)
        self.last_path = path
        handler = self.mlflow_handler
        if handler is not None and getattr(handler, "cur_run", None) is not None:
            handler.client.log_artifact(handler.cur_run.info.run_id, str(path), artifact_path="figures")


def report_outputs(paths: Mapping[str, str]) -> Mapping[str, str]:
    """Print where a workflow run left its outputs (``{"what": "where"}``), and how to open a SQLite MLflow store."""
    lines = ["HKAFusion run finished."] + [f"  {what}: {where}" for what, where in paths.items()]
    lines += [f"  MLflow UI: mlflow ui --backend-store-uri {v}" for v in paths.values() if str(v).startswith("sqlite:")]
    print("\n".join(lines), flush=True)
    return paths
