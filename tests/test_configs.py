"""The bundle configs read like model-zoo's: tunable transforms are components that ``#`` overrides reach,
evaluate.json is a thin override, one Harvard overlay serves the three tasks with ``--task``."""

from __future__ import annotations

import json
from pathlib import Path

from monai.bundle import ConfigParser

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "bundle" / "configs"
TRAIN_JSON, EVALUATE_JSON = CONFIGS / "train.json", CONFIGS / "evaluate.json"


def _parser(*files: Path, **overrides: object) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(f) for f in files])
    parser.update({"bundle_root": str(REPO / "bundle"), **overrides})
    return parser


def test_an_override_reaches_an_augmentation() -> None:
    # what `--train#augmentation#0#prob 0` does on the command line (python-fire passes the int 0)
    assert _parser(TRAIN_JSON).get_parsed_content("train#augmentation#0").prob == 0.5
    rotate = _parser(TRAIN_JSON, **{"train#augmentation#0#prob": 0}).get_parsed_content("train#augmentation#0")
    assert type(rotate).__name__ == "RandRotated" and rotate.prob == 0


def test_evaluate_json_is_a_thin_override() -> None:
    raw = json.loads(EVALUATE_JSON.read_text())
    assert "validate#preprocessing" not in raw and "validate#mlflow" not in raw  # train.json's, not copies
    parser = _parser(TRAIN_JSON, EVALUATE_JSON)
    assert parser["validate#dataset#cache_rate"] == 0.0
    assert parser["validate#mlflow#epoch_log"] is False
    assert parser["validate#mlflow#tracking_uri"] == "@tracking_uri"


def test_one_harvard_overlay_and_the_task_option() -> None:
    harvard = REPO / "configs" / "harvard.json"
    for task in ("mri_ct", "mri_pet", "mri_spect"):
        parser = _parser(TRAIN_JSON, harvard, task=task)
        assert parser.get_parsed_content("output_dir").endswith(f"/eval/{task}")
        assert parser.get_parsed_content("epochs") == 300
    assert not list((REPO / "configs").glob("mri_*.json")), "one Harvard overlay: the task is an option"


def test_the_configs_import_the_package_once() -> None:
    for name in ("train.json", "inference.json"):
        imports = json.loads((CONFIGS / name).read_text())["imports"]
        ours = [i for i in imports if "hkafusion_monai" in i]
        assert ours == ["$import hkafusion_monai.utils.bundle_cli", "$import hkafusion_monai"], name
