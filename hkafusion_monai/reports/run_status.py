"""How a workflow run ends: its MLflow run ends FAILED or KILLED when the workflow does not finish, and a
finished run prints where it left its outputs (:func:`report_outputs`).

MONAI's ``MLFlowHandler`` ends its run FINISHED on completion and leaves it RUNNING when the engine raises,
is interrupted (Ctrl-C) or is terminated (SIGTERM, which :mod:`hkafusion_monai.utils.cli` turns into
``SystemExit``). :func:`run_tracked` wraps the bundle's run steps instead of hooking ignite's
``EXCEPTION_RAISED`` event, whose handlers replace ignite's own re-raising and depend on the order of
attachment (MONAI's ``StatsHandler`` re-raises from its own); the run is ended through its
:class:`~hkafusion_monai.handlers.mlflow_run.MLflowRun` (anything with its ``end(status)``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from hkafusion_monai.io.atomic import storage_fault
from hkafusion_monai.io.mlflow_store import experiment_address, store_fault


class MLflowRun(Protocol):
    """What :func:`run_tracked` needs of a run: :class:`hkafusion_monai.handlers.MLflowRun`'s ``run_id``,
    ``end(status)`` and ``closed()`` (a protocol, so that this module stays below the handlers)."""

    @property
    def run_id(self) -> str | None: ...

    @property
    def tracking_uri(self) -> str | None: ...

    def end(self, status: str) -> bool: ...

    def closed(self, engine: Any = None) -> None: ...


__all__ = ["describe_initial_weights", "mark_runs_ended", "report_outputs", "run_tracked"]


def mark_runs_ended(mlflow_runs: Sequence[MLflowRun | None], error: BaseException) -> None:
    """End each open MLflow run as KILLED (``KeyboardInterrupt``, ``SystemExit``) or FAILED, once per run; a
    run whose handler never started, or closed it, is left as it is."""
    status = "KILLED" if isinstance(error, (KeyboardInterrupt, SystemExit)) else "FAILED"
    done: set[str] = set()
    for run in mlflow_runs:
        if run is None or run.run_id is None:
            continue
        if run.run_id in done:
            run.closed()
            continue
        done.add(run.run_id)
        run.end(status)


def run_tracked(
    mlflow_runs: MLflowRun | Sequence[MLflowRun | None] | None,
    *steps: Callable[[], Any],
    output_dir: str | os.PathLike | None = None,
) -> list[Any]:
    """Run ``steps`` in order; if one raises (or is interrupted), end the MLflow runs FAILED/KILLED and re-raise.
    Returns the steps' results.

    A fault of the machine (a full disk, a read-only file system) is re-raised as one
    :class:`~hkafusion_monai.utils.errors.StorageError` naming where: the MLflow store when SQLite reported it,
    else the path the writer named, else ``output_dir`` (torch's and Python's buffered writes name no file).

    Config use: ``"training": ["$hkafusion_monai.reports.run_tracked([@train#handlers#8, @validate#handlers#2],
    @train#trainer.run, output_dir=@output_dir)"]`` (the ``MLflowRun`` of each MLflow handler).
    """
    runs = list(mlflow_runs) if isinstance(mlflow_runs, Sequence) else [mlflow_runs]
    results = []
    try:
        for step in steps:
            results.append(step())
    except BaseException as e:
        mark_runs_ended(runs, e)
        if not isinstance(e, Exception):
            raise
        fault = store_fault(e, [r.tracking_uri for r in runs if r is not None])
        if fault is None and output_dir is not None:
            fault = storage_fault(e, output_dir)
        if fault is None or fault is e:
            raise
        raise fault from e
    return results


def report_outputs(paths: Mapping[str, str], experiment_name: str = "hkafusion") -> Mapping[str, str]:
    """Print where a workflow run left its outputs (``{"what": "where"}``), and how to open a SQLite MLflow store
    on the runs table of ``experiment_name`` (:func:`~hkafusion_monai.io.mlflow_store.experiment_address`)."""
    lines = ["HKAFusion run finished."] + [f"  {what}: {where}" for what, where in paths.items()]
    for uri in (str(v) for v in paths.values() if str(v).startswith("sqlite:")):
        address = experiment_address(uri, experiment_name)
        lines.append(
            f"  MLflow UI: mlflow ui --backend-store-uri {uri}" + (f", then open {address}" if address else "")
        )
    print("\n".join(lines), flush=True)
    return paths


def describe_initial_weights(ckpt_dir: str, resuming: bool, pretrained_path: str | None) -> str:
    """What a training started from, for :func:`report_outputs`: the resumed folder, the warm-start weights, or
    random weights."""
    if resuming:
        return f"resumed from {ckpt_dir}"
    if pretrained_path:
        return f"{pretrained_path} (fine-tuned; --pretrained false trains from scratch)"
    return "random (trained from scratch)"
