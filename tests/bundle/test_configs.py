"""The bundle configs read like model-zoo's: tunable transforms are components that ``#`` overrides reach,
evaluate.json is a thin override, one Harvard overlay serves the three tasks with ``--task``."""

from __future__ import annotations

import json
from pathlib import Path

from monai.bundle import ConfigParser

from tests.helpers import REPO

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
    assert "validate#preprocessing" not in raw and "load_pair" not in raw  # train.json's, not copies
    parser = _parser(TRAIN_JSON, EVALUATE_JSON)
    assert parser["validate#dataset#cache_rate"] == 0.0
    assert parser["validate#datalist#split"] == "@eval_split"
    (mlflow,) = [h for h in parser["validate#handlers"] if h["_target_"] == "MLFlowHandler"]
    assert mlflow["epoch_log"] is False and mlflow["tracking_uri"] == "@tracking_uri"


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


def test_the_paper_overlay_is_the_papers_recipe() -> None:
    """configs/paper.json reproduces the paper (III-D, IV-A): eq. 7-12 as written (λ = (1, 1, 0.5), eq. 9's
    magnitude target, no contrast floor), no synthetic lesions, whole 256² images, batch 8, 2000 epochs, Adam
    1e-5 cosine to 1e-7, from scratch."""
    parser = _parser(TRAIN_JSON, REPO / "configs" / "paper.json", task="mri_pet")
    loss = parser.get_parsed_content("loss")
    assert (loss.lambda_s, loss.lambda_grad, loss.lambda_inten) == (1.0, 1.0, 0.5)
    assert (loss.gradient_target, loss.lambda_contrast) == ("magnitude", 0.0)
    probs = {type(t).__name__: t.prob for t in parser.get_parsed_content("train#augmentation") if hasattr(t, "prob")}
    assert probs["RandHotSpotd"] == 0 and probs["RandLesiond"] == 0 and probs["RandRotated"] > 0
    assert parser.get_parsed_content("roi_size") == [256, 256] and parser.get_parsed_content("batch_size") == 8
    assert parser.get_parsed_content("epochs") == 2000 and parser.get_parsed_content("pretrained") is False
    assert (parser.get_parsed_content("learning_rate"), parser.get_parsed_content("min_learning_rate")) == (1e-5, 1e-7)
    assert parser.get_parsed_content("output_dir").endswith("/eval/paper_mri_pet")


def test_the_shipped_recipe_names_every_loss_option() -> None:
    """configs/joint.json (the shipped weights' recipe) states its loss and lesion augmentation outright."""
    joint = json.loads((REPO / "configs" / "joint.json").read_text())
    for key in ("loss#lambda_s", "loss#lambda_grad", "loss#gradient_target", "loss#lambda_contrast", "lesion_prob"):
        assert key in joint, key


def test_handlers_named_by_their_list_index_are_the_right_ones() -> None:
    """Handlers are inline ``_target_`` items (MONAI's property checks read each as a dict); the few that other
    items use (the μ handler's state, the MLflow handler and its run) are named by their place in the list."""
    import re

    cases = [((TRAIN_JSON,), "train#handlers"), ((TRAIN_JSON, EVALUATE_JSON), "validate#handlers")]
    cases += [((TRAIN_JSON,), "validate#handlers"), ((CONFIGS / "inference.json",), "handlers")]
    for files, handlers in cases:
        parser = _parser(*files)
        text = json.dumps(parser.get())
        listed = parser[handlers]
        for index in sorted({int(i) for i in re.findall(rf"@{handlers}#(\d+)\b", text)}):
            referring = re.findall(rf'"(\w+)": "@{handlers}#{index}\b', text) or ["a step"]
            target = listed[index]["_target_"].rsplit(".", 1)[-1]
            expected = {"handler": "MLFlowHandler", "mlflow_run": "MLflowRun", "mu": "DynamicMuHandler"}
            for key in referring:
                assert target == expected.get(key, target), f"{files[-1].name} {handlers}#{index} is {target}"
