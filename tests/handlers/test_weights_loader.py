"""One weights loader: :class:`~hkafusion_monai.handlers.WeightsLoader`, MONAI's ``CheckpointLoader`` subclassed
once, whose ``__call__`` runs MONAI's inside one translation of its errors. The workflows' handlers,
``inference.json``'s ``initialize`` and ``load_fuser`` (``load_weights``) all load through it."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import torch
from monai.handlers import CheckpointLoader

from hkafusion_monai.handlers import WeightsLoader
from hkafusion_monai.inference import load_weights
from hkafusion_monai.networks import HKAFusion
from hkafusion_monai.utils import CheckpointError, CheckpointNotFoundError
from tests.helpers import BUNDLE, INFERENCE_JSON, REPO, random_checkpoint

PACKAGE = REPO / "hkafusion_monai"


def test_load_weights_runs_monais_checkpoint_loader(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    ckpt = random_checkpoint(tmp_path_factory)
    calls: list[str] = []
    monais = CheckpointLoader.__call__

    def spy(self: CheckpointLoader, engine) -> None:
        calls.append(type(self).__name__)
        monais(self, engine)

    monkeypatch.setattr(CheckpointLoader, "__call__", spy)
    network = load_weights(HKAFusion(in_channels=2, out_channels=1), ckpt)
    assert calls == ["WeightsLoader"] and not network.training
    expected = torch.load(ckpt, weights_only=True)
    assert all(torch.equal(v, expected[k]) for k, v in network.state_dict().items())


def test_every_bad_file_is_one_error_naming_it(tmp_path: Path) -> None:
    network = HKAFusion(in_channels=2, out_channels=1)
    with pytest.raises(CheckpointNotFoundError, match="no HKAFusion checkpoint at .* --ckpt_path PATH"):
        load_weights(network, tmp_path / "absent.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(CheckpointError, match=re.escape(str(truncated))):
        load_weights(network, truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"conv.weight": torch.zeros(1)}, foreign)
    with pytest.raises(CheckpointError, match="not a checkpoint of this network"):
        load_weights(network, foreign)


def test_inference_json_loads_its_weights_with_it_in_initialize() -> None:
    config = json.loads(INFERENCE_JSON.read_text())
    assert config["checkpoint_loader"]["_target_"] == "hkafusion_monai.handlers.WeightsLoader"
    assert "$@checkpoint_loader(@evaluator)" in config["initialize"]
    for name in ("train.json", "evaluate.json"):
        text = (BUNDLE / "configs" / name).read_text()
        assert "hkafusion_monai.handlers.WeightsLoader" in text and "load_weights" not in text


def test_no_other_code_reads_a_checkpoint() -> None:
    """``torch.load`` is called in one place (the safe reader), and only the loader calls that reader."""

    def reads(path: Path) -> bool:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                f = node.func
                if isinstance(f, ast.Attribute) and f.attr == "load" and getattr(f.value, "id", None) == "torch":
                    return True
                if getattr(f, "id", getattr(f, "attr", None)) == "read_checkpoint":
                    return True
        return False

    readers = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py") if reads(p)}
    assert readers == {"utils/weights.py", "handlers/checkpoint_loader.py"}
    assert issubclass(WeightsLoader, CheckpointLoader)
