"""The eight fusion metrics of the HKAFusion paper (section IV-A) as pure, batched torch functions.

Every metric takes the fused image ``fused`` of shape (B, 1, H, W) and, where it needs them, the two
sources ``sources`` of shape (B, 2, H, W) (channel 0 = I_A = MRI, channel 1 = I_B = CT/PET/SPECT), all
on the **0-255 grey scale**, and returns one value per sample, shape (B,), in float64. The maths runs in
float64 on the inputs' device (CPU or GPU); float32 inputs are accepted.

The conventions are those of the public reference values in ``shared/reference/
fusion_metrics_reference.json`` (CDDFuse ``utils/Evaluator.py`` for MI, SF, VIF, AG, Qabf, CC and SSIM;
Z. Liu's ``metricChen.m`` for Qcv). ``docs/metrics.md`` states each formula, its original reference and
how it differs from the MATLAB toolboxes.

Network outputs in [0, 1] are scored after :func:`~hkafusion_monai.utils.quantisation.quantise`
(``round(255 * clip(f, 0, 1))``), because the reference scored 8-bit images and MI counts each distinct grey
value as its own level. RGB (PET/SPECT) images are scored on their grey value from
:func:`~hkafusion_monai.utils.colour.rgb_to_grey`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monai.transforms import SobelGradients

from hkafusion_monai.utils.quantisation import as_tensor

__all__ = [
    "METRIC_NAMES",
    "METRIC_FUNCTIONS",
    "check_fusion_inputs",
    "fusion_metrics_batch",
    "mutual_information",
    "spatial_frequency",
    "visual_information_fidelity",
    "average_gradient",
    "qabf",
    "qcv",
    "correlation_coefficient",
    "fusion_ssim",
    "compute_fusion_metrics",
]

#: the paper's eight metrics, in the paper's order; every higher-is-better except ``Qcv``.
METRIC_NAMES: tuple[str, ...] = ("MI", "SF", "VIF", "AG", "Qabf", "Qcv", "CC", "SSIM")

#: smallest H and W the four-scale VIF (17, 9, 5, 3-tap valid windows with dyadic down-sampling) accepts.
MIN_SIZE = 41

# The Sobel kernel has one home, MONAI's SobelGradients; here unnormalised ([-1, 0, 1] x [1, 2, 1]) as in
# the reference codes (scipy convolve2d / MATLAB filter2 with zero padding).
_SOBEL = SobelGradients(kernel_size=3, normalize_kernels=False, dtype=torch.float64)


# ---------------------------------------------------------------------------------------------------------
# input handling
# ---------------------------------------------------------------------------------------------------------
def check_fusion_inputs(fused: torch.Tensor, sources: torch.Tensor | None = None) -> None:
    """Raise a ``ValueError`` unless ``fused`` is (B, 1, H, W), ``sources`` (B, 2, H, W) and both finite.

    Args:
        fused: the fused image batch.
        sources: the source batch (channel 0 = I_A, channel 1 = I_B); skipped when ``None``.
    """
    if not isinstance(fused, torch.Tensor) or fused.ndim != 4 or fused.shape[1] != 1:
        shape = tuple(fused.shape) if isinstance(fused, torch.Tensor) else type(fused).__name__
        raise ValueError(f"fused must be a (B, 1, H, W) tensor, got {shape}.")
    if not bool(torch.isfinite(fused).all()):
        raise ValueError("fused holds NaN or inf values.")
    if sources is None:
        return
    if not isinstance(sources, torch.Tensor) or sources.ndim != 4 or sources.shape[1] != 2:
        shape = tuple(sources.shape) if isinstance(sources, torch.Tensor) else type(sources).__name__
        raise ValueError(f"sources must be a (B, 2, H, W) tensor (channel 0 = I_A, channel 1 = I_B), got {shape}.")
    if fused.shape[0] != sources.shape[0] or fused.shape[2:] != sources.shape[2:]:
        raise ValueError(
            f"fused {tuple(fused.shape)} and sources {tuple(sources.shape)} differ in batch size or spatial shape."
        )
    if not bool(torch.isfinite(sources).all()):
        raise ValueError("sources hold NaN or inf values.")


def _check_grey_levels(name: str, x: torch.Tensor) -> None:
    """Raise a ``ValueError`` unless ``x`` holds integer grey values 0..255."""
    if bool(((x != torch.round(x)) | (x < 0) | (x > 255)).any()):
        raise ValueError(
            f"{name} must hold integer grey values 0..255; quantise a [0, 1] image with "
            "hkafusion_monai.utils.quantise first."
        )


def _checked(
    needs_sources: bool = True, grey_levels: bool = False
) -> Callable[[Callable[..., torch.Tensor]], Callable[..., torch.Tensor]]:
    """Decorate a metric so that it validates ``(fused, sources)`` first (and their grey levels if asked).

    The unchecked metric stays reachable as ``.__wrapped__`` for callers that validated once already.
    """

    def decorate(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        @functools.wraps(fn)
        def wrapper(fused: torch.Tensor, sources: torch.Tensor | None = None, *args, **kwargs) -> torch.Tensor:
            if needs_sources and sources is None:
                raise ValueError(f"{fn.__name__} needs the (B, 2, H, W) sources.")
            check_fusion_inputs(fused, sources)
            if grey_levels:
                _check_grey_levels(f"{fn.__name__}: fused", fused)
                if sources is not None:
                    _check_grey_levels(f"{fn.__name__}: sources", sources)
            return fn(fused, sources, *args, **kwargs)

        return wrapper

    return decorate


def _require_size(name: str, x: torch.Tensor, size: int) -> None:
    if min(x.shape[-2:]) < size:
        raise ValueError(f"{name} needs H, W >= {size}, got {tuple(x.shape[-2:])}.")


def _correlate1d(x: torch.Tensor, taps: Sequence[float], dim: int, pad: bool = False, stride: int = 1) -> torch.Tensor:
    """Correlate ``x`` along ``dim`` with the 1-D ``taps`` ('valid'; 'same' with zero padding when ``pad``).

    A sum of shifted slices in the order of the taps: in float64 on the CPU much faster than a depthwise
    convolution. ``stride`` keeps every ``stride``-th output (filter, then down-sample).
    """
    n = len(taps)
    if pad:
        p = (n - 1) // 2
        x = F.pad(x, [0, 0] * (x.ndim - 1 - dim % x.ndim) + [p, n - 1 - p])
    index = [slice(None)] * x.ndim
    length = x.shape[dim] - n + 1
    out: torch.Tensor | None = None
    for k, w in enumerate(taps):
        if w == 0:
            continue
        index[dim] = slice(k, k + length, stride)
        term = x[tuple(index)]
        out = term * w if out is None else out.add_(term, alpha=w)
    if out is None:
        raise ValueError("_correlate1d: all taps are zero.")
    return out


def _sobel(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sobel responses (gx along W, gy along H) of (B, C, H, W), zero padding: MATLAB ``filter2(k, x, 'same')``.

    The taps are MONAI's :class:`~monai.transforms.SobelGradients` kernel, unnormalised.
    """
    diff, smooth = _SOBEL.kernel_diff.tolist(), _SOBEL.kernel_smooth.tolist()
    gx = _correlate1d(_correlate1d(x, smooth, -2, pad=True), diff, -1, pad=True)
    gy = _correlate1d(_correlate1d(x, diff, -2, pad=True), smooth, -1, pad=True)
    return gx, gy


