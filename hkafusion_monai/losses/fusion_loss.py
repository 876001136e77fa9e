"""The HKAFusion training loss, paper section III-D, eq. 7-12.

Reading of the paper's "L_ssim": eq. 7 and the dynamic weight mu (section IV-A) use L_ssim as the SSIM
*loss* 1 - SSIM, eq. 10-11 (``... + 1 - L_ssim``) use it as plain SSIM; read that way every term is a loss
to minimise, and mu = sum(1 - SSIM(I_f, I_B)) / sum(1 - SSIM(I_f, I_A)) weighs the worse-matched source
more. See docs/metrics.md.
"""

from __future__ import annotations

import math

import torch
from monai.metrics.regression import KernelType
from monai.networks.layers import gaussian_1d, separable_filtering
from monai.transforms import SobelGradients
from monai.utils import LossReduction
from torch.nn.modules.loss import _Loss

__all__ = ["FusionLoss", "GRADIENT_TARGETS", "CONTRAST_REGIONS", "TERM_KEYS", "PER_SAMPLE_KEYS"]

#: the scalar entries of :meth:`FusionLoss.forward_terms`'s result, each worth logging ("loss" is the total).
TERM_KEYS: tuple[str, ...] = (
    "loss",
    "l_s",
    "l_ssim_a",
    "l_ssim_b",
    "l_grad",
    "l_inten",
    "l_contrast",
    "l_rec_a",
    "l_rec_b",
)

#: what the gradient term compares the fused image's Sobel gradient with (``FusionLoss(gradient_target=...)``)
GRADIENT_TARGETS: tuple[str, ...] = ("magnitude", "orientation", "stronger", "max")
#: where the local-contrast floor acts (``contrast_region``)
CONTRAST_REGIONS: tuple[str, ...] = ("hot", "hot_over_darker_mri")

#: the per-sample (B,) detached structural losses 1 - SSIM(I_f, I_A), 1 - SSIM(I_f, I_B) that the dynamic-mu
#: handler (:class:`hkafusion_monai.handlers.DynamicMuHandler`) sums over an epoch.
PER_SAMPLE_KEYS: tuple[str, str] = ("l_ssim_a_per_sample", "l_ssim_b_per_sample")


