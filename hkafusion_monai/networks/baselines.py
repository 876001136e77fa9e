"""Classical fusion rules used as baselines: they take the network's input and give the network's output, so
the evaluation workflow scores them through exactly the same pipeline (data, quantisation, metrics) as
HKAFusion.

All work on the 8-bit grey levels the metrics score: inputs in [0, 1] are first quantised to
``round(255 x)`` (:func:`~hkafusion_monai.utils.quantisation.quantise`), as the reference rules were computed
on 8-bit images.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from hkafusion_monai.utils.quantisation import quantise

__all__ = ["LaplacianPyramidFusion", "PixelAverage", "PixelMax"]


def _levels(image: torch.Tensor) -> torch.Tensor:
    if image.dim() != 4 or image.shape[1] != 2:
        raise ValueError(f"expected image of shape (B, 2, H, W), got {list(image.shape)}.")
    return quantise(image)


class PixelAverage(nn.Module):
    """The average rule: ``F = (A + B + 1) // 2`` on 8-bit levels (round half up), returned in [0, 1].

    Shape: ``(B, 2, H, W) -> (B, 1, H, W)``.
    """

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        levels = _levels(image)
        return torch.div(levels[:, :1] + levels[:, 1:] + 1, 2, rounding_mode="floor") / 255.0


class PixelMax(nn.Module):
    """The max rule: ``F = max(A, B)`` on 8-bit levels, returned in [0, 1].

    Shape: ``(B, 2, H, W) -> (B, 1, H, W)``.
    """

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        levels = _levels(image)
        return torch.maximum(levels[:, :1], levels[:, 1:]) / 255.0


class LaplacianPyramidFusion(nn.Module):
    """Textbook multi-scale fusion (Burt & Adelson, "The Laplacian pyramid as a compact image code", IEEE
    Trans. Commun. 1983; the selection rule of Burt & Kolczynski, ICCV 1993).

    Each source is decomposed into a Laplacian pyramid with the 5-tap binomial kernel [1, 4, 6, 4, 1] / 16
    (``levels`` detail levels over a low-pass base); at every detail level each coefficient is taken from the
    source whose local energy (the 3 x 3 mean of the squared coefficients) is larger; the base levels are
    fused by their maximum; the pyramid is collapsed and clipped to [0, 1]. Written here because neither
    MONAI nor another kept library has pyramid fusion.

    Args:
        levels: detail levels (4: the baseline of docs/results.md).

    Shape: ``(B, 2, H, W) -> (B, 1, H, W)``, any H and W (padded by reflection to a multiple of
    ``2 ** levels`` inside, cropped back).
    """

    kernel: torch.Tensor  # the binomial kernel, a non-persistent buffer

    def __init__(self, levels: int = 4) -> None:
        super().__init__()
        if levels < 1:
            raise ValueError(f"LaplacianPyramidFusion: levels must be >= 1, got {levels}.")
        self.levels = levels
        taps = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=torch.float64) / 16.0
        self.register_buffer("kernel", torch.outer(taps, taps)[None, None], persistent=False)

    def _blur(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        x = F.pad(x.reshape(n * c, 1, h, w), [2, 2, 2, 2], mode="reflect")
        return F.conv2d(x, self.kernel.to(x.dtype)).reshape(n, c, h, w)

    def _reduce(self, x: torch.Tensor) -> torch.Tensor:
        return self._blur(x)[..., ::2, ::2]

    def _expand(self, x: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
        up = torch.zeros(*x.shape[:2], *size, dtype=x.dtype, device=x.device)
        up[..., ::2, ::2] = x
        return 4.0 * self._blur(up)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2:]
        multiple = 2**self.levels
        pad_h, pad_w = (-h) % multiple, (-w) % multiple
        x = _levels(image).double() / 255.0
        if pad_h or pad_w:
            x = F.pad(x, [0, pad_w, 0, pad_h], mode="replicate")
        details, current = [], x
        for _ in range(self.levels):
            low = self._reduce(current)
            details.append(current - self._expand(low, current.shape[-2:]))
            current = low
        fused = current.amax(dim=1, keepdim=True)  # base: the maximum of the two low-pass images
        for detail in reversed(details):
            energy = F.avg_pool2d(detail**2, 3, stride=1, padding=1, count_include_pad=False)
            chosen = torch.where(energy[:, :1] >= energy[:, 1:], detail[:, :1], detail[:, 1:])
            fused = self._expand(fused, detail.shape[-2:]) + chosen
        return fused[..., :h, :w].clamp(0.0, 1.0).to(image.dtype)
