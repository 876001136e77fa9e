"""The bundle against MONAI's own checks and the model zoo's, offline, as the zoo's CI runs them
(``ci/verify_bundle.py`` and its unit tests): the files a bundle must and should hold, the version in the
changelog, ``verify_metadata`` against the schema ``metadata.json`` names (kept in ``docs/`` with its hash,
so MONAI does not download it), ``verify_net_in_out``, ``ckpt_export`` of the shipped weights (compared with
the eager network and the shipped ``model.ts``), the config keys and bundle properties, and the README.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shlex
import socket
from pathlib import Path
from typing import Any

import monai
import numpy
import pytest
import torch
from monai.bundle import ConfigParser, ConfigWorkflow, ckpt_export, verify_metadata, verify_net_in_out
from monai.utils import BundleProperty, BundlePropertyConfig

from hkafusion_monai.utils.errors import OptionError
from tests.helpers import BUNDLE, REPO

README = BUNDLE / "docs" / "README.md"
#: the model zoo's size limit per file (CONTRIBUTING, "Model storage")
MAX_FILE_BYTES = 25 * 1024 * 1024
#: docs/README.md sections, as the zoo's bundles (spleen_ct_segmentation) have them
README_SECTIONS = (
    "Model Overview",
    "Data",
    "Training configuration",
    "Input",
    "Output",
    "Performance",
    "MONAI Bundle Commands",
    "References",
    "License",
)


@pytest.fixture(scope="module")
def metadata() -> dict:
    return json.loads((BUNDLE / "configs" / "metadata.json").read_text())


def _readme_commands(tool: str) -> list[list[str]]:
    """The README's ``python -m monai.bundle <tool> ...`` command lines (continuations joined), as arguments."""
    text = README.read_text(encoding="utf-8").replace("\\\n", " ")
    command = f"python -m monai.bundle {tool} "
    return [shlex.split(line.strip()) for line in text.splitlines() if line.strip().startswith(command)]


def _options(argv: list[str]) -> dict[str, str]:
    return {argv[i][2:]: argv[i + 1] for i in range(len(argv) - 1) if argv[i].startswith("--")}


# ----------------------------------------------------------------------------------------- files and metadata


def test_the_files_a_bundle_must_and_should_hold(metadata: dict) -> None:
    for name in (
        "configs/metadata.json",
        "LICENSE",
        "models/model.pt",
        "configs/inference.json",
        "docs/README.md",
        "docs/data_license.txt",
    ):
        assert (BUNDLE / name).is_file(), name
    assert metadata["version"] in metadata["changelog"]
    for path in BUNDLE.rglob("*"):
        if path.is_file() and path.relative_to(BUNDLE).parts[0] not in ("eval", "runs"):
            assert path.stat().st_size <= MAX_FILE_BYTES, path