class FusionLoss(_Loss):
    r"""HKAFusion composite loss (Zeng et al., section III-D, eq. 7-12).

    With I_A = MRI = ``image[:, 0]``, I_B = CT/PET/SPECT = ``image[:, 1]``, I_f the fused image and
    I_A^pre, I_B^pre the reconstructions:

    - eq. 7, structural: :math:`L_s = (1 - SSIM(I_f, I_A)) + \mu (1 - SSIM(I_f, I_B))`
      (terms ``l_ssim_a``, ``l_ssim_b``, ``l_s``);
    - eq. 8, intensity: :math:`L_{inten} = \| I_f - \max(I_A, I_B) \|_1` (``l_inten``);
    - eq. 9, gradient: :math:`L_{grad} = \| |\nabla I_f| - \max(|\nabla I_A|, |\nabla I_B|) \|_1` (``l_grad``),
      with :math:`|\nabla I| = |G_x| + |G_y|` from the 3x3 Sobel kernel of MONAI's
      :class:`~monai.transforms.SobelGradients` (unnormalised, ``sobel_padding`` at the border), the L1
      gradient magnitude of the U2Fusion/SwinFusion/CDDFuse ``Sobelxy`` (differentiable everywhere but at 0,
      where a Euclidean norm's gradient would be NaN);
    - eq. 10-11, reconstruction: :math:`L_r^k = \| I_k - I_k^{pre} \|_1 + 1 - SSIM(I_k, I_k^{pre})`, k = A, B
      (``l_rec_a``, ``l_rec_b``);
    - eq. 12, total: :math:`\lambda_1 L_s + \lambda_2 L_{grad} + \lambda_3 L_{inten} + L_r^A + L_r^B` (``loss``).

    With the defaults the loss is the paper's. Two options change it (``configs/paper.json`` keeps the paper's):

    - ``gradient_target`` (``l_grad``): eq. 9 compares gradient *magnitudes*, blind to direction, while Q^AB/F
      scores the direction (its orientation :math:`\arctan(G_y / G_x)`, the same for a vector and its
      negation). With :math:`g_s` the Sobel vector :math:`(G_x, G_y)` of the source whose magnitude is larger
      at that pixel:

      - ``"magnitude"``: eq. 9 as above;
      - ``"orientation"``: :math:`\min(\|g_f - g_s\|_1, \|g_f + g_s\|_1)` per pixel: the stronger source's
        edge, its orientation and strength, in either polarity. As Q^AB/F, it leaves the polarity to the
        intensity and contrast terms, so a hot spot over a dark MRI spot can stay bright inside the MRI's
        sharp edge;
      - ``"stronger"``: :math:`\|g_f - g_s\|_1`, the signed vector: the most Q^AB/F, but a hot spot over a
        dark MRI spot takes the MRI's polarity (it turns dark);
      - ``"max"``: :math:`\|g_f - \nabla \max(I_A, I_B)\|_1`, the signed gradient of the intensity target.

    - ``lambda_contrast`` (``l_contrast``, 0 by default): a local-contrast floor where the secondary is hot.
      With :math:`c(I) = I - G_\sigma * I` the local contrast (``contrast_sigma`` pixels),
      :math:`L_{contrast} = \| [c(I_B) > 0] \cdot \max(0, c(I_B) - c(I_f)) \|_1`: wherever the CT/PET/SPECT
      stands above its surround, the fusion must stand at least as far above its own. A hot lesion over dark
      MRI tissue is such a place, and eq. 8's max target alone keeps it only as far as the MRI's bright
      surround allows. ``contrast_region`` says where the floor acts:

      - ``"hot"`` (default): wherever :math:`c(I_B) > 0`, every warm region of the CT/PET/SPECT;
      - ``"hot_over_darker_mri"``: only where :math:`c(I_B) > 0` and :math:`c(I_A) < 0`, the CT/PET/SPECT
        above its surround where the MRI is below its own: the hypointense-hot lesion case. Elsewhere the
        fusion's contrast is left to the other terms, so the floor costs no edges where there is no lesion.

    :math:`\|\cdot\|_1` is the mean absolute error over the pixels of a sample. SSIM is MONAI's
    (:func:`monai.metrics.regression.compute_ssim_and_cs`, as :class:`~monai.losses.SSIMLoss` uses it): by
    default an 11 x 11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03 and ``data_range = 1.0`` for images
    in [0, 1] (Wang et al., 2004), averaged over the 'valid' windows; all four SSIMs of a batch are one call.
    The window is applied here as two matrix products with banded matrices (:meth:`window_means`), which gives
    MONAI's values (tested to 1e-5) in a tenth of the time: MONAI convolves the full k x k window over one
    channel at a time, and oneDNN's backward of that convolution was a third of a CPU training step. (The SSIM
    *metric* follows the reference convention instead, see :func:`hkafusion_monai.metrics.fusion_ssim`.)

    ``mu`` is a settable attribute: :class:`hkafusion_monai.handlers.DynamicMuHandler` sets it at the end of
    every epoch (paper IV-A).

    As MONAI's losses, calling the loss returns the total to back-propagate (a tensor); its terms are
    :meth:`forward_terms`, and :attr:`terms` keeps those of the last call (detached), which
    :class:`~hkafusion_monai.engines.FusionTrainer` puts into its output for the loggers and the dynamic-mu
    handler.

    Args:
        lambda_s: lambda_1, weight of L_s.
        lambda_grad: lambda_2, weight of L_grad.
        lambda_inten: lambda_3, weight of L_inten.
        mu: initial weight of the I_B structural term, finite and >= 0.
        data_range: SSIM data range of the images.
        kernel_type: SSIM window, ``"gaussian"`` or ``"uniform"``.
        win_size: SSIM window side; images must be at least this large.
        kernel_sigma: standard deviation of the Gaussian window.
        k1: SSIM luminance constant.
        k2: SSIM contrast constant.
        sobel_padding: border mode of the Sobel filter: ``"reflect"`` (default), ``"zeros"``,
            ``"replicate"`` or ``"circular"``.
        gradient_target: ``"magnitude"`` (eq. 9, default), ``"orientation"``, ``"stronger"`` or ``"max"``
            (above).
        lambda_contrast: weight of the local-contrast floor ``l_contrast`` (0: off, the paper).
        contrast_sigma: sigma in pixels of the Gaussian surround of ``l_contrast``.
        contrast_region: where ``l_contrast`` acts, ``"hot"`` (default) or ``"hot_over_darker_mri"`` (above).
        reduction: over the batch, for every returned term: ``"mean"`` (default), ``"sum"`` or ``"none"``
            (per-sample (B,) terms).

    Example::

        loss_fn = FusionLoss()
        loss = loss_fn(net(image), image)   # pred (B, 3, H, W) or (B, 1, H, W), image (B, 2, H, W)
        loss.backward()
        loss_fn.terms["l_grad"]             # each term of that call, detached
    """

    # buffers (typed for the type checker: nn.Module's attribute lookup returns Tensor | Module)
    ssim_window: torch.Tensor
    sobel_diff: torch.Tensor
    sobel_smooth: torch.Tensor
    contrast_kernel: torch.Tensor

    def __init__(
        self,
        lambda_s: float = 1.0,
        lambda_grad: float = 1.0,
        lambda_inten: float = 0.5,
        mu: float = 1.0,
        data_range: float = 1.0,
        kernel_type: KernelType | str = KernelType.GAUSSIAN,
        win_size: int = 11,
        kernel_sigma: float = 1.5,
        k1: float = 0.01,
        k2: float = 0.03,
        sobel_padding: str = "reflect",
        gradient_target: str = "magnitude",
        lambda_contrast: float = 0.0,
        contrast_sigma: float = 6.0,
        contrast_region: str = "hot",
        reduction: LossReduction | str = LossReduction.MEAN,
    ) -> None:
        super().__init__(reduction=LossReduction(reduction).value)
        self.lambda_s = lambda_s
        self.lambda_grad = lambda_grad
        self.lambda_inten = lambda_inten
        self.mu = mu
        self.win_size = win_size
        if KernelType(kernel_type) == KernelType.GAUSSIAN:
            window = torch.exp(
                -0.5 * (torch.arange(win_size, dtype=torch.float64) - (win_size - 1) / 2) ** 2 / kernel_sigma**2
            )
        else:
            window = torch.ones(win_size, dtype=torch.float64)
        self.register_buffer("ssim_window", (window / window.sum()).float(), persistent=False)
        self.c1, self.c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
        self._window_matrices: dict[tuple, torch.Tensor] = {}
        sobel = SobelGradients(kernel_size=3, normalize_kernels=False)
        self.register_buffer("sobel_diff", sobel.kernel_diff, persistent=False)
        self.register_buffer("sobel_smooth", sobel.kernel_smooth, persistent=False)
        self.sobel_padding = sobel_padding
        if gradient_target not in GRADIENT_TARGETS:
            raise ValueError(f"gradient_target must be one of {GRADIENT_TARGETS}, got {gradient_target!r}.")
        if lambda_contrast < 0 or contrast_sigma <= 0:
            raise ValueError(
                f"lambda_contrast must be >= 0 and contrast_sigma > 0, got {lambda_contrast}, {contrast_sigma}."
            )
        if contrast_region not in CONTRAST_REGIONS:
            raise ValueError(f"contrast_region must be one of {CONTRAST_REGIONS}, got {contrast_region!r}.")
        self.gradient_target = gradient_target
        self.contrast_region = contrast_region
        self.lambda_contrast = lambda_contrast
        self.register_buffer(
            "contrast_kernel", gaussian_1d(torch.tensor(float(contrast_sigma)), truncated=3.0), persistent=False
        )
        #: the :meth:`forward_terms` of the last call, detached (empty before the first)
        self.terms: dict[str, torch.Tensor] = {}

    @property
    def mu(self) -> float:
        """Weight of the I_B structural term in eq. 7 (set by the dynamic-mu handler)."""
        return self._mu

    @mu.setter
    def mu(self, value: float) -> None:
        value = float(value)
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"mu must be finite and >= 0, got {value}.")
        self._mu = value

    def sobel(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(G_x, G_y) of (N, C, H, W) with the unnormalised 3x3 Sobel kernel."""
        gx = separable_filtering(x, [self.sobel_smooth, self.sobel_diff], mode=self.sobel_padding)  # [H, W] kernels
        gy = separable_filtering(x, [self.sobel_diff, self.sobel_smooth], mode=self.sobel_padding)
        return gx, gy

    def gradient_magnitude(self, x: torch.Tensor) -> torch.Tensor:
        """|G_x| + |G_y| of (N, C, H, W) with the unnormalised 3x3 Sobel kernel (eq. 9's |nabla I|)."""
        gx, gy = self.sobel(x)
        return gx.abs() + gy.abs()

    def gradient_term(self, fused: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """The per-sample (B,) gradient term against :attr:`gradient_target` (eq. 9 by default)."""
        src_max = torch.maximum(image[:, :1], image[:, 1:])
        stack = [fused, image] + ([src_max] if self.gradient_target == "max" else [])
        gx, gy = self.sobel(torch.cat(stack, 1))  # channels f, A, B[, max]
        if self.gradient_target == "magnitude":
            mag = gx.abs() + gy.abs()
            return (mag[:, :1] - torch.maximum(mag[:, 1:2], mag[:, 2:3])).abs().mean(dim=(1, 2, 3))
        if self.gradient_target == "max":
            return ((gx[:, :1] - gx[:, 3:]).abs() + (gy[:, :1] - gy[:, 3:]).abs()).mean(dim=(1, 2, 3))
        mag = gx[:, 1:3].abs() + gy[:, 1:3].abs()
        a_stronger = mag[:, :1] >= mag[:, 1:2]
        tx = torch.where(a_stronger, gx[:, 1:2], gx[:, 2:3])
        ty = torch.where(a_stronger, gy[:, 1:2], gy[:, 2:3])
        same = (gx[:, :1] - tx).abs() + (gy[:, :1] - ty).abs()
        if self.gradient_target == "stronger":
            return same.mean(dim=(1, 2, 3))
        flipped = (gx[:, :1] + tx).abs() + (gy[:, :1] + ty).abs()
        return torch.minimum(same, flipped).mean(dim=(1, 2, 3))

    def _window_matrix(self, n: int, like: torch.Tensor) -> torch.Tensor:
        """The ``(n, n - k + 1)`` banded matrix whose column j holds the window at rows j .. j + k - 1."""
        key = (n, like.dtype, like.device)
        if key not in self._window_matrices:
            k = self.win_size
            m = torch.zeros(n, n - k + 1, dtype=like.dtype, device=like.device)
            cols = torch.arange(n - k + 1, device=like.device)
            for i in range(k):
                m[cols + i, cols] = self.ssim_window[i].to(like.dtype)
            self._window_matrices[key] = m
        return self._window_matrices[key]

    def window_means(self, x: torch.Tensor) -> torch.Tensor:
        """The SSIM window's weighted mean of every 'valid' window of ``(..., H, W)``: ``(..., H-k+1, W-k+1)``.

        The window is separable, so it is one product with a banded matrix per axis (a conv2d of the full
        window gives the same values at many times the cost on the CPU)."""
        rows = self._window_matrix(x.shape[-2], x)
        cols = self._window_matrix(x.shape[-1], x)
        return rows.transpose(0, 1) @ x @ cols

    def one_minus_ssim(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """1 - SSIM(x, y) per image of (N, 1, H, W) pairs, MONAI's formula over the 'valid' windows: (N,)."""
        mu_x, mu_y, mu_xx, mu_yy, mu_xy = self.window_means(torch.cat([x, y, x * x, y * y, x * y], 1)).unbind(1)
        sigma_x, sigma_y, sigma_xy = mu_xx - mu_x * mu_x, mu_yy - mu_y * mu_y, mu_xy - mu_x * mu_y
        cs = (2 * sigma_xy + self.c2) / (sigma_x + sigma_y + self.c2)
        ssim = (2 * mu_x * mu_y + self.c1) / (mu_x**2 + mu_y**2 + self.c1) * cs
        return 1 - ssim.flatten(1).mean(1)

    def local_contrast(self, x: torch.Tensor) -> torch.Tensor:
        """c(I) = I - G_sigma * I of (N, C, H, W): how far each pixel stands above its Gaussian surround."""
        k = self.contrast_kernel
        return x - separable_filtering(x, [k, k], mode="reflect")

    def contrast_term(
        self, fused: torch.Tensor, src_b: torch.Tensor, src_a: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The per-sample (B,) local-contrast floor where I_B is hot (:attr:`lambda_contrast`), and, with
        ``contrast_region="hot_over_darker_mri"``, where I_A (``src_a``, then required) is below its surround."""
        images = [fused, src_b]
        if self.contrast_region == "hot_over_darker_mri":
            if src_a is None:
                raise ValueError('contrast_region="hot_over_darker_mri" needs src_a, the MRI.')
            images.append(src_a)
        c = self.local_contrast(torch.cat(images, 1))
        c_f, c_b = c[:, :1], c[:, 1:2]
        region = (c_b > 0) & (c[:, 2:] < 0) if len(images) == 3 else c_b > 0
        return (torch.relu(c_b - c_f) * region).mean(dim=(1, 2, 3))

    def forward(self, pred: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """The eq. 12 total, reduced over the batch by ``reduction`` (what to back-propagate); the terms of the
        call are kept, detached, in :attr:`terms`.

        Args:
            pred: as for :meth:`forward_terms`.
            image: as for :meth:`forward_terms`.
        """
        terms = self.forward_terms(pred, image)
        self.terms = {key: value.detach() for key, value in terms.items()}
        return terms["loss"]

    def forward_terms(self, pred: torch.Tensor, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every term of eq. 7-12.

        Args:
            pred: the network's training output: (B, 3, H, W) = [fused, reconstructed I_A, reconstructed I_B]
                with the reconstruction branch on, or (B, 1, H, W) = fused (then ``l_rec_a`` = ``l_rec_b`` = 0).
            image: the sources (B, 2, H, W), channel 0 = I_A (MRI), channel 1 = I_B (CT/PET/SPECT), in [0, 1].

        Returns:
            a dict with the :data:`TERM_KEYS` (``"loss"`` is the total to back-propagate; each term reduced
            over the batch by ``reduction``) and the :data:`PER_SAMPLE_KEYS`, (B,) detached
            1 - SSIM(I_f, I_A) and 1 - SSIM(I_f, I_B) for the dynamic-mu handler.

        Raises:
            ValueError: for wrong dimensions or channel counts, or mismatched batch or spatial sizes.
        """
        if pred.ndim != 4 or pred.shape[1] not in (1, 3):
            raise ValueError(f"pred must be (B, 1, H, W) or (B, 3, H, W), got {tuple(pred.shape)}.")
        if image.ndim != 4 or image.shape[1] != 2:
            raise ValueError(f"image must be (B, 2, H, W) (ch. 0 = I_A, ch. 1 = I_B), got {tuple(image.shape)}.")
        if pred.shape[0] != image.shape[0] or pred.shape[2:] != image.shape[2:]:
            raise ValueError(f"pred {tuple(pred.shape)} and image {tuple(image.shape)} differ in batch or size.")
        if min(pred.shape[2:]) < self.win_size:
            raise ValueError(f"images must be at least {self.win_size} x {self.win_size} (SSIM window).")
        bsz = pred.shape[0]
        fused, src_a, src_b = pred[:, :1], image[:, :1], image[:, 1:]
        with_rec = pred.shape[1] == 3

        # one SSIM call: (I_f, I_A), (I_f, I_B)[, (I_A^pre, I_A), (I_B^pre, I_B)]
        if with_rec:
            x, y = torch.cat([fused, fused, pred[:, 1:2], pred[:, 2:3]]), torch.cat([src_a, src_b, src_a, src_b])
        else:
            x, y = torch.cat([fused, fused]), torch.cat([src_a, src_b])
        one_minus_ssim = self.one_minus_ssim(x, y).view(-1, bsz)
        l_ssim_a, l_ssim_b = one_minus_ssim[0], one_minus_ssim[1]
        l_s = l_ssim_a + self.mu * l_ssim_b

        l_inten = (fused - torch.maximum(src_a, src_b)).abs().mean(dim=(1, 2, 3))
        l_grad = self.gradient_term(fused, image)
        l_contrast = self.contrast_term(fused, src_b, src_a) if self.lambda_contrast > 0 else torch.zeros_like(l_s)

        if with_rec:
            l_rec_a = (src_a - pred[:, 1:2]).abs().mean(dim=(1, 2, 3)) + one_minus_ssim[2]
            l_rec_b = (src_b - pred[:, 2:3]).abs().mean(dim=(1, 2, 3)) + one_minus_ssim[3]
        else:
            l_rec_a = l_rec_b = torch.zeros_like(l_s)

        total = self.lambda_s * l_s + self.lambda_grad * l_grad + self.lambda_inten * l_inten + l_rec_a + l_rec_b
        if self.lambda_contrast > 0:
            total = total + self.lambda_contrast * l_contrast
        terms = (total, l_s, l_ssim_a, l_ssim_b, l_grad, l_inten, l_contrast, l_rec_a, l_rec_b)
        out = {key: self._reduce(term) for key, term in zip(TERM_KEYS, terms, strict=True)}
        out[PER_SAMPLE_KEYS[0]] = l_ssim_a.detach()
        out[PER_SAMPLE_KEYS[1]] = l_ssim_b.detach()
        return out

    def _reduce(self, per_sample: torch.Tensor) -> torch.Tensor:
        if self.reduction == LossReduction.MEAN.value:
            return per_sample.mean()
        if self.reduction == LossReduction.SUM.value:
            return per_sample.sum()
        return per_sample
