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
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from monai.utils import IgniteInfo, min_version, optional_import

from hkafusion_monai.io.atomic import atomic_write
from hkafusion_monai.utils.hashing import name_digest
from hkafusion_monai.utils.provenance import git_commit
from hkafusion_monai.utils.quantisation import to_uint8

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
    "flatten_params",
    "scrub_paths",
    "fusion_grid",
    "report_outputs",
]

logger = logging.getLogger(__name__)

#: MLflow accepts at most 100 params per request (and MONAI's handler sends all in one).
_PARAMS_PER_BATCH = 100
_MAX_PARAM_CHARS = 500


def datalist_summary(datalist: str | os.PathLike, log_names: bool = False) -> dict[str, Any]:
    """Item counts per list and a SHA-256 of the datalist's bytes: enough to identify the data of a run without
    logging the item paths, which can identify patients; the file's name only with ``log_names``."""
    path = Path(datalist)
    raw = path.read_bytes()
    spec = json.loads(raw)
    summary: dict[str, Any] = {"datalist_sha256": hashlib.sha256(raw).hexdigest()}
    if log_names:
        summary["datalist_file"] = path.name
    for key, value in spec.items():
        if isinstance(value, list):
            summary[f"datalist_{key}_count"] = len(value)
    return summary


def scrub_paths(config: Any, keep_under: Sequence[str | os.PathLike] = ()) -> Any:
    """A copy of a config whose strings that name existing files or folders (outside ``keep_under``) are
    replaced by ``"<path sha256:...>"``: data paths often carry patient names."""
    roots = [Path(p).resolve() for p in keep_under]
    if isinstance(config, Mapping):
        return {k: scrub_paths(v, keep_under) for k, v in config.items()}
    if isinstance(config, list):
        return [scrub_paths(v, keep_under) for v in config]
    if isinstance(config, str) and config and config[0] not in "$@%" and len(config) < 4096:
        try:
            path = Path(config)
            if ("/" in config or os.sep in config or path.suffix) and path.exists():
                resolved = path.resolve()
                if not any(resolved == r or r in resolved.parents for r in roots):
                    return f"<path sha256:{name_digest(str(resolved))}>"
        except (OSError, ValueError):
            pass
    return config


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


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Resolved params as MLflow strings, nested keys joined with ``.``: numbers as numbers (``"0.0002"``),
    sequences as JSON (``"[128, 128]"``), ``None`` as ``"none"``; each cut to 500 characters."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, name))
            continue
        if isinstance(value, bool) or value is None:
            text = str(value).lower()
        elif isinstance(value, (int, float, str)):
            text = str(value)
        elif isinstance(value, (list, tuple)):
            text = json.dumps(value, default=str)
        else:
            text = str(value)
        flat[name] = text[:_MAX_PARAM_CHARS]
    return flat


def _source_tags(commit: str) -> dict[str, str]:
    """MLflow's system tags for where a run came from: the entry point, the user and the git commit."""
    import getpass

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    entry = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("python")
    if entry.name == "__main__.py" and entry.parent.name == "bundle":  # python -m monai.bundle run <id>
        source = "python -m monai.bundle " + " ".join(a for a in sys.argv[1:3] if not a.startswith("-"))
    else:
        source = entry.name
    tags = {"mlflow.user": user, "mlflow.source.name": source, "mlflow.source.type": "LOCAL", "git_commit": commit}
    if commit != "unknown":
        tags["mlflow.source.git.commit"] = commit.replace("+dirty", "")
    return tags


