"""The MLflow records of a training, an evaluation and an inference run: unchanged, and written without reaching
into MONAI's ``MLFlowHandler``.

Each workflow runs once in this process (``monai.bundle.ConfigWorkflow``, its settings given in Python while
``sys.argv`` names only ``python -m monai.bundle run <id>``, so that nothing can be read from the command line)
on the small phantom, and its MLflow run is read back as a record: the status, every param and tag (hashes, the
git commit and the user masked), every metric with its steps, every artifact path. The records are compared with
``tests/testing_data/mlflow_records.json``; the params a training run takes from the config's ``tracked_params``
are compared with the resolved config itself, so that a new tunable does not need a new record. After a
deliberate change of what a run records, rewrite the file with
``HKAFUSION_UPDATE_RECORDS=1 python -m pytest tests/integration/test_mlflow_records.py`` and review its diff.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import pytest
from monai.bundle import ConfigParser, ConfigWorkflow
from monai.handlers import MLFlowHandler

from hkafusion_monai.handlers import default_tracking_uri
from hkafusion_monai.handlers.run_record import flatten_params, scrub_paths
from tests.helpers import BUNDLE, INFERENCE_JSON, REPO, random_checkpoint

TRAIN_JSON = BUNDLE / "configs" / "train.json"
EVALUATE_JSON = BUNDLE / "configs" / "evaluate.json"
RECORDS = REPO / "tests" / "testing_data" / "mlflow_records.json"
UPDATE = os.environ.get("HKAFUSION_UPDATE_RECORDS", "") == "1"
MONAI_MAIN = str(Path(sys.modules["monai"].__file__).parent / "bundle" / "__main__.py")

#: what a config may ask of MONAI's MLFlowHandler: its documented options and its event methods
HANDLER_OPTIONS = {
    "tracking_uri",
    "iteration_log",
    "epoch_log",
    "epoch_logger",
    "iteration_logger",
    "dataset_logger",
    "dataset_dict",
    "dataset_keys",
    "output_transform",
    "global_epoch_transform",
    "state_attributes",
    "tag_name",
    "experiment_name",
    "run_name",
    "experiment_param",
    "artifacts",
    "optimizer_param_names",
    "close_on_complete",
    "artifact_location",
}
HANDLER_METHODS = {"attach", "start", "complete", "close", "epoch_completed", "iteration_completed"}


class RecordingMLFlowHandler(MLFlowHandler):
    """MONAI's handler, unchanged, noting every attribute that code of ``hkafusion_monai`` reads from it."""

    accessed: set[str] = set()

    def __getattribute__(self, name: str) -> Any:
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if caller.startswith("hkafusion_monai"):
            RecordingMLFlowHandler.accessed.add(name)
        return super().__getattribute__(name)


def _mask(key: str, value: str) -> str:
    """A record's value without what changes between machines and commits."""
    if key in ("git_commit", "mlflow.source.git.commit"):
        return "<commit>"
    if key == "mlflow.user":
        return "<user>"
    return re.sub(r"\b[0-9a-f]{64}\b", "<sha256>", value)


def _artifacts(client: mlflow.MlflowClient, run_id: str, path: str | None = None) -> list[str]:
    found = []
    for entry in client.list_artifacts(run_id, path):
        found += _artifacts(client, run_id, entry.path) if entry.is_dir else [entry.path]
    return sorted(found)


def _record(tracking_uri: str, run_name: str, skip_params: Mapping[str, str] = {}) -> dict[str, Any]:
    client = mlflow.MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("hkafusion")
    (run,) = [r for r in client.search_runs([experiment.experiment_id]) if r.info.run_name == run_name]
    run_id = run.info.run_id
    return {
        "status": run.info.status,
        "params": {k: _mask(k, v) for k, v in sorted(run.data.params.items()) if k not in skip_params},
        "tags": {k: _mask(k, v) for k, v in sorted(run.data.tags.items())},
        "metrics": {k: [m.step for m in client.get_metric_history(run_id, k)] for k in sorted(run.data.metrics)},
        "artifacts": _artifacts(client, run_id),
    }


