"""How a workflow run ends: its MLflow run ends FAILED or KILLED when the workflow does not finish, and a
finished run prints where it left its outputs (:func:`report_outputs`).

MONAI's ``MLFlowHandler`` ends its run FINISHED on completion and leaves it RUNNING when the engine raises,
is interrupted (Ctrl-C) or is terminated (SIGTERM, which :mod:`hkafusion_monai.utils.cli` turns into
``SystemExit``). :func:`run_tracked` wraps the bundle's run steps instead of hooking ignite's
``EXCEPTION_RAISED`` event, whose handlers replace ignite's own re-raising and depend on the order of
attachment (MONAI's ``StatsHandler`` re-raises from its own).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["mark_runs_ended", "report_outputs", "run_tracked"]

logger = logging.getLogger(__name__)


def mark_runs_ended(mlflow_handlers: Sequence[Any], error: BaseException) -> None:
    """End each handler's open MLflow run as KILLED (``KeyboardInterrupt``, ``SystemExit``) or FAILED."""
    status = "KILLED" if isinstance(error, (KeyboardInterrupt, SystemExit)) else "FAILED"
    done: set[str] = set()
    for handler in mlflow_handlers:
        run = getattr(handler, "cur_run", None)
        if handler is None or run is None:
            continue
        run_id = run.info.run_id
        try:
            if run_id not in done:
                handler.client.set_terminated(run_id, status)
                done.add(run_id)
            handler.cur_run = None  # so that nothing marks it FINISHED afterwards
        except Exception as e:  # the tracking server may be the failure; the original error matters more
            logger.warning("could not mark MLflow run %s %s: %s", run_id, status, e)


def run_tracked(mlflow_handlers: Any, *steps: Callable[[], Any]) -> list[Any]:
    """Run ``steps`` in order; if one raises (or is interrupted), end the handlers' MLflow runs FAILED/KILLED
    and re-raise. Returns the steps' results.

    Config use: ``"run": ["$hkafusion_monai.handlers.run_tracked([@train#mlflow, @validate#mlflow],
    @train#trainer.run)"]``.
    """
    handlers = list(mlflow_handlers) if isinstance(mlflow_handlers, (list, tuple)) else [mlflow_handlers]
    results = []
    try:
        for step in steps:
            results.append(step())
    except BaseException as e:
        mark_runs_ended(handlers, e)
        raise
    return results


def report_outputs(paths: Mapping[str, str]) -> Mapping[str, str]:
    """Print where a workflow run left its outputs (``{"what": "where"}``), and how to open a SQLite MLflow store."""
    lines = ["HKAFusion run finished."] + [f"  {what}: {where}" for what, where in paths.items()]
    lines += [f"  MLflow UI: mlflow ui --backend-store-uri {v}" for v in paths.values() if str(v).startswith("sqlite:")]
    print("\n".join(lines), flush=True)
    return paths
