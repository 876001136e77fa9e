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
    "bundle_run_args",
    "config_files_from_argv",
    "datalist_summary",
    "executed_config_from_argv",
    "flatten_params",
    "scrub_paths",
    "source_tags",
]

_MAX_PARAM_CHARS = 500
#: the arguments of ``monai.bundle`` ``run``/``create_workflow``/``ConfigWorkflow`` that are not config overrides
_RUN_OPTIONS = (
    "workflow_name",
    "config_file",
    "meta_file",
    "logging_file",
    "tracking",
    "args_file",
    "run_id",
    "init_id",
    "final_id",
    "workflow_type",
    "properties_path",
)


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


def bundle_run_args(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    """The arguments of a ``python -m monai.bundle run ...`` command line as MONAI takes them: parsed by
    python-fire against the signature of ``monai.bundle.scripts.run`` (as ``monai.bundle``'s ``__main__`` does),
    then merged into the ``--args_file`` defaults with ``monai.bundle.update_kwargs`` (as ``create_workflow``
    does; ``None`` values dropped). ``None`` for any other command line (a workflow built in Python)."""
    import fire
    from monai.bundle import update_kwargs

    argv = list(sys.argv if argv is None else argv)
    entry = Path(argv[0]) if argv else Path()
    if len(argv) < 2 or argv[1] != "run" or (entry.name, entry.parent.name) != ("__main__.py", "bundle"):
        return None
    parsed: dict[str, Any] = {}

    def run(
        run_id: str | None = None,
        init_id: str | None = None,
        final_id: str | None = None,
        meta_file: str | Sequence[str] | None = None,
        config_file: str | Sequence[str] | None = None,
        logging_file: str | None = None,
        tracking: str | dict | None = None,
        args_file: str | None = None,
        **override: Any,
    ) -> None:
        parsed.update(
            run_id=run_id,
            init_id=init_id,
            final_id=final_id,
            meta_file=meta_file,
            config_file=config_file,
            logging_file=logging_file,
            tracking=tracking,
            args_file=args_file,
            **override,
        )

    try:
        fire.Fire({"run": run}, command=argv[1:], name="monai.bundle")
    except (SystemExit, fire.core.FireExit):  # not a command line monai.bundle would have run
        return None
    args_file = parsed.pop("args_file", None)
    return update_kwargs(args=args_file, **parsed)


def config_files_from_argv(argv: Sequence[str] | None = None) -> list[str]:
    """The config files of a ``python -m monai.bundle run ...`` command line (empty if none)."""
    args = bundle_run_args(argv) or {}
    files = args.get("config_file") or []
    return [str(f) for f in ([files] if isinstance(files, (str, os.PathLike)) else files)]


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


def source_tags(commit: str) -> dict[str, str]:
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


def executed_config_from_argv(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    """The executed config of a ``python -m monai.bundle run ...`` command line, as ``ConfigWorkflow`` builds it
    and as MONAI saves it under ``--tracking`` (``save_execute_config``): the config files merged by
    ``ConfigParser.read_config``, the bundle's ``metadata.json`` (``--meta_file``, default beside the first
    config) as ``_meta_``, and the overrides applied with ``ConfigParser.update``; the command line is read by
    :func:`bundle_run_args`. ``None`` without a config file (a workflow built in Python).

    MONAI writes this file itself only when ``--tracking`` adds its own MLflow handlers, which the bundle's
    configs declare already; the recorder rebuilds it from the same arguments instead.
    """
    from monai.bundle import ConfigParser

    args = bundle_run_args(argv)
    files = config_files_from_argv(argv)
    if args is None or not files or not all(Path(f).is_file() for f in files):
        return None
    parser = ConfigParser()
    parser.read_config(files)
    meta = args.get("meta_file") or str(Path(files[0]).parent / "metadata.json")
    if isinstance(meta, (list, tuple)) or Path(meta).is_file():
        parser.read_meta(meta)
    parser.update({k: v for k, v in args.items() if k not in _RUN_OPTIONS})
    config: dict[str, Any] = parser.get()
    return config


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
        mlflow_run: the :class:`~hkafusion_monai.handlers.mlflow_run.MLflowRun` of the engine's ``MLFlowHandler``
            (attach this recorder after both), or ``None``: write ``executed_config.json`` only.
        output_dir: where ``executed_config.json`` is written; ``None`` to skip the file.
        datalist: path of the run's datalist JSON.
        params: the resolved settings to log (the config's ``tracked_params``).
        config: the executed config to record; default: :func:`executed_config_from_argv` (the config files,
            metadata and overrides of the ``python -m monai.bundle run`` command line), or, for a workflow built
            in Python, the resolved ``params``.
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
        if config is None:
            config = executed_config_from_argv()
        if config is None:
            config = {"tracked_params": self.params}
        # a deep copy as plain JSON: later parsing must not change what is recorded
        config = json.loads(json.dumps(config, default=str))
        self.config = config if self.log_names else scrub_paths(config, keep_under)
        self.meta = dict(meta) if meta is not None else dict(self.config.get("_meta_", {}))
        self.extra_params = dict(extra_params or {})

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Engine) -> None:
        config = {k: v for k, v in self.config.items() if k != "_meta_"}
        files = [f for f in config_files_from_argv() if Path(f).is_file()]
        params = flatten_params({**self.run_params, **self.params})
        if "version" in self.meta:
            params["bundle_version"] = str(self.meta["version"])
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

        run = self.mlflow_run
        if run is None or not run.active:
            return
        run.log_params(params)
        run.set_tags(source_tags(commit))
        for f in files:
            run.log_artifact(f, artifact_path="configs")
        if written is not None:
            run.log_artifact(written, artifact_path="configs")
