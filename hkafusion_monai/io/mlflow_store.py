"""Where the bundle's MLflow runs are kept, and a SQLite store that a crash or a second run cannot break.

**One store per user.** Without ``--tracking_uri`` (or ``MLFLOW_TRACKING_URI``), every training, evaluation
and inference run of a user goes to one SQLite store, ``~/.hkafusion/mlruns.db`` (artifacts beside it in
``~/.hkafusion/mlruns/``): one ``mlflow ui --backend-store-uri sqlite:///$HOME/.hkafusion/mlruns.db`` shows
all of them, whatever output folder each wrote to, and an output folder holds outputs only. The variable
``HKAFUSION_HOME`` moves the folder. MONAI's ``MLFlowHandler`` refuses MLflow's file store, so SQLite it is;
teams point ``--tracking_uri`` at their server.

**Created whole, once.** MLflow builds a new SQLite store by running some 50 schema migrations in place; two
runs starting at once both migrate the same new file, and a run killed meanwhile leaves a half-built store
that every later run fails on (``duplicate column name``). :func:`tracking_uri` builds a missing store in a
temporary file beside it, under a file lock (``filelock``, as torch and MLflow's own dependencies use it), and
renames it into place when complete: a store is either absent or whole. Once it exists, concurrent runs share
it through SQLite's own locking (MLflow waits up to 20 s for a busy database).

MLflow has no such option itself (its own lock, ``db_init_lock``, serialises the migrations but still runs
them in the store's final place), which is why this module exists.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Sequence
from pathlib import Path

from hkafusion_monai.io.atomic import storage_errors, storage_fault
from hkafusion_monai.utils.cli import exception_chain
from hkafusion_monai.utils.errors import StorageError

__all__ = [
    "STORE_FOLDER_VARIABLE",
    "default_tracking_uri",
    "experiment_address",
    "run_name",
    "store_fault",
    "store_folder",
    "tracking_uri",
]

#: the environment variable naming the folder of the per-user store (default ``~/.hkafusion``)
STORE_FOLDER_VARIABLE = "HKAFUSION_HOME"
STORE_NAME = "mlruns.db"
_SQLITE = "sqlite:///"


def store_folder() -> Path:
    """The folder of the per-user store: ``$HKAFUSION_HOME``, else ``~/.hkafusion``."""
    folder = os.environ.get(STORE_FOLDER_VARIABLE, "").strip()
    return Path(folder).expanduser().absolute() if folder else Path.home() / ".hkafusion"


def default_tracking_uri() -> str:
    """The tracking URI a run without ``--tracking_uri`` logs to: ``MLFLOW_TRACKING_URI`` when set (it takes
    priority in MONAI's handler too), else the per-user store (not created here)."""
    from monai.utils import path_to_sqlite_uri

    return os.environ.get("MLFLOW_TRACKING_URI") or path_to_sqlite_uri(str(store_folder() / STORE_NAME))


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a local ``sqlite:///`` URI (``None`` for another backend, or an in-memory one)."""
    if not uri.startswith(_SQLITE):
        return None
    path = uri[len(_SQLITE) :].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def _build(path: Path) -> None:
    """Build a fresh MLflow store at ``path``, under its lock (``<path>.lock``, so that no other process builds
    it meanwhile): migrate a temporary file beside it, then rename it into place."""
    from filelock import FileLock

    with FileLock(f"{path}.lock"):
        if path.exists():
            return
        # temporary files of a build that was killed: nobody else builds under this lock
        for stale in path.parent.glob(f".{path.name}.*.tmp*"):
            stale.unlink(missing_ok=True)
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            store = SqlAlchemyStore(f"{_SQLITE}{tmp}", (path.parent / "mlruns").as_uri())
            store._dispose_engine()  # MLflow has no public close; its engine holds the file open
            os.replace(tmp, path)
        finally:
            for left in path.parent.glob(f"{tmp.name}*"):  # the file, or SQLite's journal, of a failed build
                left.unlink(missing_ok=True)


def tracking_uri(uri: str | None = None) -> str:
    """The tracking URI a run logs to, with its SQLite store built (whole, once) if it is missing.

    Args:
        uri: the URI given (``--tracking_uri``); default :func:`default_tracking_uri`.

    Config use: ``"tracking_uri": "$hkafusion_monai.handlers.tracking_uri()"``.

    Raises:
        OSError: the store's folder cannot be created or written (the error names it).
    """
    uri = uri or default_tracking_uri()
    path = _sqlite_path(uri)
    if path is not None and not path.exists():
        with storage_errors(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            _build(path)
    return uri


def store_fault(error: BaseException, uris: Sequence[str | None]) -> StorageError | None:
    """A :class:`StorageError` naming the SQLite store when SQLite (under MLflow) reported the fault of the
    machine in ``error``'s chain (a full disk, a read-only store), else None. ``uris``: the runs' tracking URIs
    (``None``: the default)."""
    if not any(type(e).__module__.split(".")[0] in ("sqlite3", "sqlalchemy") for e in exception_chain(error)):
        if not any(isinstance(e, Exception) and "sqlite" in str(e).lower() for e in exception_chain(error)):
            return None
    env = os.environ.get("MLFLOW_TRACKING_URI")
    paths = [_sqlite_path(env or uri or default_tracking_uri()) for uri in uris or [None]]
    path = next((p for p in paths if p is not None), None)
    return None if path is None else storage_fault(error, path)


def run_name(prefix: str) -> str:
    """A run name unique in a shared store: ``<prefix>_<date>_<time>_<4 hex digits>``. MONAI's handler logs to
    the last unfinished run of its name, so two runs started in the same second must not share one."""
    return f"{prefix}{time.strftime('_%Y%m%d_%H%M%S')}_{secrets.token_hex(2)}"


def experiment_address(tracking_uri: str, experiment_name: str, ui: str = "http://127.0.0.1:5000") -> str | None:
    """The address at which ``mlflow ui`` shows the experiment's runs table, or None when the store (a SQLite
    file) or the experiment is not there.

    The address names the view, ``?workflowType=machine_learning``, because nothing in the store or the server
    decides which view MLflow 3.17's UI opens a bare ``#/experiments/<id>`` in: the browser does. The page's
    ``useNavigateToExperimentPageTab`` goes to the runs tab unless the experiment kind is GenAI; that kind comes
    from ``useExperimentKind`` (``ExperimentKindUtils.ts``), which reads the experiment's ``mlflow.experimentKind``
    tag only when ``shouldEnableWorkflowBasedNavigation()`` is false, and the built UI has it return true; the
    kind is then the ``workflowType`` of ``WorkflowTypeProvider``: the address's ``workflowType`` parameter, else
    the sidebar switch's last choice stored in the browser (``localStorage`` key ``mlflow.workflowType_v1``), else
    ``genai``, whose experiment page is a traces overview. The address's parameter is not stored: the bare
    address opens on the runs table only in a browser whose user picked "Model training" in the sidebar."""
    if not tracking_uri.startswith("sqlite:///") or not os.path.isfile(tracking_uri[len("sqlite:///") :]):
        return None
    import mlflow

    experiment = mlflow.MlflowClient(tracking_uri).get_experiment_by_name(experiment_name)
    if experiment is None:
        return None
    return f"{ui}/#/experiments/{experiment.experiment_id}?workflowType=machine_learning"
