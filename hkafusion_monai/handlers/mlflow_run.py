"""The one place where this package writes to MLflow: :class:`MLflowRun`, the run that a MONAI
``MLFlowHandler`` logs to, written through a public ``mlflow.MlflowClient`` of its own.

MONAI's handler logs the engine's metrics, the losses, the learning rate, ``experiment_param`` and its
``artifacts`` (the training's best checkpoint). What this package records beside them (the resolved settings,
the datalist by counts and hash, the commit, figures, the evaluation report, inference timing and checks, the
FAILED/KILLED end of an interrupted run) goes to the same run through this adapter, which reads nothing of the
handler but its documented options (``experiment_name``, ``run_name``, ``close_on_complete``) and finds the run
the way the handler does.

Params are not handed to the handler's ``experiment_param``: the handler sends them in one request (MLflow
takes at most 100 params per request) at every start, and MLflow refuses a param whose value changes, as
``resumed`` does when a training continues in its run. :meth:`MLflowRun.log_params` skips those already logged.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ignite.engine import Engine, Events

if TYPE_CHECKING:
    import mlflow
    from monai.handlers import MLFlowHandler

__all__ = [
    "EXPERIMENT_KIND",
    "METRICS_PER_REQUEST",
    "PARAMS_PER_REQUEST",
    "RUN_END_STATUSES",
    "MLflowRun",
    "mark_experiment_kind",
]

logger = logging.getLogger(__name__)

#: MLflow's limits per ``log_batch`` request
PARAMS_PER_REQUEST = 100
METRICS_PER_REQUEST = 1000
#: how a run that does not finish ends
RUN_END_STATUSES = ("FAILED", "KILLED")
_FINISHED = "FINISHED"
#: MLflow's tag for what an experiment holds: these runs are model training, evaluation and inference, not GenAI
#: traces. MLflow 3.17's UI does not pick its view from it (the browser does: ``experiment_address`` in
#: :mod:`hkafusion_monai.io.mlflow_store`); the tag keeps the kind with the experiment for other MLflow clients.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")


def mark_experiment_kind(client: mlflow.MlflowClient, experiment_id: str) -> None:
    """Tag the experiment :data:`EXPERIMENT_KIND` unless it carries a kind already (a user's choice is kept)."""
    key, value = EXPERIMENT_KIND
    if key not in client.get_experiment(experiment_id).tags:
        client.set_experiment_tag(experiment_id, key, value)


class MLflowRun:
    """The MLflow run of a ``monai.handlers.MLFlowHandler``; attach it to the same engine, after the handler.

    At the engine's ``STARTED`` event, after the handler has found or created its run, the adapter finds the
    same run with its own client: in the experiment ``handler.experiment_name``, the last run listed by
    ``MlflowClient.search_runs`` that is named ``handler.run_name`` (any name when it is ``None``) and is not
    FINISHED, which is the handler's rule (so a resumed training finds the run it continues). When the
    handler closes its run at ``COMPLETED`` (``close_on_complete``), the adapter lets it go too. Until the
    run is found, and when ``handler`` is ``None`` (a disabled handler, as on ranks above 0), every method
    does nothing, so that an error before the handler started never touches an older run of the same name.

    Config use, next to the handler::

        "mlflow_run": {"_target_": "hkafusion_monai.handlers.MLflowRun", "handler": "@mlflow",
                       "tracking_uri": "@tracking_uri"}

    Args:
        handler: the ``MLFlowHandler`` whose run this is, or ``None``.
        tracking_uri: the ``tracking_uri`` the handler was given (default, as the handler's, ``mlruns.db`` in the
            working directory); ``MLFLOW_TRACKING_URI`` takes priority, as it does in the handler.
    """

    def __init__(self, handler: MLFlowHandler | None = None, tracking_uri: str | None = None) -> None:
        self.handler = handler
        self.tracking_uri = tracking_uri
        self._client: mlflow.MlflowClient | None = None
        self._run_id: str | None = None

    # ------------------------------------------------------------------------------------------ the run

    @property
    def client(self) -> mlflow.MlflowClient:
        """The adapter's own ``mlflow.MlflowClient`` on the handler's tracking URI."""
        if self._client is None:
            import mlflow
            from monai.utils import path_to_sqlite_uri

            # without a URI, the handler's default
            uri = self.tracking_uri or path_to_sqlite_uri(os.path.join(os.getcwd(), "mlruns.db"))
            self._client = mlflow.MlflowClient(tracking_uri=None if os.environ.get("MLFLOW_TRACKING_URI") else uri)
        return self._client

    @property
    def run_id(self) -> str | None:
        """The run's id once the handler has started it, else ``None``."""
        return self._run_id

    @property
    def active(self) -> bool:
        """Whether the handler's run is found and still open."""
        return self._run_id is not None

    def attach(self, engine: Engine) -> None:
        if self.handler is None:
            return
        if not engine.has_event_handler(self.started, Events.STARTED):
            engine.add_event_handler(Events.STARTED, self.started)
        if self.handler.close_on_complete and not engine.has_event_handler(self.closed, Events.COMPLETED):
            engine.add_event_handler(Events.COMPLETED, self.closed)

    def started(self, engine: Engine | None = None) -> None:
        """Find the handler's run (it has just found or created it), and mark its experiment as one of model
        development (:data:`EXPERIMENT_KIND`)."""
        self._run_id = self.find_run()
        if self._run_id is not None:
            mark_experiment_kind(self.client, self.client.get_run(self._run_id).info.experiment_id)

    def closed(self, engine: Engine | None = None) -> None:
        """The handler closed its run: record nothing more in it."""
        self._run_id = None

    def find_run(self) -> str | None:
        """The id of the run the handler logs to, by the handler's rule (``None`` if there is none)."""
        if self.handler is None:
            return None
        experiment = self.client.get_experiment_by_name(self.handler.experiment_name)
        if experiment is None:
            return None
        name = self.handler.run_name
        runs = [
            r
            for r in self.client.search_runs([experiment.experiment_id])
            if (not name or r.info.run_name == name) and r.info.status != _FINISHED
        ]
        return runs[-1].info.run_id if runs else None

    # ------------------------------------------------------------------------------------------ records

    def logged_params(self) -> dict[str, str]:
        """The params the run holds already."""
        if self._run_id is None:
            return {}
        return dict(self.client.get_run(self._run_id).data.params)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log ``params`` (values as strings) that the run does not hold yet, at most 100 per request."""
        if self._run_id is None:
            return
        from mlflow.entities import Param

        logged = self.logged_params()
        new = [Param(str(k), str(v)) for k, v in params.items() if k not in logged]
        for start in range(0, len(new), PARAMS_PER_REQUEST):
            self.client.log_batch(self._run_id, params=new[start : start + PARAMS_PER_REQUEST])

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        """Log ``metrics`` at ``step``, all with the same timestamp, at most 1000 per request."""
        if self._run_id is None or not metrics:
            return
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        batch = [Metric(str(k), float(v), stamp, int(step)) for k, v in metrics.items()]
        for start in range(0, len(batch), METRICS_PER_REQUEST):
            self.client.log_batch(self._run_id, metrics=batch[start : start + METRICS_PER_REQUEST])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set the run's tags (values as strings) in one request."""
        if self._run_id is None or not tags:
            return
        from mlflow.entities import RunTag

        self.client.log_batch(self._run_id, tags=[RunTag(str(k), str(v)) for k, v in tags.items()])

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        """Copy the file at ``path`` into the run's artifacts (under ``artifact_path``)."""
        if self._run_id is None:
            return
        self.client.log_artifact(self._run_id, str(Path(path)), artifact_path=artifact_path)

    def log_dict(self, dictionary: Mapping[str, Any], artifact_file: str) -> None:
        """Write ``dictionary`` as the JSON artifact ``artifact_file``."""
        if self._run_id is None:
            return
        self.client.log_dict(self._run_id, dict(dictionary), artifact_file)

    def end(self, status: str) -> bool:
        """End the open run with ``status`` (``"FAILED"`` or ``"KILLED"``) and record nothing more in it, so that
        nothing marks it FINISHED afterwards; returns whether a run was ended. A tracking server that fails is
        logged, not raised: the error that ended the workflow matters more."""
        if status not in RUN_END_STATUSES:
            raise ValueError(f"a run that does not finish ends as one of {RUN_END_STATUSES}, got {status!r}")
        run_id, self._run_id = self._run_id, None
        if run_id is None:
            return False
        try:
            self.client.set_terminated(run_id, status)
            return True
        except Exception as e:  # the tracking server may be the failure
            logger.warning("could not mark MLflow run %s %s: %s", run_id, status, e)
            return False