class MLflowRunRecorder:
    """At the start of a training or evaluation run, record in the MLflow run what makes it reproducible.

    - params: the run's settings as resolved values (``params``, declared in the config as
      ``tracked_params``: numbers as numbers, lists as JSON, no unresolved ``$`` expressions), the datalist's
      :func:`datalist_summary` (counts and hash, never the item paths), the git commit and ``extra_params``;
    - tags: the git commit, the user, and the entry point (MLflow's ``mlflow.source.*`` and ``mlflow.user``);
    - artifacts: the executed config as ``executed_config.json`` (also written to ``output_dir``) and the
      config files named on the command line. Unless ``log_names``, every string of the executed config that
      names an existing file or folder outside the bundle is replaced by a hash (:func:`scrub_paths`):
      nothing that names a patient's file reaches a tracking server unless asked.

    Args:
        mlflow_handler: the ``monai.handlers.MLFlowHandler`` of the same engine (attach this recorder after it).
        output_dir: where ``executed_config.json`` is written; ``None`` to skip the file.
        datalist: path of the run's datalist JSON.
        params: the resolved settings to log (the config's ``tracked_params``).
        config: the executed config; default: that of the parser building this handler.
        extra_params: more params to log, e.g. ``{"task": "mri_pet"}``.
        log_names: log file names and paths as they are (off by default).
        keep_under: folders whose paths are kept in the executed config (the bundle).
    """

    def __init__(
        self,
        mlflow_handler: Any = None,
        output_dir: str | os.PathLike | None = None,
        datalist: str | os.PathLike | None = None,
        params: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
        extra_params: Mapping[str, Any] | None = None,
        log_names: bool | str = False,
        keep_under: Sequence[str | os.PathLike] = (),
    ) -> None:
        from hkafusion_monai.utils import as_bool

        self.mlflow_handler = mlflow_handler
        self.output_dir = output_dir
        self.datalist = datalist
        self.log_names = as_bool(log_names, "log_names")
        self.params = dict(params or {})
        if config is None:
            parser = _instantiating_parser()
            config = parser.get() if parser is not None else {}
        # a deep copy as plain JSON: later parsing must not change what is recorded
        config = json.loads(json.dumps(config, default=str))
        self.config = config if self.log_names else scrub_paths(config, keep_under)
        self.extra_params = dict(extra_params or {})

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Engine) -> None:
        config = {k: v for k, v in self.config.items() if k != "_meta_"}
        files = [f for f in config_files_from_argv() if Path(f).is_file()]
        params = flatten_params(self.params)
        if "version" in self.config.get("_meta_", {}):
            params["bundle_version"] = str(self.config["_meta_"]["version"])
        if self.datalist is not None:
            params.update({k: str(v) for k, v in datalist_summary(self.datalist, self.log_names).items()})
        commit = git_commit(Path(__file__).parent)
        params["git_commit"] = commit
        if files:
            params["config_files"] = ", ".join(Path(f).name for f in files)[:_MAX_PARAM_CHARS]
        params.update(flatten_params(self.extra_params))

        written = None
        if self.output_dir is not None and config:
            Path(self.output_dir).mkdir(parents=True, exist_ok=True)
            written = Path(self.output_dir) / "executed_config.json"
            text = json.dumps(config, indent=2)
            atomic_write(written, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"), overwrite=True)

        handler = self.mlflow_handler
        if handler is None or getattr(handler, "cur_run", None) is None:
            return
        import mlflow

        run_id = handler.cur_run.info.run_id
        logged = handler.client.get_run(run_id).data.params
        new = [mlflow.entities.Param(k, v) for k, v in params.items() if k not in logged]
        for start in range(0, len(new), _PARAMS_PER_BATCH):
            handler.client.log_batch(run_id, params=new[start : start + _PARAMS_PER_BATCH])
        tags = [mlflow.entities.RunTag(k, v) for k, v in _source_tags(commit).items()]
        handler.client.log_batch(run_id, tags=tags)
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


def fusion_grid(
    columns: Sequence[Sequence[np.ndarray]], titles: Sequence[str] | None = None, gap: int = 2
) -> np.ndarray:
    """Tile rows of images into one uint8 RGB image: ``columns[c][r]`` is row r of column c, each a 2-D image
    in [0, 1] (grey) or a uint8 ``(H, W, 3)`` picture; ``titles`` are written above the columns."""
    from PIL import Image, ImageDraw

    def as_rgb(img: np.ndarray) -> np.ndarray:
        if img.ndim == 3:
            return np.asarray(img, dtype=np.uint8)
        grey = to_uint8(np.asarray(img))
        return np.repeat(grey[..., None], 3, axis=-1)

    n_rows = len(columns[0])
    h = max(img.shape[0] for col in columns for img in col)
    w = max(img.shape[1] for col in columns for img in col)
    top = 16 if titles else 0
    grid = np.full((top + n_rows * (h + gap) - gap, len(columns) * (w + gap) - gap, 3), 255, dtype=np.uint8)
    for c, col in enumerate(columns):
        for r, img in enumerate(col):
            y, x = top + r * (h + gap), c * (w + gap)
            grid[y : y + img.shape[0], x : x + img.shape[1]] = as_rgb(img)
    if titles:
        picture = Image.fromarray(grid)
        draw = ImageDraw.Draw(picture)
        for c, title in enumerate(titles):
            draw.text((c * (w + gap) + 3, 2), str(title), fill=(0, 0, 0))
        grid = np.asarray(picture)
    return grid


class FusionGridHandler:
    """Save a labelled PNG grid of the first validation fusions at every evaluator run, and log it to MLflow.

    Rows are pairs; columns, titled, are MRI | CT/PET/SPECT | average | max | laplacian | HKAFusion. PET and
    SPECT are shown in their pseudo-colour (the source file's chroma on each fused luminance, when the batch
    keeps the file names); the rest is grey. Switch it off (``enabled=False``) for data that must not leave the
    site: nothing is then written or logged.

    Args:
        output_dir: folder of the PNG files (``val_epoch_0001.png``, ...).
        mlflow_handler: the evaluator's ``MLFlowHandler``; its run receives the PNG under ``figures/``.
        max_pairs: rows of the grid.
        filename: file name, formatted with the evaluator's ``epoch``.
        enabled: False to write nothing.
        model_name: the title of the network's column.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        mlflow_handler: Any = None,
        max_pairs: int = 4,
        filename: str = "val_epoch_{epoch:04d}.png",
        enabled: bool | str = True,
        model_name: str = "HKAFusion",
    ) -> None:
        from hkafusion_monai.utils import as_bool

        self.output_dir = Path(output_dir)
        self.mlflow_handler = mlflow_handler
        self.max_pairs = max_pairs
        self.filename = filename
        self.enabled = as_bool(enabled, "log_figures")
        self.model_name = model_name
        self._images: list[np.ndarray] = []
        self._preds: list[np.ndarray] = []
        self._sources: list[tuple[str | None, str]] = []  # (colour source file, modality) per pair
        self.last_path: Path | None = None

    def attach(self, engine: Engine) -> None:
        if not self.enabled:
            return
        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._write)

    def _reset(self, engine: Engine) -> None:
        self._images, self._preds, self._sources = [], [], []

    def _collect(self, engine: Engine) -> None:
        if len(self._images) >= self.max_pairs:
            return
        output = engine.state.output
        items = output if isinstance(output, list) else [output]
        for item in items:
            image = item["image"]
            meta = getattr(image, "meta", None) or {}
            image, pred = torch.as_tensor(image).detach().cpu(), torch.as_tensor(item["pred"]).detach().cpu()
            if image.ndim == 3:  # decollated: one channel-first sample
                image, pred = image[None], pred[None]
                meta = {k: [v] for k, v in meta.items()}
            files, modalities = meta.get("other_filename"), meta.get("modality")
            for b in range(image.shape[0]):
                if len(self._images) < self.max_pairs:
                    self._images.append(image[b].float().numpy())
                    self._preds.append(pred[b, 0].float().numpy())
                    file = files[b] if isinstance(files, (list, tuple)) and b < len(files) else None
                    modality = modalities[b] if isinstance(modalities, (list, tuple)) and b < len(modalities) else ""
                    self._sources.append((None if file is None else str(file), str(modality or "other")))

    def _write(self, engine: Engine) -> None:
        if not self._images:
            return
        from PIL import Image

        from hkafusion_monai.handlers.html_report import colourise, load_display_image
        from hkafusion_monai.networks import LaplacianPyramidFusion

        stack = torch.from_numpy(np.stack(self._images))
        fused = {
            "average": stack.mean(1).numpy(),
            "max": stack.amax(1).numpy(),
            "laplacian": LaplacianPyramidFusion()(stack)[:, 0].numpy(),
            self.model_name: np.stack(self._preds),
        }
        columns: list[list[np.ndarray]] = [[img[0] for img in self._images], []]
        for name in fused:
            columns.append([])
        for r, (img, (file, _)) in enumerate(zip(self._images, self._sources)):
            rgb = load_display_image(file) if file else None
            if rgb is not None and (rgb.ndim != 3 or rgb.shape[:2] != img.shape[1:]):
                rgb = None  # grey source, or resized for the network: show the network's view
            columns[1].append(rgb if rgb is not None else img[1])
            for c, values in enumerate(fused.values(), start=2):
                columns[c].append(colourise(values[r], rgb) if rgb is not None else values[r])
        modalities = {m for _, m in self._sources}
        titles = ["MRI", "/".join(sorted(modalities)) if modalities else "other", *fused]
        grid = Image.fromarray(fusion_grid(columns, titles))
        self.output_dir.mkdir(parents=True, exist_ok=True)
        path = self.output_dir / self.filename.format(epoch=int(engine.state.epoch))
        atomic_write(path, lambda tmp: grid.save(tmp, format="PNG"), overwrite=True)
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
