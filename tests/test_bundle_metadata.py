"""bundle/configs/metadata.json against the fields MONAI's bundle specification requires.

``python -m monai.bundle verify_metadata`` downloads its schema, which these machines cannot reach; this test
checks the same required fields offline with jsonschema.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import monai
import numpy
import pytest
import torch

BUNDLE = Path(__file__).resolve().parents[1] / "bundle"

TENSOR = {
    "type": "object",
    "required": ["type", "format", "num_channels", "spatial_shape", "dtype", "value_range", "is_patch_data", "channel_def"],
    "properties": {
        "type": {"type": "string"},
        "format": {"type": "string"},
        "modality": {"type": "string"},
        "num_channels": {"type": "integer", "minimum": 1},
        "spatial_shape": {"type": "array", "items": {"type": ["integer", "string"]}},
        "dtype": {"type": "string"},
        "value_range": {"type": "array", "items": {"type": "number"}},
        "is_patch_data": {"type": "boolean"},
        "channel_def": {"type": "object"},
    },
}
SCHEMA = {
    "type": "object",
    "required": [
        "version", "changelog", "monai_version", "pytorch_version", "numpy_version", "required_packages_version",
        "task", "description", "authors", "copyright", "network_data_format",
    ],
    "properties": {
        "version": {"type": "string", "pattern": r"^\d+\.\d+\.\d+$"},
        "changelog": {"type": "object", "minProperties": 1},
        "monai_version": {"type": "string"},
        "pytorch_version": {"type": "string"},
        "numpy_version": {"type": "string"},
        "required_packages_version": {"type": "object"},
        "task": {"type": "string"},
        "description": {"type": "string"},
        "authors": {"type": "string"},
        "copyright": {"type": "string"},
        "intended_use": {"type": "string"},
        "references": {"type": "array", "items": {"type": "string"}},
        "network_data_format": {
            "type": "object",
            "required": ["inputs", "outputs"],
            "properties": {
                "inputs": {"type": "object", "required": ["image"], "additionalProperties": TENSOR},
                "outputs": {"type": "object", "required": ["pred"], "additionalProperties": TENSOR},
            },
        },
    },
}


@pytest.fixture(scope="module")
def metadata() -> dict:
    return json.loads((BUNDLE / "configs" / "metadata.json").read_text())


def test_metadata_follows_the_bundle_specification(metadata: dict) -> None:
    jsonschema.validate(metadata, SCHEMA)
    assert metadata["version"] in metadata["changelog"]


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


def test_metadata_states_limits_and_sources(metadata: dict) -> None:
    assert "research use only" in metadata["intended_use"].lower()
    assert "atlas" in metadata["intended_use"].lower()
    assert any("HKA Fusion" in ref for ref in metadata["references"])
    assert (BUNDLE.parent / "docs" / "data_license.txt").is_file()
    assert (BUNDLE / "LICENSE").is_file() and (BUNDLE / "docs" / "README.md").is_file()


def test_network_def_matches_metadata(metadata: dict) -> None:
    """What ``verify_net_in_out`` checks, offline: the bundle's network_def maps the declared input to the output."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "train.json"))
    net = parser.get_parsed_content("network_def").eval()
    spec_in = metadata["network_data_format"]["inputs"]["image"]
    with torch.no_grad():
        out = net(torch.rand(1, spec_in["num_channels"], 64, 64))
    assert out.shape[1] == metadata["network_data_format"]["outputs"]["pred"]["num_channels"]
    assert out.min() >= 0 and out.max() <= 1
