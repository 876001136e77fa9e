"""The executed config a run records is the one its bundle workflow runs, taken from the workflow itself: the
config files merged with the overrides however they were given, never rebuilt from the command line."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest
from monai.bundle import ConfigParser, ConfigWorkflow

from hkafusion_monai.handlers import MLflowRunRecorder
from hkafusion_monai.handlers.run_record import running_bundle_config, scrub_paths, source_tags
from tests.helpers import REPO

CONFIG = {
    "output_dir": "unset",
    "lr": 0.1,
    "recorder": {
        "_target_": "hkafusion_monai.handlers.MLflowRunRecorder",
        "output_dir": "@output_dir",
        "params": {"lr": "@lr"},
    },
    "record": "$@recorder(None)",
}


def _config_file(tmp_path: Path) -> Path:
    path = tmp_path / "configs" / "record.json"
    path.parent.mkdir()
    path.write_text(json.dumps(CONFIG), encoding="utf-8")
    return path


def test_the_workflow_gives_its_executed_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Overrides given in Python reach the record while a misleading command line is ignored."""
    config_file = _config_file(tmp_path)
    monkeypatch.setattr(sys, "argv", ["train.py", "--config_file", "other.json", "--lr", "9"])
    out = tmp_path / "out"
    workflow = ConfigWorkflow(
        config_file=str(config_file), workflow_type=None, logging_file=False, run_id="record", output_dir=str(out)
    )
    workflow.initialize()
    workflow.run()
    recorder = workflow.parser.get_parsed_content("recorder")
    assert recorder.run_id == "record"
    recorded = json.loads((out / "executed_config.json").read_text())
    assert recorded == {**CONFIG, "output_dir": scrub_paths(str(out))}
    assert recorded["output_dir"].startswith("<path sha256:"), "the run's own folder is hashed too"
    assert recorder.params == {"lr": 0.1}


def test_a_parser_used_alone_gives_its_config(tmp_path: Path) -> None:
    parser = ConfigParser({**CONFIG, "lr": 0.3, "output_dir": str(tmp_path / "out")})
    recorder = parser.get_parsed_content("recorder")
    assert recorder.run_id is None
    assert recorder.config["lr"] == 0.3 and recorder.config["recorder"] == CONFIG["recorder"]


def test_outside_a_workflow_the_params_are_recorded() -> None:
    assert running_bundle_config() is None
    assert MLflowRunRecorder(params={"lr": 0.2}).config == {"tracked_params": {"lr": 0.2}}


def test_the_source_names_the_bundle_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["/x/monai/bundle/__main__.py", "run", "misleading"])
    assert source_tags("unknown", "training")["mlflow.source.name"] == "python -m monai.bundle run training"
    monkeypatch.setattr(sys, "argv", ["/x/scripts/train.py"])
    assert source_tags("unknown", "training")["mlflow.source.name"] == "train.py"


def _command_line_reads(path: Path) -> list[str]:
    """Where a module reads ``sys.argv`` past the script's name, or imports python-fire."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"{path.name}:{node.lineno} imports fire" for n in names if n.split(".")[0] == "fire"]
        is_argv = isinstance(node, ast.Attribute) and node.attr == "argv"
        if is_argv and isinstance(node.value, ast.Name) and node.value.id == "sys":
            parent = parents.get(node)
            index = parent.slice if isinstance(parent, ast.Subscript) else None
            script_name = isinstance(index, ast.Constant) and index.value == 0
            if not (script_name or isinstance(parent, ast.BoolOp)):
                found.append(f"{path.name}:{node.lineno} reads sys.argv")
    return found


#: programs that parse their own command line (the Deploy application's ``hkafusion-deploy``)
OWN_COMMAND_LINES = {"deploy/cli.py"}


def test_no_module_reads_the_command_line() -> None:
    """Beyond programs parsing their own command line, the package reads ``sys.argv`` only for the script's
    name (the MLflow source tag): nothing rebuilds what ``monai.bundle run`` was given."""
    package = REPO / "hkafusion_monai"
    modules = sorted(m for m in package.rglob("*.py") if m.relative_to(package).as_posix() not in OWN_COMMAND_LINES)
    assert [f for m in modules for f in _command_line_reads(m)] == []


def test_a_command_line_read_is_caught(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text("import sys\nimport fire\nflags = sys.argv[1:]\nname = sys.argv[0]\n", encoding="utf-8")
    assert _command_line_reads(planted) == ["planted.py:2 imports fire", "planted.py:3 reads sys.argv"]
