"""Export of the network to ONNX (the optional ``onnx`` extra); TorchScript is MONAI's ``ckpt_export``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from hkafusion_monai.io.atomic import atomic_write

__all__ = ["export_onnx"]


def export_onnx(
    network: torch.nn.Module,
    filepath: str | os.PathLike,
    example_size: Sequence[int] = (64, 64),
    dynamic: bool = True,
    overwrite: bool = False,
) -> Path:
    """Export the network to ONNX with ``torch.onnx.export(..., dynamo=True)`` (optional extra
    ``pip install -e ".[onnx]"``), input ``image`` ``(1, 2, H, W)``, output ``pred`` ``(1, 1, H, W)``.

    With ``dynamic``, H and W are free multiples of 32 (the network's own padding to 32 is then a no-op;
    pad other sizes before calling the ONNX model); otherwise the model is fixed to ``example_size``. The
    TorchScript-based exporter cannot export the re-parameterised depthwise kernel, hence dynamo. Written
    atomically.
    """
    network = network.eval()
    h, w = (int(s) for s in example_size)
    if dynamic and (h % 32 or w % 32):
        raise ValueError(f"example_size {tuple(example_size)}: a dynamic export needs multiples of 32")
    example = torch.rand(1, 2, h, w)
    dims = None
    if dynamic:
        h32, w32 = torch.export.Dim("h32", min=1, max=128), torch.export.Dim("w32", min=1, max=128)
        dims = {"image": {2: 32 * h32, 3: 32 * w32}}

    def write(tmp: str) -> None:
        torch.onnx.export(
            network, (example,), tmp, input_names=["image"], output_names=["pred"], dynamo=True, dynamic_shapes=dims
        )

    return atomic_write(filepath, write, overwrite)