def _run(
    monkeypatch: pytest.MonkeyPatch,
    run_id: str,
    config_file: list[str],
    workflow_type: str,
    tracking: dict | None = None,
    **overrides: Any,
):
    monkeypatch.setattr(sys, "argv", [MONAI_MAIN, "run", run_id])
    workflow = ConfigWorkflow(
        config_file=config_file,
        workflow_type=workflow_type,
        logging_file=False,
        run_id=run_id,
        tracking=tracking,
        **overrides,
    )
    workflow.initialize()
    workflow.run()
    workflow.finalize()
    return workflow


@pytest.fixture(scope="module")
def records(phantom: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Train, evaluate and infer once each; every MLflow handler of the configs is a recording one."""
    RecordingMLFlowHandler.accessed.clear()
    mp = pytest.MonkeyPatch()
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path_factory.mktemp("records")
    ckpt = random_checkpoint(tmp_path_factory)
    datalist = str(phantom / "datalists" / "png_pet.json")
    handler = f"{__name__}.RecordingMLFlowHandler"
    common = {
        "bundle_root": str(BUNDLE),
        "datalist": datalist,
        "task": "mri_pet",
        "device": "$torch.device('cpu')",
        "num_workers": 0,
        "cache_rate": 0.0,
        "val_batch_size": 2,
    }
    result: dict[str, Any] = {"uris": {}}
    try:
        train_out = out / "train"
        train = {
            **common,
            "output_dir": str(train_out),
            "run_name": "train_records",
            "image_size": [64, 64],
            "roi_size": [64, 64],
            "batch_size": 2,
            "epochs": 2,
            "epoch_length": 1,
            "val_interval": 1,
            "train#handlers#7#_target_": handler,  # the MLFlowHandlers of train.json
            "validate#handlers#1#_target_": handler,
        }
        # MONAI's own record of the executed config (``--tracking`` with no handler of its own), to compare with
        monai_record = train_out / "monai_execute_config.json"
        tracking = {"handlers_id": {}, "configs": {}}
        train_run = {**train, "save_execute_config": str(monai_record)}
        workflow = _run(mp, "training", [str(TRAIN_JSON)], "train", tracking, **train_run)
        # the resolved tracked_params, and what the recorder takes from the network and the initial weights
        (recorder,) = [h for h in workflow.parser.get_parsed_content("train#handlers") if hasattr(h, "run_params")]
        tracked = workflow.parser.get_parsed_content("tracked_params")
        result["tracked_params"] = flatten_params({**recorder.run_params, **tracked})
        result["monai_execute_config"] = monai_record
        result["uris"]["training"] = (default_tracking_uri(), "train_records")
        result["train_out"] = train_out

        evaluate = {
            **common,
            "output_dir": str(out / "evaluate"),
            "run_name": "evaluate_records",
            "ckpt_path": str(ckpt),
            "validate#handlers#3#_target_": handler,  # evaluate.json's
        }
        _run(mp, "evaluating", [str(TRAIN_JSON), str(EVALUATE_JSON)], "eval", **evaluate)
        result["uris"]["evaluation"] = (default_tracking_uri(), "evaluate_records")
        result["evaluate_overrides"] = evaluate
        result["eval_dir"] = out / "evaluate" / "evaluation" / "evaluate_records"

        infer_out = out / "inference"
        infer = {
            "bundle_root": str(BUNDLE),
            "datalist": datalist,
            "split": "test",
            "task": "mri_pet",
            "output_dir": str(infer_out),
            "run_name": "inference_records",
            "ckpt_path": str(ckpt),
            "device": "$torch.device('cpu')",
            "progress": False,
            "handlers#0#_target_": handler,
        }
        _run(mp, "inference", [str(INFERENCE_JSON)], "infer", **infer)
        result["uris"]["inference"] = (default_tracking_uri(), "inference_records")
    finally:
        mp.undo()
    result["accessed"] = set(RecordingMLFlowHandler.accessed)
    return result


def _observed(records: dict[str, Any]) -> dict[str, Any]:
    observed = {}
    for name, (uri, run_name) in records["uris"].items():
        skip = records["tracked_params"] if name == "training" else {}
        observed[name] = _record(uri, run_name, skip)
    return observed


def test_records_are_unchanged(records: dict[str, Any]) -> None:
    observed = _observed(records)
    if UPDATE:
        RECORDS.parent.mkdir(parents=True, exist_ok=True)
        RECORDS.write_text(json.dumps(observed, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    expected = json.loads(RECORDS.read_text(encoding="utf-8"))
    for name in ("training", "evaluation", "inference"):
        for part in ("status", "params", "tags", "metrics", "artifacts"):
            assert observed[name][part] == expected[name][part], f"the {name} run's {part} changed"


def test_training_params_are_the_resolved_tracked_params(records: dict[str, Any]) -> None:
    uri, run_name = records["uris"]["training"]
    params = _record(uri, run_name)["params"]
    tracked = records["tracked_params"]
    assert {k: params[k] for k in tracked} == {k: _mask(k, v) for k, v in tracked.items()}


def test_no_file_names_reach_mlflow(records: dict[str, Any], phantom: Path) -> None:
    for uri, run_name in records["uris"].values():
        record = _record(uri, run_name)
        values = [*record["params"].values(), *record["tags"].values()]
        assert not any(str(phantom) in v or ".png" in v or "png_pet.json" in v for v in values), run_name


def test_every_experiment_is_of_model_development(records: dict[str, Any]) -> None:
    """Training, evaluation and inference alike tag their experiment with MLflow's kind for model development
    (``mlflow.experimentKind``), not GenAI."""
    for uri, _ in records["uris"].values():
        experiment = mlflow.MlflowClient(uri).get_experiment_by_name("hkafusion")
        assert experiment.tags.get("mlflow.experimentKind") == "custom_model_development", uri


def test_the_closing_message_gives_the_runs_table_address(records: dict[str, Any], capsys) -> None:
    from hkafusion_monai.reports import report_outputs

    uri, _ = records["uris"]["training"]
    experiment = mlflow.MlflowClient(uri).get_experiment_by_name("hkafusion").experiment_id
    report_outputs({"MLflow store": uri})
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"  MLflow UI: mlflow ui --backend-store-uri {uri}, then open "
        f"http://127.0.0.1:5000/#/experiments/{experiment}?workflowType=machine_learning"
    )
    report_outputs({"MLflow store": uri}, experiment_name="not there")
    assert capsys.readouterr().out.splitlines()[-1] == f"  MLflow UI: mlflow ui --backend-store-uri {uri}"


def _logged_config(uri: str, run_name: str) -> dict[str, Any]:
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("hkafusion")
    (run,) = [r for r in client.search_runs([experiment.experiment_id]) if r.info.run_name == run_name]
    return json.loads(Path(client.download_artifacts(run.info.run_id, "configs/executed_config.json")).read_text())


def _as_executed(config: Mapping[str, Any]) -> dict[str, Any]:
    """A config as a workflow executes it (macros and relative ids resolved, as ``ConfigParser.parse`` does),
    without its metadata and with its data paths hashed, as a run records it."""
    parser = ConfigParser(json.loads(json.dumps(config)))
    parser.resolve_macro_and_relative_ids()
    return scrub_paths({k: v for k, v in parser.get().items() if k != "_meta_"}, [str(BUNDLE)])


def test_executed_config_is_monais(records: dict[str, Any]) -> None:
    """The logged executed config of a training run is the one MONAI itself saves under ``--tracking``
    (``save_execute_config``), as the workflow executes it, its data paths hashed: taken from the running
    workflow, not the command line."""
    logged = _logged_config(*records["uris"]["training"])
    expected = _as_executed(json.loads(records["monai_execute_config"].read_text()))
    assert logged == expected
    assert logged["epochs"] == 2 and logged["image_size"] == [64, 64]  # the overrides, given in Python only
    assert json.loads((records["train_out"] / "executed_config.json").read_text()) == expected
    assert str(REPO.parent) not in json.dumps(logged).replace(str(BUNDLE), "<bundle>")


def test_executed_config_without_tracking(records: dict[str, Any]) -> None:
    """Without ``--tracking`` (the evaluation run), the executed config is still the config files merged with
    the overrides, as the workflow runs them."""
    logged = _logged_config(*records["uris"]["evaluation"])
    parser = ConfigParser()
    parser.read_config([str(TRAIN_JSON), str(EVALUATE_JSON)])
    parser.update(records["evaluate_overrides"])
    assert logged == _as_executed(parser.get())
    assert json.loads((records["eval_dir"] / "executed_config.json").read_text()) == logged


def test_only_the_handlers_options_are_read(records: dict[str, Any]) -> None:
    """No code of the package reads MONAI's handler beyond its documented options and event methods (no
    ``cur_run``, ``client`` or ``_private`` attribute)."""
    assert records["accessed"], "the recording handler saw no access at all"
    assert records["accessed"] <= HANDLER_OPTIONS | HANDLER_METHODS, records["accessed"] - HANDLER_OPTIONS


def test_one_module_talks_to_mlflow() -> None:
    """Only ``handlers/mlflow_run.py`` imports MLflow or names a handler's run or client (and
    ``io/mlflow_store.py`` builds the store's file, with MLflow's own schema)."""
    package = REPO / "hkafusion_monai"
    pattern = re.compile(
        r"^\s*(import mlflow|from mlflow)|\bmlflow\.(entities|MlflowClient)|\.cur_run\b|\.client\b", re.M
    )
    offenders = [
        str(path.relative_to(REPO))
        for path in package.rglob("*.py")
        if path.name not in ("mlflow_run.py", "mlflow_store.py") and pattern.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


@pytest.mark.parametrize(
    ("error", "status"), [(KeyboardInterrupt, "KILLED"), (SystemExit, "KILLED"), (RuntimeError, "FAILED")]
)
def test_a_run_that_does_not_finish_ends_failed_or_killed(tmp_path: Path, error: type, status: str) -> None:
    """Through a real handler on an engine: an error while the run is open ends it FAILED or KILLED, once, and
    nothing marks it afterwards; an error before the handler started touches no run."""
    from ignite.engine import Engine, Events

    from hkafusion_monai.handlers import MLflowRun
    from hkafusion_monai.reports import run_tracked

    uri = f"sqlite:///{tmp_path}/mlruns.db"
    handler = RecordingMLFlowHandler(
        tracking_uri=uri,
        experiment_name="hkafusion",
        run_name="broken",
        epoch_log=False,
        iteration_log=False,
        close_on_complete=True,
    )
    runs = [MLflowRun(handler, uri), MLflowRun(handler, uri)]  # two adapters of one run (trainer and validator)
    engine = Engine(lambda e, b: None)
    handler.attach(engine)
    for run in runs:
        run.attach(engine)

    def fail(e: Engine) -> None:
        raise error()

    engine.add_event_handler(Events.ITERATION_COMPLETED, fail)
    with pytest.raises(error):
        run_tracked(runs, lambda: engine.run([0, 1], max_epochs=1))
    client = mlflow.MlflowClient(uri)
    (found,) = client.search_runs([client.get_experiment_by_name("hkafusion").experiment_id])
    assert found.info.status == status and found.info.run_name == "broken"
    assert not any(run.active for run in runs)

    idle = MLflowRun(RecordingMLFlowHandler(tracking_uri=uri, experiment_name="hkafusion", run_name="broken"), uri)
    with pytest.raises(RuntimeError):
        run_tracked(idle, lambda: (_ for _ in ()).throw(RuntimeError("before the start")))
    assert client.get_run(found.info.run_id).info.status == status
