"""The MLflow record of an inference run: what was fused (count and hash, never paths), with which model,
and how long it took. It works beside MONAI's ``MLFlowHandler`` and writes to its run through
:class:`~hkafusion_monai.handlers.mlflow_run.MLflowRun`."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ignite.engine import Engine, Events

from hkafusion_monai.handlers.mlflow_run import MLflowRun
from hkafusion_monai.utils.hashing import file_sha256, inputs_summary
from hkafusion_monai.utils.provenance import git_commit
from hkafusion_monai.utils.tasks import task_of

__all__ = ["InferenceRunRecorder"]


class InferenceRunRecorder:
    """Log an inference run to the ``MLFlowHandler``'s run; attach it after that handler and its ``MLflowRun``.

    - at the start, params: ``inputs_count`` and ``inputs_sha256``
      (:func:`hkafusion_monai.utils.hashing.inputs_summary`), ``model_version`` (the bundle's ``metadata.json``),
      ``checkpoint_sha256``, ``task`` (:func:`~hkafusion_monai.utils.tasks.task_of` the items), ``git_commit``
      and ``extra_params`` (values as strings: ``{"device": "@device"}`` logs ``cuda:0``);
    - at the end, metrics: ``inference_seconds``, ``seconds_per_pair`` and ``outputs_written`` (and
      ``pairs_failed``, the pairs a :class:`~hkafusion_monai.engines.FusionEvaluator` could not fuse, when any).

    The timing is also kept in :attr:`timing` when no MLflow run is given.

    Args:
        mlflow_run: the :class:`~hkafusion_monai.handlers.mlflow_run.MLflowRun` of the evaluator's
            ``monai.handlers.MLFlowHandler`` (or None).
        items: the run's data items (``mri``, ``other`` paths).
        model_version: the bundle version.
        ckpt_path: the checkpoint loaded.
        extra_params: more params, e.g. ``{"task": "mri_pet"}``.
    """

    def __init__(
        self,
        mlflow_run: MLflowRun | None = None,
        items: Sequence[Mapping[str, Any]] = (),
        model_version: str = "unknown",
        ckpt_path: str | os.PathLike | None = None,
        extra_params: Mapping[str, Any] | None = None,
    ) -> None:
        self.mlflow_run = mlflow_run
        self.items = list(items)
        self.model_version = model_version
        self.ckpt_path = ckpt_path
        self.extra_params = dict(extra_params or {})
        self.timing: dict[str, float] = {}
        self._start = 0.0

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self.started)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.completed)

    def started(self, engine: Engine) -> None:
        self._start = time.perf_counter()
        run = self.mlflow_run
        if run is None or not run.active:
            return
        params = {k: str(v) for k, v in inputs_summary(self.items).items()}
        params["model_version"] = str(self.model_version)
        if self.ckpt_path is not None and Path(self.ckpt_path).is_file():
            params["checkpoint"] = Path(self.ckpt_path).name
            params["checkpoint_sha256"] = file_sha256(self.ckpt_path)
        params["task"] = task_of(self.items)
        params["git_commit"] = git_commit(Path(__file__).parent)
        params.update({k: str(v)[:500] for k, v in self.extra_params.items()})
        run.log_params(params)
        run.set_tags({"model_version": str(self.model_version)})

    def completed(self, engine: Engine) -> None:
        seconds = time.perf_counter() - self._start
        pairs = int(engine.state.iteration)
        failed = len(getattr(engine, "failures", ()))  # the pairs a FusionEvaluator could not fuse
        self.timing = {
            "inference_seconds": seconds,
            "seconds_per_pair": seconds / max(pairs, 1),
            "outputs_written": float(pairs - failed),
        }
        if failed:
            self.timing["pairs_failed"] = float(failed)
        if self.mlflow_run is not None:
            self.mlflow_run.log_metrics(self.timing, step=0)
