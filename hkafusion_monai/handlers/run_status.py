"""How a workflow run ends: its MLflow run ends FAILED or KILLED when the workflow does not finish, and a
finished run prints where it left its outputs (:func:`report_outputs`).

MONAI's ``MLFlowHandler`` ends its run FINISHED on completion and leaves it RUNNING when the engine raises,
is interrupted (Ctrl-C) or is terminated (SIGTERM, which :mod:`hkafusion_monai.utils.cli` turns into
``SystemExit``). :func:`run_tracked` wraps the bundle's run steps instead of hooking ignite's
``EXCEPTION_RAISED`` event, whose handlers replace ignite's own re-raising and depend on the order of
attachment (MONAI's ``StatsHandler`` re-raises from its own); the run is ended through its
:class:`~hkafusion_monai.handlers.mlflow_run.MLflowRun`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hkafusion_monai.handlers.mlflow_run import MLflowRun, experiment_address

__all__ = ["mark_runs_ended", "report_outputs", "run_tracked"]


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


def run_tracked(mlflow_runs: MLflowRun | Sequence[MLflowRun | None] | None, *steps: Callable[[], Any]) -> list[Any]:
    """Run ``steps`` in order; if one raises (or is interrupted), end the MLflow runs FAILED/KILLED and re-raise.
    Returns the steps' results.

    Config use: ``"run": ["$hkafusion_monai.handlers.run_tracked([@train#mlflow_run, @validate#mlflow_run],
    @train#trainer.run)"]``.
    """
    runs = list(mlflow_runs) if isinstance(mlflow_runs, Sequence) else [mlflow_runs]
    results = []
    try:
        for step in steps:
            results.append(step())
    except BaseException as e:
        mark_runs_ended(runs, e)
        raise
    return results


def report_outputs(paths: Mapping[str, str], experiment_name: str = "hkafusion") -> Mapping[str, str]:
    """Print where a workflow run left its outputs (``{"what": "where"}``), and how to open a SQLite MLflow store
    on the runs table of ``experiment_name`` (:func:`~hkafusion_monai.handlers.mlflow_run.experiment_address`)."""
    lines = ["HKAFusion run finished."] + [f"  {what}: {where}" for what, where in paths.items()]
    for uri in (str(v) for v in paths.values() if str(v).startswith("sqlite:")):
        address = experiment_address(uri, experiment_name)
        lines.append(
            f"  MLflow UI: mlflow ui --backend-store-uri {uri}" + (f", then open {address}" if address else "")
        )
    print("\n".join(lines), flush=True)
    return paths
