"""BT.601 full-range RGB <-> YCbCr, luma and grey, and chroma re-attachment: the package's one home for colour
maths.

The convention is OpenCV's ``COLOR_BGR2YCrCb`` / ``COLOR_YCrCb2BGR`` (full range, JPEG/JFIF style), the
one the reference metric values use (``shared/reference/fusion_metrics_reference.json``)::

    Y  = 0.299 R + 0.587 G + 0.114 B
    Cr = (R - Y) * 0.713 + delta            R = Y + 1.403 (Cr - delta)
    Cb = (B - Y) * 0.564 + delta            G = Y - 0.714 (Cr - delta) - 0.344 (Cb - delta)
                                            B = Y + 1.773 (Cb - delta)

``delta`` is the chroma offset: 0.5 for data in [0, 1] (the pipeline's scale), 128 for 0..255 data
(OpenCV's 8-bit value). Channels are ordered R, G, B and Y, Cb, Cr (not OpenCV's B, G, R / Y, Cr, Cb).
Every function takes numpy arrays or torch tensors, channel-first by default (``channel_dim=0``), and
returns the same kind of object. This is not studio range (16..235), which is skimage's ``rgb2ycbcr``.

Re-attaching colour to a fused luminance (the fused ``Y`` under a source's chroma) is :func:`with_chroma`
(stored CbCr) and :func:`recolour` (an RGB source): the inference postprocessing, the report's image grid
and the Deploy application's colour rendering all call them.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

from hkafusion_monai.utils.quantisation import as_tensor, to_uint8

__all__ = [
    "colour_rendering",
    "hot_metal",
    "is_grey_rgb",
    "recolour",
    "rgb_to_grey",
    "rgb_to_y",
    "rgb_to_ycbcr",
    "with_chroma",
    "ycbcr_to_rgb",
]

#: a numpy array or a torch tensor (MONAI's ``NdarrayOrTensor``; this layer imports nothing of MONAI)
NdarrayOrTensor = np.ndarray | torch.Tensor
#: one of the two, the same kind in and out
NdarrayTensor = TypeVar("NdarrayTensor", np.ndarray, torch.Tensor)

# float32 coefficients, exactly as OpenCV holds them
_KR, _KG, _KB = np.float32(0.299), np.float32(0.587), np.float32(0.114)
_CR, _CB = 0.713, 0.564
_R_CR, _G_CR, _G_CB, _B_CB = 1.403, -0.714, -0.344, 1.773


def _split3(x: NdarrayTensor, channel_dim: int) -> tuple[NdarrayTensor, NdarrayTensor, NdarrayTensor]:
    if x.shape[channel_dim] != 3:
        raise ValueError(f"expected 3 channels on dim {channel_dim}, got shape {tuple(x.shape)}.")
    if isinstance(x, torch.Tensor):
        r, g, b = x.unbind(channel_dim)
    else:
        r, g, b = np.moveaxis(x, channel_dim, 0)
    return r, g, b


def _stack3(
    parts: tuple[NdarrayTensor, NdarrayTensor, NdarrayTensor], channel_dim: int, like: NdarrayTensor
) -> NdarrayTensor:
    if isinstance(like, torch.Tensor):
        return torch.stack(parts, dim=channel_dim)
    return np.stack(parts, axis=channel_dim)


def _float_dtype(x: NdarrayOrTensor):
    """float64 stays float64; everything else (integers, float16/32) computes and returns float32."""
    if isinstance(x, torch.Tensor):
        return torch.float64 if x.dtype == torch.float64 else torch.float32
    return np.float64 if x.dtype == np.float64 else np.float32


def _as_float(x: NdarrayTensor, dtype) -> NdarrayTensor:
    return x.to(dtype) if isinstance(x, torch.Tensor) else x.astype(dtype, copy=False)


def rgb_to_y(rgb: NdarrayTensor, channel_dim: int = 0, rounded: bool = False) -> NdarrayTensor:
    """Luma ``Y = 0.299 R + 0.587 G + 0.114 B`` of an RGB image, computed as OpenCV does in float32.

    For float32 (or integer) input the arithmetic reproduces OpenCV 5.0's float path of
    ``cv2.cvtColor(bgr.astype(np.float32), cv2.COLOR_BGR2GRAY)`` bit for bit (a fused multiply-add chain,
    emulated in float64 and rounded to float32 at each step); checked on all 741 Harvard PET/SPECT images.
    ``rounded=True`` then applies round-half-to-even like ``np.round``: with 0..255 input this is the
    reference metrics' ``image_read_cv2(path, "GRAY")``. Exact .5 ties (about 1 pixel in 14,000 on the
    Harvard colour images) make the last float32 bit matter: OpenCV's ``BGR2YCrCb`` Y (another operation
    order) and possibly other OpenCV versions round about 1 pixel in 500,000 the other way.

    Args:
        rgb: RGB image, shape ``(3, H, W)`` for ``channel_dim=0`` (any number of spatial dims).
        channel_dim: the colour axis.
        rounded: round to the nearest integer (use with 0..255 data).

    Returns:
        ``Y`` without the colour axis, e.g. ``(H, W)``; float32 (float64 for float64 input).
    """
    r, g, b = _split3(rgb, channel_dim)
    out_dtype = _float_dtype(rgb)
    if out_dtype in (torch.float64, np.float64):
        y = 0.299 * r + 0.587 * g + 0.114 * b
    else:
        # OpenCV: fma(r, 0.299f, fma(b, 0.114f, g * 0.587f)); float64 holds each float32 product exactly
        is_t = isinstance(rgb, torch.Tensor)
        f64, f32 = (torch.float64, torch.float32) if is_t else (np.float64, np.float32)
        r, g, b = (_as_float(c, f32) for c in (r, g, b))
        t = g * torch.tensor(_KG) if isinstance(g, torch.Tensor) else g * _KG
        t = _as_float(_as_float(b, f64) * float(_KB) + _as_float(t, f64), f32)
        y = _as_float(_as_float(r, f64) * float(_KR) + _as_float(t, f64), f32)
    if rounded:
        y = torch.round(y) if isinstance(y, torch.Tensor) else np.round(y)
    return y


def rgb_to_ycbcr(rgb: NdarrayTensor, channel_dim: int = 0, delta: float = 0.5) -> NdarrayTensor:
    """RGB to full-range BT.601 YCbCr (OpenCV's coefficients).

    Args:
        rgb: RGB image, e.g. ``(3, H, W)`` in [0, 1] (use ``delta=128`` for 0..255 data).
        channel_dim: the colour axis, in and out.
        delta: chroma offset: 0.5 for [0, 1] data, 128 for 0..255 data.

    Returns:
        ``(Y, Cb, Cr)`` along ``channel_dim``, same shape; float32 (float64 for float64 input).
        ``Y`` is exactly :func:`rgb_to_y` (unrounded).
    """
    dtype = _float_dtype(rgb)
    y = rgb_to_y(rgb, channel_dim)
    r, _, b = (_as_float(c, dtype) for c in _split3(rgb, channel_dim))
    cb = (b - y) * _CB + delta
    cr = (r - y) * _CR + delta
    return _stack3((y, cb, cr), channel_dim, rgb)


def ycbcr_to_rgb(ycbcr: NdarrayTensor, channel_dim: int = 0, delta: float = 0.5) -> NdarrayTensor:
    """Full-range BT.601 YCbCr back to RGB (OpenCV's coefficients); the inverse of :func:`rgb_to_ycbcr`.

    The round trip is exact to within 0.04 % of full scale (OpenCV's coefficients are rounded to three
    decimals), i.e. well within one grey level. The result is not clipped: a fused ``Y`` with the
    source's CbCr can leave [0, 1], so clip before writing.

    Args:
        ycbcr: ``(Y, Cb, Cr)`` along ``channel_dim``, e.g. ``(3, H, W)``.
        channel_dim: the colour axis, in and out.
        delta: chroma offset used by the forward transform.

    Returns:
        ``(R, G, B)`` along ``channel_dim``; float32 (float64 for float64 input).
    """
    dtype = _float_dtype(ycbcr)
    y, cb, cr = (_as_float(c, dtype) for c in _split3(ycbcr, channel_dim))
    cb, cr = cb - delta, cr - delta
    r = y + _R_CR * cr
    g = y + _G_CR * cr + _G_CB * cb
    b = y + _B_CB * cb
    return _stack3((r, g, b), channel_dim, ycbcr)


def is_grey_rgb(rgb: NdarrayTensor, channel_dim: int = 0, atol: float = 0.0) -> bool:
    """Whether a 3-channel image is grey stored as RGB: its three channels are equal (within ``atol``).

    Args:
        rgb: e.g. ``(3, H, W)``.
        channel_dim: the colour axis.
        atol: largest absolute channel difference still counted as equal (0: exactly equal, right for
            losslessly stored 8/16-bit files; raise it for JPEG, whose chroma noise makes grey unequal).
    """
    # float64 first: unsigned differences would wrap around
    f64 = torch.float64 if isinstance(rgb, torch.Tensor) else np.float64
    r, g, b = (_as_float(c, f64) for c in _split3(rgb, channel_dim))
    if (r.numel() if isinstance(r, torch.Tensor) else r.size) == 0:
        return True
    diff = max(float(abs(r - g).max()), float(abs(r - b).max()))
    return diff <= atol


def hot_metal(x: np.ndarray) -> np.ndarray:
    """The "hot" pseudo-colour scale of nuclear medicine displays: black, red, yellow, white.

    ``x`` in [0, 1] (any shape) -> float RGB in [0, 1] along a new last axis: red rises over the first third,
    green over the second, blue over the last.
    """
    x = np.clip(np.asarray(x, dtype=np.float32), 0.0, 1.0)
    return np.stack([np.clip(3 * x, 0, 1), np.clip(3 * x - 1, 0, 1), np.clip(3 * x - 2, 0, 1)], axis=-1)


def colour_rendering(fused: np.ndarray, other: np.ndarray) -> np.ndarray:
    """The colour rendering of a PET/SPECT fusion, as the Harvard pairs show it: the fused luminance under
    the chroma of the functional image in :func:`hot_metal` pseudo-colour (the 2-D path keeps the source's own
    chroma the same way).

    Args:
        fused: fused luminance in [0, 1], any shape ``S``.
        other: the PET/SPECT intensities in [0, 1] on the same grid, shape ``S``.

    Returns:
        uint8 RGB, shape ``(*S, 3)``.
    """
    return to_uint8(recolour(np.asarray(fused, dtype=np.float32), hot_metal(other), channel_dim=-1))


def with_chroma(y: NdarrayTensor, cbcr: NdarrayOrTensor, channel_dim: int = 0, clip: bool = True) -> NdarrayTensor:
    """A luminance under stored chroma: ``Y`` + ``(Cb, Cr)`` -> RGB (:func:`ycbcr_to_rgb`).

    Args:
        y: the (fused) luminance with a colour axis of size 1, e.g. ``(1, H, W)``, in [0, 1].
        cbcr: the chroma ``(Cb, Cr)`` of the same spatial size, e.g. ``(2, H, W)`` (:func:`rgb_to_ycbcr`).
        channel_dim: the colour axis of both, and of the result.
        clip: clip the RGB result to [0, 1] (a new ``Y`` under old chroma can leave the gamut).

    Returns:
        RGB along ``channel_dim``, float32 (float64 for float64 input), the kind of ``y``.
    """
    if isinstance(y, torch.Tensor):
        ycbcr_t = torch.cat((y.float(), torch.as_tensor(cbcr, device=y.device).float()), dim=channel_dim)
        rgb_t = ycbcr_to_rgb(ycbcr_t, channel_dim)
        return rgb_t.clamp(0.0, 1.0) if clip else rgb_t
    ycbcr = np.concatenate((np.asarray(y, dtype=np.float32), np.asarray(cbcr, dtype=np.float32)), axis=channel_dim)
    rgb = ycbcr_to_rgb(ycbcr, channel_dim)
    return np.clip(rgb, 0.0, 1.0) if clip else rgb


def recolour(y: NdarrayOrTensor, rgb: NdarrayTensor, channel_dim: int = 0) -> NdarrayTensor:
    """A luminance under the chroma of an RGB image: the colour re-attached to a fused image.

    Args:
        y: the luminance in [0, 1] without a colour axis, e.g. ``(H, W)``.
        rgb: the colour source in [0, 1] with its colour axis on ``channel_dim``, e.g. ``(3, H, W)``.
        channel_dim: the colour axis of ``rgb`` and of the result.

    Returns:
        RGB clipped to [0, 1] (:func:`with_chroma`), float32, the kind of ``rgb``.
    """
    ycbcr = rgb_to_ycbcr(rgb, channel_dim=channel_dim)
    if isinstance(ycbcr, torch.Tensor):
        return with_chroma(torch.as_tensor(y).unsqueeze(channel_dim), ycbcr.narrow(channel_dim, 1, 2), channel_dim)
    return with_chroma(np.expand_dims(y, channel_dim), np.take(ycbcr, [1, 2], axis=channel_dim), channel_dim)


def rgb_to_grey(rgb: torch.Tensor | np.ndarray, channel_dim: int = -3) -> torch.Tensor:
    """Grey value of an RGB image on the 0-255 scale, the way the reference read PET/SPECT images.

    Full-range ITU-R BT.601 luma ``Y = 0.299 R + 0.587 G + 0.114 B``, rounded half-to-even: CDDFuse
    ``image_read_cv2(path, "GRAY")`` = ``np.round(cv2.cvtColor(BGR.astype(float32), COLOR_BGR2GRAY))``, not
    the studio-range (16..235) Y of ``skimage.color.rgb2ycbcr``. The arithmetic is :func:`rgb_to_y` on float32
    input: it reproduces OpenCV's float32 evaluation bit for bit, which decides how values such as 200.50002
    and 223.49998 round. Equal-channel RGB images map to themselves.

    Args:
        rgb: RGB image(s) on the 0-255 scale with the colour channels (R, G, B) on ``channel_dim``.
        channel_dim: the colour axis, by default -3 (channel-first: (3, H, W) or (B, 3, H, W)).

    Returns:
        float32 tensor of integer grey values 0..255, ``channel_dim`` removed.

    Raises:
        ValueError: when ``channel_dim`` does not have size 3.
    """
    rgb = as_tensor(rgb)
    if rgb.ndim == 0 or rgb.shape[channel_dim] != 3:
        raise ValueError(f"rgb_to_grey: expected 3 colour channels on dim {channel_dim}, got shape {tuple(rgb.shape)}.")
    return rgb_to_y(rgb.to(torch.float32), channel_dim=channel_dim, rounded=True)
