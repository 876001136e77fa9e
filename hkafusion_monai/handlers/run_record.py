"""The MLflow record of a training or evaluation run: what makes it reproducible, beside what MONAI's
``MLFlowHandler`` logs on its own (the resolved settings, the datalist by counts and hash, the git commit, the
executed config). It writes to the handler's run through :class:`~hkafusion_monai.handlers.mlflow_run.MLflowRun`,
so there is one MLflow run per workflow run.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from ignite.engine import Engine, Events

from hkafusion_monai.handlers.mlflow_run import MLflowRun
from hkafusion_monai.io.atomic import atomic_write
from hkafusion_monai.utils import as_bool
from hkafusion_monai.utils.hashing import file_sha256, name_digest
from hkafusion_monai.utils.provenance import git_commit

__all__ = [
    "MLflowRunRecorder",
    "datalist_summary",
    "flatten_params",
    "running_bundle_config",
    "scrub_paths",
    "source_tags",
]

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


def source_tags(commit: str, run_id: str | None = None) -> dict[str, str]:
    """MLflow's system tags for where a run came from: the entry point, the user and the git commit.

    The entry point is the script, as MLflow names it (``sys.argv[0]``); ``python -m monai.bundle run <run_id>``
    when it is ``monai.bundle``, with the run id of the workflow (:func:`running_bundle_config`).
    """
    import getpass

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    entry = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("python")
    if entry.name == "__main__.py" and entry.parent.name == "bundle":
        source = " ".join(["python -m monai.bundle run", *([run_id] if run_id else [])])
    else:
        source = entry.name
    tags = {"mlflow.user": user, "mlflow.source.name": source, "mlflow.source.type": "LOCAL", "git_commit": commit}
    if commit != "unknown":
        tags["mlflow.source.git.commit"] = commit.replace("+dirty", "")
    return tags


def running_bundle_config() -> tuple[dict[str, Any], str | None] | None:
    """The config of the bundle workflow that is running the caller, as its ``ConfigParser`` holds it, and the
    workflow's run id (``"training"`` for ``monai.bundle run training``; ``None`` for a parser used alone).

    This is the executed config that MONAI exports under ``--tracking`` (``ConfigWorkflow.patch_bundle_tracking``,
    ``save_execute_config``): the config files merged, the bundle's ``metadata.json`` as ``_meta_``, the overrides
    of the command line or of ``--args_file`` applied. Read once the workflow has parsed it, its macros and
    relative ids are resolved and its references written with MONAI's ``::``, as it is executed.

    MONAI hands a handler no reference to the workflow that builds it, so the nearest ``ConfigWorkflow`` (or
    ``ConfigParser``) method on the call stack gives it: the parser that is instantiating or running the caller,
    whatever built the workflow (``python -m monai.bundle``, ``ConfigWorkflow`` in Python, ``torchrun``). ``None``
    when no bundle workflow runs the caller.
    """
    from monai.bundle import ConfigParser, ConfigWorkflow

    parser: ConfigParser | None = None
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if code.co_argcount and code.co_varnames[0] == "self":  # a method: read its ``self`` only
            owner = frame.f_locals.get("self")
            if isinstance(owner, ConfigWorkflow) and (parser is None or owner.parser is parser):
                return owner.parser.get(), owner.run_id
            if parser is None and isinstance(owner, ConfigParser):
                parser = owner
        frame = frame.f_back
    return None if parser is None else (parser.get(), None)


class MLflowRunRecorder:
    """At the start of a training or evaluation run, record in the MLflow run what makes it reproducible.

    - params: the run's settings as resolved values (``params``, declared in the config as
      ``tracked_params``: numbers as numbers, lists as JSON, no unresolved ``$`` expressions), the datalist's
      :func:`datalist_summary` (counts and hash, never the item paths), the git commit and ``extra_params``;
    - tags: the git commit, the user, and the entry point (MLflow's ``mlflow.source.*`` and ``mlflow.user``);
    - artifacts: the executed config as ``configs/executed_config.json`` (also written to ``output_dir``): the
      config files merged with the overrides, as the workflow runs them (:func:`running_bundle_config`, what
      MONAI saves under ``--tracking``). Unless ``log_names``, every string of it that names an existing file or
      folder outside the bundle is replaced by a hash (:func:`scrub_paths`): nothing that names a patient's
      file reaches a tracking server unless asked.

    Args:
        mlflow_run: the :class:`~hkafusion_monai.handlers.mlflow_run.MLflowRun` of the engine's ``MLFlowHandler``
            (attach this recorder after both), or ``None``: write ``executed_config.json`` only.
        output_dir: where ``executed_config.json`` is written; ``None`` to skip the file.
        datalist: path of the run's datalist JSON.
        params: the resolved settings to log (the config's ``tracked_params``).
        config: the executed config to record; default: that of the bundle workflow that builds this recorder
            (:func:`running_bundle_config`), or, for a recorder built outside one, the resolved ``params``.
        meta: the bundle's metadata (``"@_meta_"`` in a config), for the ``bundle_version`` param; default: the
            executed config's ``_meta_``.
        extra_params: more params to log, e.g. ``{"task": "mri_pet"}``.
        network: the trained or evaluated network: logs ``network`` (its class name) and ``network_parameters``.
        weights: ``{"name": path or None}`` of the weights files a run starts from: logs ``name`` (``true`` when a
            file is given, unless ``params`` names it) and ``name_sha256`` (its SHA-256, ``none`` without one),
            never the path.
        log_names: log file names and paths as they are (off by default).
        keep_under: folders whose paths are kept in the executed config (the bundle).
    """

    def __init__(
        self,
        mlflow_run: MLflowRun | None = None,
        output_dir: str | os.PathLike | None = None,
        datalist: str | os.PathLike | None = None,
        params: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
        meta: Mapping[str, Any] | None = None,
        extra_params: Mapping[str, Any] | None = None,
        log_names: bool | str = False,
        keep_under: Sequence[str | os.PathLike] = (),
        network: torch.nn.Module | None = None,
        weights: Mapping[str, str | os.PathLike | None] | None = None,
    ) -> None:
        self.mlflow_run = mlflow_run
        self.run_params: dict[str, Any] = {}
        if network is not None:
            self.run_params["network"] = type(network).__name__
            self.run_params["network_parameters"] = sum(p.numel() for p in network.parameters())
        for name, path in (weights or {}).items():
            self.run_params[name] = path is not None
            self.run_params[f"{name}_sha256"] = file_sha256(path) if path is not None else "none"
        self.output_dir = output_dir
        self.datalist = datalist
        self.log_names = as_bool(log_names, "log_names")
        self.params = dict(params or {})
        running = running_bundle_config()
        self.run_id = None if running is None else running[1]
        if config is None and running is not None:
            config = running[0]
        if config is None:
            config = {"tracked_params": self.params}
        # a deep copy as plain JSON: later parsing must not change what is recorded
        self.config: dict[str, Any] = json.loads(json.dumps(config, default=str))
        self.keep_under = list(keep_under)
        self.meta = dict(meta) if meta is not None else dict(self.config.get("_meta_", {}))
        self.extra_params = dict(extra_params or {})

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Engine) -> None:
        if self.output_dir is not None:
            Path(self.output_dir).mkdir(parents=True, exist_ok=True)
        config = {k: v for k, v in self.config.items() if k != "_meta_"}
        # hashed now that the run's folders exist, so that an output path is hashed as well
        config = config if self.log_names else scrub_paths(config, self.keep_under)
        params = flatten_params({**self.run_params, **self.params})
        if "version" in self.meta:
            params["bundle_version"] = str(self.meta["version"])
        if self.datalist is not None:
            params.update({k: str(v) for k, v in datalist_summary(self.datalist, self.log_names).items()})
        commit = git_commit(Path(__file__).parent)
        params["git_commit"] = commit
        params.update(flatten_params(self.extra_params))

        written = None
        if self.output_dir is not None and config:
            written = Path(self.output_dir) / "executed_config.json"
            text = json.dumps(config, indent=2)
            atomic_write(written, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"), overwrite=True)

        run = self.mlflow_run
        if run is None or not run.active:
            return
        run.log_params(params)
        run.set_tags(source_tags(commit, self.run_id))
        if written is not None:
            run.log_artifact(written, artifact_path="configs")
