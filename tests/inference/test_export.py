"""Export: TorchScript through MONAI's ``ckpt_export``, ``verify_net_in_out``, ONNX."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser, ckpt_export, verify_net_in_out

from hkafusion_monai.inference import export_onnx, load_weights
from tests.helpers import BUNDLE, INFERENCE_JSON, random_checkpoint

META = BUNDLE / "configs" / "metadata.json"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_checkpoint(tmp_path_factory)


def _eager(ckpt: Path) -> torch.nn.Module:
    parser = ConfigParser()
    parser.read_config(str(INFERENCE_JSON))
    return load_weights(parser.get_parsed_content("network_def"), ckpt)


@pytest.mark.parametrize("nested", [False, True], ids=["state_dict", "checkpoint_saver_dict"])
def test_ckpt_export_matches_eager_at_two_sizes(tmp_path: Path, ckpt: Path, nested: bool) -> None:
    ckpt_file, key = ckpt, None
    if nested:  # the full training state: the network under "model"
        ckpt_file, key = tmp_path / "full.pt", "model"
        torch.save({"model": torch.load(ckpt, weights_only=True), "epoch": 3}, ckpt_file)
    filepath = tmp_path / "model.ts"
    # = python -m monai.bundle ckpt_export network_def --filepath ... --ckpt_file ... --meta_file ... --config_file ...
    ckpt_export(
        "network_def",
        filepath=str(filepath),
        ckpt_file=str(ckpt_file),
        meta_file=str(META),
        config_file=str(INFERENCE_JSON),
        key_in_ckpt=key,
    )
    extra = {"metadata.json": "", "inference.json": ""}
    scripted = torch.jit.load(str(filepath), _extra_files=extra)
    assert b'"version"' in extra["metadata.json"] and b"network_def" in extra["inference.json"]
    eager = _eager(ckpt)
    for shape in [(1, 2, 64, 64), (2, 2, 48, 80)]:  # the second not a multiple of 32: padded and cropped back
        x = torch.rand(*shape)
        with torch.no_grad():
            torch.testing.assert_close(scripted(x), eager(x), rtol=1e-5, atol=1e-6)


def test_verify_net_in_out() -> None:
    # metadata: (2, 32*n, 32*n) float32 in, (1, 32*n, 32*n) out
    verify_net_in_out("network_def", meta_file=str(META), config_file=str(INFERENCE_JSON), device="cpu", n=2)


@pytest.mark.slow  # the dynamo exporter takes about half a minute on 2 cores
def test_onnx_export_with_dynamic_size_matches_eager(tmp_path: Path, ckpt: Path) -> None:
    ort = pytest.importorskip("onnxruntime", reason="optional extra: pip install -e '.[onnx]'")
    pytest.importorskip("onnxscript", reason="optional extra: pip install -e '.[onnx]'")
    eager = _eager(ckpt)
    path = export_onnx(eager, tmp_path / "model.onnx", example_size=(64, 64), dynamic=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in [(1, 2, 64, 64), (1, 2, 96, 128)]:
        x = torch.rand(*shape)
        (out,) = session.run(None, {"image": x.numpy()})
        with torch.no_grad():
            np.testing.assert_allclose(out, eager(x).numpy(), rtol=1e-4, atol=1e-5)
    with pytest.raises(FileExistsError):
        export_onnx(eager, path)
