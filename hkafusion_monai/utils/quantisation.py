"""The one quantisation of an intensity in [0, 1] to stored grey levels: ``round(max_value * clip(x, 0, 1))``.

Every path that scores, writes or shows a fused image uses it: the metrics (0..255, as the reference scored
8-bit images), the PNG writer and the displays (uint8), the derived DICOM series (0..65535, uint16), the
phantom's PNG files. Rounding is half-to-even (``torch.round`` and ``np.round`` alike), so a uint8 image
divided by 255 maps back to its exact integers.

numpy arrays are quantised with numpy and tensors with torch (the same arithmetic: ``clip``, multiply,
``round`` in the input's floating dtype), so that the torch-free command-line tools (the phantom generator)
do not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar, overload

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["as_tensor", "quantise", "to_uint16", "to_uint8"]

#: a numpy array or a torch tensor, the same kind in and out
ArrayOrTensor = TypeVar("ArrayOrTensor", np.ndarray, "torch.Tensor")


def as_tensor(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """A tensor as is; an array (read-only ones too, e.g. from PIL) copied into a tensor."""
    import torch

    return x if isinstance(x, torch.Tensor) else torch.from_numpy(np.array(x))


def _levels(x: ArrayOrTensor, max_value: float) -> ArrayOrTensor:
    """``round(max_value * clip(x, 0, 1))`` in ``x``'s floating dtype (float32 for integers); NaN/inf refused."""
    if isinstance(x, np.ndarray):
        x = x if x.dtype.kind == "f" else x.astype(np.float32)
        finite = bool(np.isfinite(x).all())
    else:
        import torch

        x = x if x.is_floating_point() else x.float()
        finite = bool(torch.isfinite(x).all())
    if not finite:
        raise ValueError("quantise: the image holds NaN or inf values.")
    return (x.clip(0.0, 1.0) * max_value).round()


def quantise(x: torch.Tensor | np.ndarray, max_value: float = 255.0) -> torch.Tensor:
    """Map an image in [0, 1] to the integer grey values 0..``max_value``: ``round(max_value * clip(x, 0, 1))``.

    The single quantisation used by every path that scores a network output (metric classes, handlers,
    benchmark). Rounding is half-to-even (``torch.round``, like ``np.round``); a uint8 image divided by
    255 maps back to its exact integers.

    Args:
        x: tensor (or array) of any shape, values nominally in [0, 1]; must be finite.
        max_value: the grey value of full white: 255 (8-bit, what the metrics score) or 65535 (16-bit).

    Returns:
        a floating tensor of the same shape and dtype (float32 for integer input) holding integers 0..max_value.

    Raises:
        ValueError: when ``x`` holds NaN or inf.
    """
    return _levels(as_tensor(x), max_value)


@overload
def to_uint8(x: np.ndarray) -> np.ndarray: ...


@overload
def to_uint8(x: torch.Tensor) -> torch.Tensor: ...


def to_uint8(x: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """:func:`quantise` to 0..255 as uint8, the same kind of object as ``x`` (a numpy array or a tensor).

    Raises:
        ValueError: when ``x`` holds NaN or inf.
    """
    if isinstance(x, np.ndarray):
        return _levels(x, 255.0).astype(np.uint8)
    import torch

    return _levels(x, 255.0).to(torch.uint8)


def to_uint16(x: np.ndarray) -> np.ndarray:
    """:func:`quantise` to 0..65535, computed in float64, as a uint16 array (16-bit stored pixel values).

    Raises:
        ValueError: when ``x`` holds NaN or inf.
    """
    return _levels(np.asarray(x, dtype=np.float64), 65535.0).astype(np.uint16)
