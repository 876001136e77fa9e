"""The HKAFusion training loss, paper section III-D, eq. 7-12.

Reading of the paper's "L_ssim": eq. 7 and the dynamic weight mu (section IV-A) use L_ssim as the SSIM
*loss* 1 - SSIM, eq. 10-11 (``... + 1 - L_ssim``) use it as plain SSIM; read that way every term is a loss
to minimise, and mu = sum(1 - SSIM(I_f, I_B)) / sum(1 - SSIM(I_f, I_A)) weighs the worse-matched source
more. See docs/metrics.md.
"""

from __future__ import annotations

import math

import torch
from monai.losses import SSIMLoss
from monai.metrics.regression import KernelType
from monai.networks.layers import separable_filtering
from monai.transforms import SobelGradients
from monai.utils import LossReduction
from torch.nn.modules.loss import _Loss

__all__ = ["FusionLoss", "TERM_KEYS", "PER_SAMPLE_KEYS"]

#: the scalar entries of :meth:`FusionLoss.forward_terms`'s result, each worth logging ("loss" is the total).
TERM_KEYS: tuple[str, ...] = ("loss", "l_s", "l_ssim_a", "l_ssim_b", "l_grad", "l_inten", "l_rec_a", "l_rec_b")

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

    :math:`\|\cdot\|_1` is the mean absolute error over the pixels of a sample. SSIM is MONAI's
    (:class:`~monai.losses.SSIMLoss`): by default an 11 x 11 Gaussian window with sigma 1.5, K1 = 0.01,
    K2 = 0.03 and ``data_range = 1.0`` for images in [0, 1] (Wang et al., 2004), averaged over the 'valid'
    windows; all four SSIMs of a batch are one call. (The SSIM *metric* follows the reference convention
    instead, see :func:`hkafusion_monai.metrics.fusion_ssim`.)

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
        reduction: over the batch, for every returned term: ``"mean"`` (default), ``"sum"`` or ``"none"``
            (per-sample (B,) terms).

    Example::

        loss_fn = FusionLoss()
        loss = loss_fn(net(image), image)   # pred (B, 3, H, W) or (B, 1, H, W), image (B, 2, H, W)
        loss.backward()
        loss_fn.terms["l_grad"]             # each term of that call, detached
    """

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
        reduction: LossReduction | str = LossReduction.MEAN,
    ) -> None:
        super().__init__(reduction=LossReduction(reduction).value)
        self.lambda_s = lambda_s
        self.lambda_grad = lambda_grad
        self.lambda_inten = lambda_inten
        self.mu = mu
        self.win_size = win_size
        self.ssim_loss = SSIMLoss(
            spatial_dims=2,
            data_range=data_range,
            kernel_type=kernel_type,
            win_size=win_size,
            kernel_sigma=kernel_sigma,
            k1=k1,
            k2=k2,
            reduction=LossReduction.NONE,
        )
        sobel = SobelGradients(kernel_size=3, normalize_kernels=False)
        self.register_buffer("sobel_diff", sobel.kernel_diff, persistent=False)
        self.register_buffer("sobel_smooth", sobel.kernel_smooth, persistent=False)
        self.sobel_padding = sobel_padding
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

    def gradient_magnitude(self, x: torch.Tensor) -> torch.Tensor:
        """|G_x| + |G_y| of (N, C, H, W) with the unnormalised 3x3 Sobel kernel (eq. 9's |nabla I|)."""
        gx = separable_filtering(x, [self.sobel_smooth, self.sobel_diff], mode=self.sobel_padding)  # [H, W] kernels
        gy = separable_filtering(x, [self.sobel_diff, self.sobel_smooth], mode=self.sobel_padding)
        return gx.abs() + gy.abs()

    def forward(self, pred: torch.Tensor, image: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
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
        one_minus_ssim = self.ssim_loss(x, y).view(-1, bsz)
        l_ssim_a, l_ssim_b = one_minus_ssim[0], one_minus_ssim[1]
        l_s = l_ssim_a + self.mu * l_ssim_b

        l_inten = (fused - torch.maximum(src_a, src_b)).abs().mean(dim=(1, 2, 3))
        grads = self.gradient_magnitude(torch.cat([fused, image], 1))
        l_grad = (grads[:, :1] - torch.maximum(grads[:, 1:2], grads[:, 2:3])).abs().mean(dim=(1, 2, 3))

        if with_rec:
            l_rec_a = (src_a - pred[:, 1:2]).abs().mean(dim=(1, 2, 3)) + one_minus_ssim[2]
            l_rec_b = (src_b - pred[:, 2:3]).abs().mean(dim=(1, 2, 3)) + one_minus_ssim[3]
        else:
            l_rec_a = l_rec_b = torch.zeros_like(l_s)

        total = self.lambda_s * l_s + self.lambda_grad * l_grad + self.lambda_inten * l_inten + l_rec_a + l_rec_b
        terms = (total, l_s, l_ssim_a, l_ssim_b, l_grad, l_inten, l_rec_a, l_rec_b)
        out = {key: self._reduce(term) for key, term in zip(TERM_KEYS, terms)}
        out[PER_SAMPLE_KEYS[0]] = l_ssim_a.detach()
        out[PER_SAMPLE_KEYS[1]] = l_ssim_b.detach()
        return out

    def _reduce(self, per_sample: torch.Tensor) -> torch.Tensor:
        if self.reduction == LossReduction.MEAN.value:
            return per_sample.mean()
        if self.reduction == LossReduction.SUM.value:
            return per_sample.sum()
        return per_sample
