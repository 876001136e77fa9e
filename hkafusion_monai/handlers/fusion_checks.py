"""The two reader's checks (:mod:`hkafusion_monai.metrics.checks`) as an evaluator handler, for any method the
evaluation workflow scores (the network or a classical rule: whatever ``engine.network`` is).

- MRI-CT: **Bone**, the bone brightness kept, from the evaluator's own output.
- MRI-PET / MRI-SPECT: **Lesion**, the contrast kept of one hot spot painted into each pair's PET/SPECT
  luminance (:func:`hkafusion_monai.transforms.hot_spots.paint_hot_spot`, seed = the pair's index in the
  evaluation), fused again by the same network and inferer.

Per-pair values go into ``engine.state.metric_details[name]`` and the mean into ``engine.state.metrics[name]``
at completion, where :class:`~hkafusion_monai.handlers.evaluation.MethodMetricsCollector` and the MLflow
handler read the eight metrics; attach this handler before them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from ignite.engine import Engine, Events

from hkafusion_monai.metrics import bone_brightness_kept, hot_spot_contrast_kept
from hkafusion_monai.transforms.hot_spots import paint_hot_spot
from hkafusion_monai.utils import as_bool
from hkafusion_monai.utils.quantisation import quantise

if TYPE_CHECKING:
    from monai.engines import SupervisedEvaluator

__all__ = ["FusionChecksHandler", "check_for_task"]

#: the check each task gets
_TASK_CHECK = {"mri_ct": "Bone", "mri_pet": "Lesion", "mri_spect": "Lesion"}


def check_for_task(task: str) -> str | None:
    """``"Bone"`` for MRI-CT, ``"Lesion"`` for MRI-PET and MRI-SPECT, ``None`` otherwise (e.g. the demo)."""
    return _TASK_CHECK.get(task)


class FusionChecksHandler:
    """Compute the task's check for every pair an evaluator scores.

    Args:
        task: ``"mri_ct"`` (bone brightness), ``"mri_pet"``/``"mri_spect"`` (hot-spot contrast); any other task
            attaches nothing.
        enabled: switch the handler off (a string such as ``"false"`` from the command line counts as false).
        image_key: the batch's ``(B, 2, H, W)`` sources in [0, 1].
    """

    def __init__(self, task: str, enabled: bool | str = True, image_key: str = "image") -> None:
        self.check = check_for_task(task) if as_bool(enabled, "enabled") else None
        self.image_key = image_key
        self._values: list[float] = []

    def attach(self, engine: Engine) -> None:
        if self.check is None:
            return
        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._iteration)
        engine.add_event_handler(Events.COMPLETED, self._completed)

    def _reset(self, engine: Engine) -> None:
        self._values = []

    @torch.no_grad()
    def _iteration(self, engine: SupervisedEvaluator) -> None:
        batch: Any = engine.state.batch  # ignite types State.batch and State.output as int | None
        output: Any = engine.state.output
        image = torch.as_tensor(batch[self.image_key]).detach()
        if image.ndim != 4 or image.shape[1] != 2:
            raise ValueError(
                f"FusionChecksHandler: expected a (B, 2, H, W) {self.image_key!r}, got {tuple(image.shape)}"
            )
        sources = quantise(image.cpu().double())
        if self.check == "Bone":
            fused = quantise(torch.as_tensor(output["pred"]).detach().cpu().double()[:, 0])
            self._values += bone_brightness_kept(fused, sources[:, 1]).tolist()
            return
        painted, cores, surrounds = [], [], []
        for b in range(image.shape[0]):
            spot = paint_hot_spot(sources[b, 0].numpy(), sources[b, 1].numpy(), seed=len(self._values) + b)
            painted.append(torch.stack([sources[b, 0], torch.from_numpy(spot.painted)]))
            cores.append(torch.from_numpy(spot.core))
            surrounds.append(torch.from_numpy(spot.surround))
        painted_batch = (torch.stack(painted) / 255.0).to(device=image.device, dtype=image.dtype)
        network = engine.network
        pred = (
            engine.inferer(painted_batch, network)
            if getattr(engine, "inferer", None) is not None
            else network(painted_batch)
        )
        fused = quantise(torch.as_tensor(pred).detach().cpu().double()[:, 0])
        kept = hot_spot_contrast_kept(fused, torch.stack(painted)[:, 1], torch.stack(cores), torch.stack(surrounds))
        self._values += kept.tolist()

    def _completed(self, engine: Engine) -> None:
        check = self.check
        assert check is not None  # attach() adds no handler without a check
        values = torch.tensor(self._values, dtype=torch.float64).reshape(-1, 1)
        details = getattr(engine.state, "metric_details", None)
        if details is None:
            engine.state.metric_details = details = {}  # type: ignore[attr-defined]  # MONAI's, not in ignite's State
        details[check] = values
        engine.state.metrics[check] = float(torch.nanmean(values)) if values.numel() else float("nan")