def test_verify_metadata_runs_offline_with_the_kept_schema(
    metadata: dict, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The README's ``verify_metadata`` command, from the bundle folder and with every connection refused: the
    schema file is the one ``metadata.json`` names, with the hash the command gives, so MONAI reads it instead
    of downloading it."""
    (argv,) = _readme_commands("verify_metadata")
    options = _options(argv)
    schema = BUNDLE / options["filepath"]
    assert schema.name == metadata["schema"].rsplit("/", 1)[-1]
    assert options["hash_type"] == "sha256" and hashlib.sha256(schema.read_bytes()).hexdigest() == options["hash_val"]

    def no_network(*args: Any, **kwargs: Any) -> None:
        raise OSError("the network is not reachable in this test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.chdir(BUNDLE)
    with caplog.at_level(logging.INFO):
        verify_metadata(**options)
    assert "metadata is verified with no error" in caplog.text


def test_verify_metadata_refuses_what_the_schema_refuses(metadata: dict, tmp_path: Path) -> None:
    """The kept schema is MONAI's: a metadata without a required field, or with a field of the wrong type, fails."""
    schema = BUNDLE / "docs" / metadata["schema"].rsplit("/", 1)[-1]
    digest = hashlib.sha256(schema.read_bytes()).hexdigest()
    for broken in ({k: v for k, v in metadata.items() if k != "task"}, {**metadata, "version": 4}):
        meta = tmp_path / "metadata.json"
        meta.write_text(json.dumps(broken))
        with pytest.raises(ValueError, match="Failed validating"):
            verify_metadata(meta_file=str(meta), filepath=str(schema), hash_val=digest, hash_type="sha256")


def test_metadata_states_the_io_contract(metadata: dict) -> None:
    image = metadata["network_data_format"]["inputs"]["image"]
    pred = metadata["network_data_format"]["outputs"]["pred"]
    assert image["num_channels"] == 2 and image["value_range"] == [0, 1]
    assert set(image["channel_def"].values()) >= {"MRI"}
    assert pred["num_channels"] == 1 and pred["value_range"] == [0, 1]


def test_metadata_versions_match_the_environment(metadata: dict) -> None:
    assert metadata["monai_version"] == monai.__version__
    assert metadata["pytorch_version"] == torch.__version__.split("+")[0]
    assert metadata["numpy_version"].split(".")[0] == numpy.__version__.split(".")[0]
    assert metadata["required_packages_version"]["hkafusion-monai"] == metadata["version"]


def test_metadata_states_limits_and_sources(metadata: dict) -> None:
    assert "research use only" in metadata["intended_use"].lower()
    assert "atlas" in metadata["intended_use"].lower()
    assert any("HKA Fusion" in ref for ref in metadata["references"])
    assert "docs/data_license.txt" in metadata["data_source"]


# ----------------------------------------------------------------------------------------- the network


def test_verify_net_in_out_from_the_bundle_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's ``verify_net_in_out`` command: (2, 32n, 32n) float32 in, (1, 32n, 32n) out."""
    (argv,) = _readme_commands("verify_net_in_out")
    monkeypatch.chdir(BUNDLE)
    verify_net_in_out(**_options(argv), device="cpu")


def test_ckpt_export_of_the_shipped_weights_matches_eager_and_model_ts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The README's ``ckpt_export`` command on ``models/model.pt`` (into a temporary file): the export's output
    equals the eager network's and the shipped ``models/model.ts``'s."""
    (argv,) = _readme_commands("ckpt_export")
    options = {**_options(argv), "filepath": str(tmp_path / "model.ts")}
    monkeypatch.chdir(BUNDLE)
    ckpt_export(**options)
    exported = torch.jit.load(options["filepath"])
    shipped = torch.jit.load(str(BUNDLE / "models" / "model.ts"))
    parser = ConfigParser()
    parser.read_config(options["config_file"])
    eager = parser.get_parsed_content(options["net_id"])
    eager.load_state_dict(torch.load(options["ckpt_file"], weights_only=True))
    eager.eval()
    x = torch.rand(1, 2, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = eager(x)
        torch.testing.assert_close(exported(x), expected, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(shipped(x), expected, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------------- configs and README


def test_config_keys_follow_the_zoo() -> None:
    """CONTRIBUTING's key names: inference ``bundle_root``, ``device``, ``network_def``, ``inferer``,
    ``output_dir``; training also ``dataset_dir`` and the ``train``/``validate`` components, and
    ``ValidationHandler`` takes ``@val_interval``."""
    infer = ConfigParser.load_config_file(str(BUNDLE / "configs" / "inference.json"))
    assert {"bundle_root", "device", "network_def", "inferer", "output_dir", "dataset_dir"} <= set(infer)
    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "train.json"))
    for key in (
        "bundle_root",
        "device",
        "dataset_dir",
        "output_dir",
        "network_def",
        "train#trainer",
        "train#trainer#max_epochs",
        "train#dataset",
        "train#dataset#data",
        "train#handlers",
        "train#preprocessing",
        "train#inferer",
        "validate#evaluator",
        "validate#handlers",
        "validate#dataset",
        "validate#dataset#data",
        "validate#preprocessing",
        "validate#inferer",
        "validate#key_metric",
        "val_interval",
    ):
        assert key in parser, key
    handlers = parser["train#handlers"]
    assert all(isinstance(h, dict) and "_target_" in h for h in handlers), "handlers are inline _target_ items"
    assert all(isinstance(h, dict) and "_target_" in h for h in parser["validate#handlers"])
    (validation,) = [h for h in handlers if h["_target_"] == "ValidationHandler"]
    assert validation["interval"] == "@val_interval" and validation["validator"] == "@validate#evaluator"


def _optional_ids_are_used(workflow: ConfigWorkflow) -> list[str]:
    """The optional properties whose config id is defined but not the one the workflow uses (MONAI's rule, also
    applied to expressions, which MONAI's own check skips)."""
    wrong = []
    for name, prop in workflow.properties.items():
        refer = prop.get(BundlePropertyConfig.REF_ID)
        if prop.get(BundleProperty.REQUIRED) or refer is None or name in ("evaluator", "val_interval"):
            continue
        ref: Any = workflow.parser.get(refer)
        if isinstance(ref, str) and not ref.startswith("$") and ref != "@" + prop[BundlePropertyConfig.ID]:
            wrong.append(name)
    return wrong


@pytest.mark.parametrize("workflow_type", ["train", "infer"])
def test_bundle_properties(workflow_type: str, phantom: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MONAI's ``TrainProperties``/``InferProperties`` (``MetaProperties`` too) of the bundle run from its own
    folder with ``--dataset_dir``, as the zoo's unit tests check them."""
    monkeypatch.chdir(BUNDLE)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    config = "configs/train.json" if workflow_type == "train" else "configs/inference.json"
    overrides = {"dataset_dir": str(phantom), "task": "mri_pet", "output_dir": str(tmp_path), "cache_rate": 0.0}
    workflow = ConfigWorkflow(
        config_file=config, workflow_type=workflow_type, logging_file=False, init_id="none", **overrides
    )
    workflow.initialize()
    # MONAI's own check: the required properties, and the optional ones (it reads every train#handlers entry)
    assert workflow.check_properties() == []
    assert _optional_ids_are_used(workflow) == []
    assert workflow.dataset_dir == str(phantom) and workflow.bundle_root == "."


def test_the_infer_workflow_from_the_bundle_folder_says_what_to_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """Initialised from ``bundle/`` with no inputs, as model-zoo's tools start a bundle, the inference workflow
    stops on one line that says what to pass."""
    monkeypatch.chdir(BUNDLE)
    workflow = ConfigWorkflow(config_file="configs/inference.json", workflow_type="infer", logging_file=False)
    with pytest.raises(RuntimeError) as raised:  # MONAI wraps the failed expression's error
        workflow.initialize()
    cause: BaseException | None = raised.value
    while cause is not None and not isinstance(cause, OptionError):
        cause = cause.__cause__
    assert str(cause) == (
        "nothing to fuse: give --mri PATH --other PATH, --datalist PATH [--split test], or --dataset_dir PATH "
        "--task TASK"
    )


def test_readme_has_the_zoo_sections_and_runnable_commands() -> None:
    text = README.read_text(encoding="utf-8")
    headings = {m.group(1).strip() for m in re.finditer(r"^#+\s+(.+)$", text, re.M)}
    assert set(README_SECTIONS) <= headings, set(README_SECTIONS) - headings
    assert "TorchScript" in text and "TensorRT" in text  # CONTRIBUTING: say what is supported
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    checked = 0
    for block in blocks:
        where = {"# from the bundle folder": BUNDLE, "# from the project root": REPO}.get(block.splitlines()[0])
        if where is None:
            continue
        for line in block.replace("\\\n", " ").splitlines():
            if line.startswith(("python -m monai.bundle run", "torchrun")):
                value = _options(shlex.split(line))["config_file"]
                names = json.loads(value.replace("'", '"')) if value.startswith("[") else [value]
                for name in names:
                    assert (where / name).is_file(), f"{line}: {name} not found from {where}"
                    checked += 1
    assert checked >= 10
