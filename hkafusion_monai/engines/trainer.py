"""The fusion trainer: MONAI's ``SupervisedTrainer`` with the 2-channel source image as its own target and
every term of the HKAFusion loss (eq. 7-12) in ``engine.state.output``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from monai.engines import IterationEvents, SupervisedTrainer
from monai.utils import CommonKeys

from hkafusion_monai.losses import PER_SAMPLE_KEYS, TERM_KEYS
from hkafusion_monai.utils import TrainingSetupError
from hkafusion_monai.utils.cli import QuietRefusedInput

__all__ = ["FusionTrainer", "check_loader", "check_loaders", "prepare_fusion_batch", "loss_terms"]


def check_loader(loader: Any, name: str) -> Any:
    """Refuse a data loader that yields no batch (e.g. fewer pairs than ``batch_size`` with ``drop_last``): a
    training would otherwise "finish" untrained, and an evaluation would score nothing. Returns ``loader``.

    Raises:
        TrainingSetupError: naming the split, the pair count and the batch size.
    """
    if len(loader) == 0:
        dataset = getattr(loader, "dataset", None)
        pairs = len(dataset) if dataset is not None and hasattr(dataset, "__len__") else "no"
        batch = getattr(loader, "batch_size", "?")
        drop = " and drop_last" if getattr(loader, "drop_last", False) else ""
        raise TrainingSetupError(
            f"the {name} data yield no batch: {pairs} pair(s) with batch_size {batch}{drop}; add pairs to the "
            f"{name} split or lower --batch_size"
        )
    return loader


def check_loaders(loaders: Mapping[str, Any]) -> None:
    """:func:`check_loader` for each ``{"split name": loader}``."""
    for name, loader in loaders.items():
        check_loader(loader, name)


def prepare_fusion_batch(
    batchdata: Mapping[str, Any], device: str | torch.device | None = None, non_blocking: bool = False, **kwargs: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(image, image)``: fusion is unsupervised, so the 2-channel sources are the input and the loss's target.

    Args:
        batchdata: a batch dictionary with ``"image"`` of shape (B, 2, H, W).
        device, non_blocking, kwargs: passed to ``Tensor.to``.
    """
    if CommonKeys.IMAGE not in batchdata:
        raise KeyError(f"the batch has no {CommonKeys.IMAGE!r} key; it has {sorted(batchdata)}.")
    image = batchdata[CommonKeys.IMAGE].to(device=device, non_blocking=non_blocking, **kwargs)
    return image, image


def loss_terms(output: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """The scalar loss terms of a trainer iteration's output as floats (for ``StatsHandler`` and ``MLFlowHandler``)."""
    # decollated: a list of per-sample dicts, every one carrying the same batch-level terms
    terms = output if isinstance(output, Mapping) else output[0]
    return {k: float(torch.as_tensor(terms[k]).detach()) for k in TERM_KEYS if k in terms}


class FusionTrainer(SupervisedTrainer):
    """``SupervisedTrainer`` for unsupervised fusion with the HKAFusion loss.

    Differences from the parent, and nothing else (AMP, gradient accumulation and ``torch.compile`` are the
    parent's):

    - the batch's ``"image"`` (B, 2, H, W) is both the network input and the loss target
      (:func:`prepare_fusion_batch`), so no label is needed;
    - ``loss_function`` is a :class:`~hkafusion_monai.losses.FusionLoss` (or any loss returning the total and
      keeping its terms in a ``terms`` dict): the parent back-propagates the total, and at the trainer's own
      ``IterationEvents.LOSS_COMPLETED`` every term of :data:`~hkafusion_monai.losses.TERM_KEYS`, plus the
      per-sample structural losses the dynamic-mu handler reads, is copied (detached) into
      ``engine.state.output``;
    - ``decollate`` defaults to False: handlers read batch tensors.

    ``engine.state.output`` therefore holds ``"image"``, ``"pred"`` (the network's training output,
    (B, 3, H, W) = [fused, reconstructed MRI, reconstructed other], or (B, 1, H, W)), ``"loss"`` and each term.

    Args:
        loss_function: the fusion loss.
        args, kwargs: as for :class:`monai.engines.SupervisedTrainer`.
    """

    def __init__(self, *args: Any, loss_function: Callable, decollate: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("prepare_batch", prepare_fusion_batch)
        kwargs.update(loss_function=loss_function, decollate=decollate)
        super().__init__(*args, **kwargs)
        QuietRefusedInput.attach(self)  # a refused input ends with its one line, not ignite's ERROR lines too
        self.add_event_handler(IterationEvents.LOSS_COMPLETED, self.record_loss_terms)

    def record_loss_terms(self, engine: SupervisedTrainer) -> None:
        """Copy the loss's terms of this iteration (``loss_function.terms``) into ``engine.state.output``; the
        total is already there under ``"loss"``, attached to the graph for the backward pass."""
        terms: Mapping[str, torch.Tensor] = getattr(engine.loss_function, "terms", {})
        for key in TERM_KEYS + PER_SAMPLE_KEYS:
            if key in terms and key != CommonKeys.LOSS:
                engine.state.output[key] = terms[key]