def _safe_div(num: torch.Tensor, den: torch.Tensor, fill: float) -> torch.Tensor:
    """``num / den`` where ``den != 0``, else ``fill``."""
    ok = den != 0
    return torch.where(ok, num / torch.where(ok, den, 1.0), fill)


# ---------------------------------------------------------------------------------------------------------
# the eight metrics
# ---------------------------------------------------------------------------------------------------------
@_checked(grey_levels=True)
def mutual_information(fused: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
    """MI(F, A) + MI(F, B) in **nats**, each over the joint histogram of the 256 integer grey levels.

    ``MI(F, X) = sum_ij p_ij ln(p_ij / (p_i p_j)) = H(F) + H(X) - H(F, X)``, as
    ``sklearn.metrics.mutual_info_score`` on the integer images (CDDFuse): every grey value is its own
    level, no min-max normalisation, natural log. Divide by ln 2 for bits. A constant image gives 0.

    Args:
        fused: (B, 1, H, W) integer grey values 0..255.
        sources: (B, 2, H, W) integer grey values 0..255.

    Returns:
        (B,) float64, >= 0.

    Raises:
        ValueError: when an image is not integer-valued in 0..255 (see
            :func:`~hkafusion_monai.utils.quantisation.quantise`).
    """
    bsz, n = fused.shape[0], fused.shape[2] * fused.shape[3]
    pair = torch.arange(bsz * 2, device=fused.device).view(bsz, 2, 1, 1) * 65536
    idx = fused.long() * 256 + sources.long() + pair
    joint = torch.bincount(idx.flatten(), minlength=bsz * 2 * 65536).view(bsz, 2, 256, 256).to(torch.float64) / n

    def entropy(p: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
        return -torch.xlogy(p, p).sum(dim=dims)

    mi = entropy(joint.sum(3), (2,)) + entropy(joint.sum(2), (2,)) - entropy(joint, (2, 3))
    return mi.clamp_min(0.0).sum(1)


@_checked(needs_sources=False)
def spatial_frequency(fused: torch.Tensor, sources: torch.Tensor | None = None) -> torch.Tensor:
    """SF = sqrt(mean((F[:, 1:] - F[:, :-1])^2) + mean((F[1:, :] - F[:-1, :])^2)) (Eskicioglu & Fisher, 1995).

    Args:
        fused: (B, 1, H, W) on the 0-255 scale, H, W >= 2.
        sources: unused (SF is a no-reference metric); validated when given.

    Returns:
        (B,) float64; 0 for a constant image.
    """
    _require_size("spatial_frequency", fused, 2)
    f = fused.to(torch.float64)
    row = (f[..., :, 1:] - f[..., :, :-1]).square().mean(dim=(1, 2, 3))
    col = (f[..., 1:, :] - f[..., :-1, :]).square().mean(dim=(1, 2, 3))
    return torch.sqrt(row + col)


@_checked(needs_sources=False)
def average_gradient(fused: torch.Tensor, sources: torch.Tensor | None = None) -> torch.Tensor:
    """AG = mean over **all** H x W pixels of sqrt((Gx^2 + Gy^2) / 2).

    Gx, Gy are ``np.gradient``-style differences: central ``(x[i+1] - x[i-1]) / 2`` inside, one-sided at
    the borders (CDDFuse). The MATLAB toolboxes (Tang, VIFB) use forward differences and divide the sum
    by (H-1)(W-1) instead.

    Args:
        fused: (B, 1, H, W) on the 0-255 scale, H, W >= 2.
        sources: unused (AG is a no-reference metric); validated when given.

    Returns:
        (B,) float64; 0 for a constant image.
    """
    _require_size("average_gradient", fused, 2)
    gy, gx = torch.gradient(fused.to(torch.float64), dim=(2, 3))
    return torch.sqrt((gx.square() + gy.square()) / 2).mean(dim=(1, 2, 3))


def _gaussian_taps(n: int) -> list[float]:
    """1-D factor of the normalised n x n MATLAB ``fspecial('gaussian', n, n / 5)`` window (it is separable)."""
    sd = n / 5.0
    g = [math.exp(-((k - (n - 1) / 2.0) ** 2) / (2.0 * sd * sd)) for k in range(n)]
    total = sum(g)
    return [v / total for v in g]


def _valid_filter(x: torch.Tensor, taps: Sequence[float], stride: int = 1) -> torch.Tensor:
    """'Valid' correlation of (B, C, H, W) with the window taps (x) taps, keeping every ``stride``-th output."""
    return _correlate1d(_correlate1d(x, taps, -1, stride=stride), taps, -2, stride=stride)


@_checked()
def visual_information_fidelity(fused: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
    """VIF(A, F) + VIF(B, F): multi-scale pixel-domain VIF (VIFP, Sheikh & Bovik 2006), summed over the sources.

    As LIVE ``vifp_mscale.m`` (and CDDFuse): scales s = 1..4 with Gaussian windows of N = 2^(5-s) + 1
    taps, sigma = N / 5, 'valid' filtering, dyadic down-sampling (after filtering) from scale 2 on,
    sigma_n^2 = 2, eps = 1e-10; per source
    ``VIF = sum_s sum log10(1 + g^2 s1^2 / (sv^2 + sigma_n^2)) / sum_s sum log10(1 + s1^2 / sigma_n^2)``
    with the LIVE clamps on g, sv^2 and s1^2. A constant source makes this 0/0; like the reference, that
    source then scores 1.

    Args:
        fused: (B, 1, H, W) on the 0-255 scale, H, W >= 41.
        sources: (B, 2, H, W) on the 0-255 scale.

    Returns:
        (B,) float64.
    """
    _require_size("visual_information_fidelity", fused, MIN_SIZE)
    ref, dist = sources.to(torch.float64), fused.to(torch.float64)
    sigma_nsq, eps = 2.0, 1e-10
    num = ref.new_zeros(ref.shape[:2])
    den = ref.new_zeros(ref.shape[:2])
    for scale in range(1, 5):
        taps = _gaussian_taps(2 ** (5 - scale) + 1)
        if scale > 1:
            ref, dist = _valid_filter(torch.cat([ref, dist], 1), taps, stride=2).split([2, 1], dim=1)
        stats = _valid_filter(torch.cat([ref, dist, ref * ref, dist * dist, ref * dist], 1), taps)
        mu1, mu2, e11, e22, e12 = stats.split([2, 1, 2, 1, 2], dim=1)
        s1 = (e11 - mu1 * mu1).clamp_min_(0.0)
        s2 = (e22 - mu2 * mu2).clamp_min_(0.0)
        s12 = e12 - mu1 * mu2
        gain = s12 / (s1 + eps)
        sv = (s2 - gain * s12).clamp_min_(eps)
        # LIVE's clamps: g = 0 where s1 < eps, s2 < eps or g < 0 (those terms vanish); s1 = 0 where s1 < eps
        keep = (s1 >= eps) & (s2 >= eps) & (gain > 0)
        info = torch.log10(1 + gain * gain * s1 / (sv + sigma_nsq))
        num += torch.where(keep, info, 0.0).sum(dim=(2, 3))
        den += torch.log10(1 + s1.masked_fill_(s1 < eps, 0.0) / sigma_nsq).sum(dim=(2, 3))
    return _safe_div(num, den, 1.0).sum(1)


@_checked()
def qabf(fused: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
    """Q^{AB/F}, the gradient-based fusion performance of Xydeas & Petrovic (2000).

    Per image the Sobel strength g = |S| and orientation a = arctan(Sy / Sx) (pi/2 where Sx = 0), zero
    padding. Per source X: G^{XF} = min(gX, gF) / max(gX, gF), but G^{XF} = gF where gX == gF (a quirk of
    the MATLAB original that CDDFuse keeps, and so this); A^{XF} = 1 - |aX - aF| / (pi/2);
    Q^{XF} = Tg / (1 + e^{kg (G - Dg)}) * Ta / (1 + e^{ka (A - Da)}) with Tg = 0.9994, kg = -15, Dg = 0.5,
    Ta = 0.9879, ka = -22, Da = 0.8; ``Qabf = sum(Q^{AF} gA + Q^{BF} gB) / sum(gA + gB)`` (L = 1).
    Convention: when neither source has an edge (sum(gA + gB) = 0), Qabf = 0.

    Args:
        fused: (B, 1, H, W) on the 0-255 scale.
        sources: (B, 2, H, W) on the 0-255 scale.

    Returns:
        (B,) float64 in [0, 1).
    """
    gx, gy = _sobel(torch.cat([sources, fused], 1).to(torch.float64))  # channels A, B, F
    strength = torch.sqrt(gx * gx + gy * gy)
    # The reference convolves (flips) the kernels: its angle is arctan(gy / -gx), pi/2 where gx = 0. Using
    # the negated angle throughout leaves every |aX - aF| unchanged.
    angle = torch.where(gx != 0, torch.atan(gy / gx), -math.pi / 2)
    g_src, g_f = strength[:, :2], strength[:, 2:]
    ratio = torch.where(g_src == g_f, g_f, torch.minimum(g_src, g_f) / torch.maximum(g_src, g_f))
    orient = 1 - (angle[:, :2] - angle[:, 2:]).abs() / (math.pi / 2)
    q = (0.9994 * 0.9879) * torch.sigmoid(15 * (ratio - 0.5)) * torch.sigmoid(22 * (orient - 0.8))
    return _safe_div((q * g_src).sum(dim=(1, 2, 3)), g_src.sum(dim=(1, 2, 3)), 0.0)


def _normalize1(x: torch.Tensor) -> torch.Tensor:
    """Liu's ``normalize1.m`` per image of (B, C, H, W): min-max to 0..255, MATLAB ``round`` (ties away from 0).

    MATLAB leaves an all-zero image as is and turns any other constant image into NaN (0/0); here every
    constant image becomes all zeros.
    """
    lo = x.amin(dim=(2, 3), keepdim=True)
    rng = x.amax(dim=(2, 3), keepdim=True) - lo
    v = (x - lo) / torch.where(rng > 0, rng, 1.0) * 255.0
    r = torch.floor(v)
    return r.add_(v - r >= 0.5)  # v >= 0; a constant image gives v = 0


def _block_reduce(x: torch.Tensor, size: int, mean: bool) -> torch.Tensor:
    """Sum or mean over non-overlapping size x size blocks of (B, C, H, W); partial blocks zero-padded (``blkproc``)."""
    h, w = x.shape[2:]
    x = F.pad(x, (0, -w % size, 0, -h % size))
    b, c, hp, wp = x.shape
    out = x.view(b, c, hp // size, size, wp // size, size).sum(dim=(3, 5))
    return out / (size * size) if mean else out


def _csf_mannos_sakrison(h: int, w: int, device: torch.device) -> torch.Tensor:
    """Mannos-Sakrison CSF on ``freqspace([h, w], 'meshgrid')`` scaled by (w / 8, h / 8), unshifted (DC first)."""

    def axis(n: int) -> torch.Tensor:
        f = (torch.arange(n, dtype=torch.float64, device=device) - n // 2) * 2 / n  # freqspace
        return n / 8 * f

    u = axis(w).view(1, w)
    v = axis(h).view(h, 1)
    r = torch.sqrt(u * u + v * v)
    theta = 2.6 * (0.0192 + 0.144 * r) * torch.exp(-((0.144 * r) ** 1.1))
    shifted: torch.Tensor = torch.fft.ifftshift(theta)
    return shifted


@_checked()
def qcv(fused: torch.Tensor, sources: torch.Tensor, window: int = 16) -> torch.Tensor:
    """Q_CV of Chen & Varshney (2007), as Z. Liu's ``metricChen.m``: **lower is better**.

    Each image is min-max normalised to 0..255 and rounded (``normalize1``). Region saliency
    lambda_X = sum(g_X^5) per ``window`` x ``window`` block (Sobel strength g, zero padding). The
    differences X - F are filtered in the frequency domain with the Mannos-Sakrison CSF
    2.6 (0.0192 + 0.144 r) exp(-(0.144 r)^1.1) (r from ``freqspace`` scaled by n / 8), and
    D_X = mean(filtered^2) per block; ``Qcv = sum(lamA DA + lamB DB) / sum(lamA + lamB)``. Partial border
    blocks are zero-padded like MATLAB ``blkproc``. Conventions: a constant image normalises to zeros;
    when both sources are constant (no saliency anywhere) all blocks weigh the same, the limit of equal
    saliencies: ``Qcv = mean(DA + DB) / 2``.

    Args:
        fused: (B, 1, H, W) on the 0-255 scale.
        sources: (B, 2, H, W) on the 0-255 scale.
        window: block side, 16 in the reference.

    Returns:
        (B,) float64, >= 0, unbounded (about 1e2..1e4 on the Harvard pairs).
    """
    imgs = _normalize1(torch.cat([sources, fused], 1).to(torch.float64))
    src, f = imgs.split([2, 1], dim=1)
    gx, gy = _sobel(src)
    g2 = gx * gx + gy * gy
    lam = _block_reduce(g2 * g2 * torch.sqrt(g2), window, mean=False)  # sum of g^5
    h, w = imgs.shape[2:]
    csf = _csf_mannos_sakrison(h, w, imgs.device)[:, : w // 2 + 1]
    # the CSF is real and even, so the filtered difference is real (MATLAB's imaginary part is ~1e-13)
    filtered = torch.fft.irfft2(torch.fft.rfft2(src - f) * csf, s=(h, w))
    dist = _block_reduce(filtered.square(), window, mean=True)
    den = lam.sum(dim=(1, 2, 3))
    weighted = _safe_div((lam * dist).sum(dim=(1, 2, 3)), den, 0.0)
    equal = dist.mean(dim=(2, 3)).sum(1) / 2  # no saliency anywhere: every block weighs the same
    return torch.where(den > 0, weighted, equal)


@_checked()
def correlation_coefficient(fused: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
    """CC = (r(A, F) + r(B, F)) / 2, Pearson correlation over the whole image, **averaged** over the sources.

    Convention: r = 0 when either image is constant (its variance is 0).

    Args:
        fused: (B, 1, H, W).
        sources: (B, 2, H, W).

    Returns:
        (B,) float64 in [-1, 1].
    """
    s, f = sources.to(torch.float64), fused.to(torch.float64)
    s = s - s.mean(dim=(2, 3), keepdim=True)
    f = f - f.mean(dim=(2, 3), keepdim=True)
    cov = (s * f).sum(dim=(2, 3))
    var = s.square().sum(dim=(2, 3)) * f.square().sum(dim=(2, 3))
    return _safe_div(cov, torch.sqrt(var), 0.0).mean(1)


def _box_mean(x: torch.Tensor, size: int) -> torch.Tensor:
    """Mean over every 'valid' size x size window of (B, C, H, W), by running sums (exact for integer images)."""
    c = F.pad(x.cumsum(-1), (1, 0))
    c = c[..., size:] - c[..., :-size]
    c = F.pad(c.cumsum(-2), (0, 0, 1, 0))
    return (c[..., size:, :] - c[..., :-size, :]) / (size * size)


@_checked()
def fusion_ssim(fused: torch.Tensor, sources: torch.Tensor, data_range: float = 2.0, win_size: int = 7) -> torch.Tensor:
    """SSIM(F, A) + SSIM(F, B) (Wang et al., 2004) with ``skimage.metrics.structural_similarity`` defaults.

    7 x 7 uniform window, sample covariance (N / (N - 1)), K1 = 0.01, K2 = 0.03, the mean of the SSIM map
    over the 'valid' windows (skimage crops 3 pixels at each border). ``data_range = 2`` is what CDDFuse's
    pinned scikit-image 0.19.2 used for float32 images on the 0-255 scale (C1 = (0.01 * 2)^2,
    C2 = (0.03 * 2)^2): the reference's convention, not a choice. Equal constant images score 1 each.

    Args:
        fused: (B, 1, H, W) on the 0-255 scale, H, W >= ``win_size``.
        sources: (B, 2, H, W) on the 0-255 scale.
        data_range: R in C1 = (K1 R)^2, C2 = (K2 R)^2.
        win_size: side of the uniform window.

    Returns:
        (B,) float64 in [-2, 2].
    """
    _require_size("fusion_ssim", fused, win_size)
    s, f = sources.to(torch.float64), fused.to(torch.float64)
    stats = _box_mean(torch.cat([s, f, s * s, f * f, s * f], 1), win_size)
    ux, uy, uxx, uyy, uxy = stats.split([2, 1, 2, 1, 2], dim=1)
    cov_norm = win_size * win_size / (win_size * win_size - 1)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    uxuy = ux * uy
    ux2, uy2 = ux * ux, uy * uy
    num = (2 * uxuy + c1) * (2 * cov_norm * (uxy - uxuy) + c2)
    den = (ux2 + uy2 + c1) * (cov_norm * ((uxx - ux2) + (uyy - uy2)) + c2)
    ssim: torch.Tensor = (num / den).mean(dim=(2, 3)).sum(1)
    return ssim


#: name -> ``fn(fused, sources) -> (B,)`` on the 0-255 scale, in :data:`METRIC_NAMES` order.
METRIC_FUNCTIONS: Mapping[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "MI": mutual_information,
    "SF": spatial_frequency,
    "VIF": visual_information_fidelity,
    "AG": average_gradient,
    "Qabf": qabf,
    "Qcv": qcv,
    "CC": correlation_coefficient,
    "SSIM": fusion_ssim,
}


def fusion_metrics_batch(fused: torch.Tensor, sources: torch.Tensor) -> dict[str, torch.Tensor]:
    """All eight metrics of a batch of integer grey-level images, validated once.

    Args:
        fused: (B, 1, H, W) integer grey values 0..255.
        sources: (B, 2, H, W) integer grey values 0..255.

    Returns:
        :data:`METRIC_NAMES` -> (B,) float64 tensors.
    """
    check_fusion_inputs(fused, sources)
    _check_grey_levels("fused", fused)
    _check_grey_levels("sources", sources)
    fused, sources = fused.to(torch.float64), sources.to(torch.float64)
    return {name: getattr(fn, "__wrapped__", fn)(fused, sources) for name, fn in METRIC_FUNCTIONS.items()}


def compute_fusion_metrics(
    fused: torch.Tensor | np.ndarray, a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray
) -> dict[str, float]:
    """The eight paper metrics of one fused image against its two sources.

    Args:
        fused: 2-D (H, W) array or tensor of **integer** grey values 0..255 (e.g. uint8, or a network
            output after :func:`~hkafusion_monai.utils.quantisation.quantise`), H, W >= 41.
        a: 2-D source I_A (MRI), same shape and scale.
        b: 2-D source I_B (CT, or the :func:`~hkafusion_monai.utils.colour.rgb_to_grey` of PET/SPECT), same shape
            and scale.

    Returns:
        ``{"MI", "SF", "VIF", "AG", "Qabf", "Qcv", "CC", "SSIM"}`` -> float, with the reference conventions.

    Raises:
        ValueError: for non-2-D or mismatched shapes, images smaller than 41 x 41, non-finite values or
            values that are not integers in 0..255: a float image in [0, 1] is not guessed at, it must go
            through :func:`~hkafusion_monai.utils.quantisation.quantise` first.
    """
    ims = [as_tensor(x) for x in (fused, a, b)]
    for name, x in zip(("fused", "a", "b"), ims, strict=True):
        if x.ndim != 2:
            raise ValueError(f"compute_fusion_metrics: {name} must be a 2-D (H, W) image, got shape {tuple(x.shape)}.")
    if not ims[0].shape == ims[1].shape == ims[2].shape:
        raise ValueError(f"compute_fusion_metrics: shapes differ: {[tuple(x.shape) for x in ims]}.")
    ims = [x.to(torch.float64) for x in ims]
    values = fusion_metrics_batch(ims[0][None, None], torch.stack(ims[1:])[None])
    return {name: float(v[0]) for name, v in values.items()}
