"""The dynamic structural weight mu of the HKAFusion loss (paper IV-A)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events
from monai.handlers import from_engine

from hkafusion_monai.losses import PER_SAMPLE_KEYS

__all__ = ["DynamicMuHandler"]


def _as_1d(values: Any) -> torch.Tensor:
    """A (B,) float64 tensor from a tensor or from the list of per-sample scalars of a decollated output."""
    if isinstance(values, (list, tuple)):
        values = torch.stack([torch.as_tensor(v).reshape(()) for v in values]) if values else torch.zeros(0)
    return torch.as_tensor(values).detach().reshape(-1).to(torch.float64)


class DynamicMuHandler:
    r"""Set the loss's mu at every epoch end to :math:`\sum_n (1 - SSIM(I_f, I_B)) / \sum_n (1 - SSIM(I_f, I_A))`.

    Paper IV-A, with its "L_ssim" read as the SSIM loss 1 - SSIM (see :class:`~hkafusion_monai.losses.FusionLoss`):
    the sums run over every training sample of the epoch, so the source that the fused image matches worse
    weighs more in the next epoch's structural loss (eq. 7).

    The handler reads per-sample values from ``engine.state.output``: by default the
    :data:`~hkafusion_monai.losses.PER_SAMPLE_KEYS` ``"l_ssim_a_per_sample"``, ``"l_ssim_b_per_sample"`` that
    :meth:`FusionLoss.forward_terms <hkafusion_monai.losses.FusionLoss.forward_terms>` gives, which the
    trainer copies into its output dict (a batch dict of (B,) tensors or a decollated list of per-sample dicts
    both work).

    - Sums accumulate at ``ITERATION_COMPLETED`` and restart at ``EPOCH_STARTED``.
    - At ``EPOCH_COMPLETED`` they are all-reduced across processes (``ignite.distributed``; a no-op without
      DDP), so every rank sets the same mu, which is then clamped to ``mu_range``.
    - Division guard: with sum_A = 0 (the fused images equal I_A in SSIM) mu = ``mu_range[1]``, the limit
      of the ratio; with sum_A = sum_B = 0 or no samples, mu stays as it is.
    - The value is exposed as :attr:`mu` and, when ``metric_name`` is set, stored in
      ``engine.state.metrics[metric_name]`` for the loggers.

    Args:
        loss: the object whose ``mu`` is set, normally the :class:`~hkafusion_monai.losses.FusionLoss`.
        mu_range: (low, high) clamp of mu; default (0.1, 10.0), i.e. neither source's structural term is
            ever weighted more than 10 times the other.
        output_transform: maps ``engine.state.output`` to the per-sample (1 - SSIM(I_f, I_A),
            1 - SSIM(I_f, I_B)); by default ``monai.handlers.from_engine(PER_SAMPLE_KEYS)``.
        metric_name: key under which mu goes into ``engine.state.metrics``; ``None`` to skip.

    Example::

        loss_fn = FusionLoss()
        DynamicMuHandler(loss_fn).attach(trainer)
    """

    def __init__(
        self,
        loss: Any,
        mu_range: Sequence[float] = (0.1, 10.0),
        output_transform: Callable[[Any], tuple[Any, Any]] | None = None,
        metric_name: str | None = "mu",
    ) -> None:
        low, high = (float(v) for v in mu_range)
        if not 0 <= low <= high:
            raise ValueError(f"mu_range must satisfy 0 <= low <= high, got {tuple(mu_range)}.")
        self.loss = loss
        self.mu_range = (low, high)
        self.output_transform = output_transform or from_engine(list(PER_SAMPLE_KEYS))
        self.metric_name = metric_name
        self.sums = torch.zeros(3, dtype=torch.float64)  # sum_A, sum_B, sample count

    @property
    def mu(self) -> float:
        """The loss's current mu."""
        return float(self.loss.mu)

    def attach(self, engine: Engine) -> None:
        """Register on ``engine`` (the trainer): reset, accumulate and update at the epoch events."""
        engine.add_event_handler(Events.EPOCH_STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.iteration_completed)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.epoch_completed)

    def reset(self, engine: Engine | None = None) -> None:
        """Start new sums."""
        self.sums = torch.zeros(3, dtype=torch.float64)

    def update(self, ssim_loss_a: Any, ssim_loss_b: Any) -> None:
        """Add per-sample values 1 - SSIM(I_f, I_A) and 1 - SSIM(I_f, I_B) (tensors or lists of scalars)."""
        a, b = _as_1d(ssim_loss_a), _as_1d(ssim_loss_b)
        if a.shape != b.shape:
            raise ValueError(f"per-sample structural losses differ in length: {a.numel()} and {b.numel()}.")
        batch = torch.stack([a.sum(), b.sum(), torch.tensor(float(a.numel()), dtype=torch.float64, device=a.device)])
        self.sums = self.sums.to(batch.device) + batch

    def iteration_completed(self, engine: Engine) -> None:
        """Accumulate the current iteration's per-sample structural losses."""
        try:
            values = self.output_transform(engine.state.output)
        except KeyError as err:
            raise KeyError(
                f"DynamicMuHandler: engine.state.output has no {err}; the trainer must put the loss's "
                f"{PER_SAMPLE_KEYS} into its output (hkafusion_monai.engines.FusionTrainer does)."
            ) from err
        self.update(*values)

    def compute(self) -> float:
        """mu from the (all-reduced) sums, clamped and guarded; the current mu when undefined."""
        reduced = cast(torch.Tensor, idist.all_reduce(self.sums.clone()))  # a tensor in, a tensor out
        sum_a, sum_b, count = (float(v) for v in reduced)
        low, high = self.mu_range
        if count == 0 or (sum_a <= 0 and sum_b <= 0):
            return self.mu
        if sum_a <= 0:
            return high
        return min(max(sum_b / sum_a, low), high)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """mu, so that a resumed training continues with the weight the last epoch set (CheckpointSaver)."""
        return {"mu": torch.tensor(self.mu, dtype=torch.float64)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.loss.mu = float(state["mu"])

    def epoch_completed(self, engine: Engine) -> None:
        """Set the loss's mu for the next epoch (and log it under ``metric_name``)."""
        self.loss.mu = self.compute()
        if self.metric_name is not None:
            engine.state.metrics[self.metric_name] = self.mu
