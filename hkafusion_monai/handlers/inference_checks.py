"""What an inference run checks on every pair it fuses, in its log and in its MLflow run:

- **the hot-spot guard** (PET and SPECT): :func:`hkafusion_monai.metrics.hot_spot_guard` finds the secondary's
  hot spots and the contrast each one keeps in the fused image; one keeping less than ``min_kept`` (default
  :data:`~hkafusion_monai.metrics.HOT_SPOT_MIN_KEPT`, 50 %) where the MRI (channel 0 of the image) is darker
  than its surround (a lesion's pattern) is warned about with its position, so that a reader looks at the
  PET/SPECT there (docs/failure_behaviour.md);
- **the registration**: the rigid transform :class:`~hkafusion_monai.transforms.RigidRegisterd` found for a pair
  in two frames of reference (it logs it itself).

Both are measured on the network's output, before the postprocessing (colour, ``--stretch``, the file's own
axes), against the secondary as the network saw it: the luminance in [0, 1] on the MRI grid.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.data import MetaTensor, decollate_batch
from monai.engines.utils import IterationEvents

from hkafusion_monai.handlers.mlflow_run import MLflowRun
from hkafusion_monai.metrics.checks import HOT_SPOT_MIN_KEPT, GuardedHotSpot, hot_spot_guard
from hkafusion_monai.transforms.registration import REGISTRATION_KEY

__all__ = ["GUARDED_MODALITIES", "InferenceChecksHandler", "describe_hot_spots"]

logger = logging.getLogger(__name__)

#: the secondaries whose hot spots are guarded
GUARDED_MODALITIES = ("PET", "SPECT")
#: lost hot spots named in one warning line (the MLflow artifact holds them all)
_NAMED = 10


def describe_hot_spots(spots: Sequence[GuardedHotSpot], where: Any = None) -> str:
    """``"(row 120, column 88) kept 12 %; ..."`` for the log; ``where(position) -> str`` words a position
    (default: ``row, column[, slice]``). At most ten are named, then how many more."""

    def default(position: tuple[int, ...]) -> str:
        names = ("row", "column", "slice")
        return ", ".join(f"{n} {v}" for n, v in zip(names, position, strict=False))

    words = where or default
    text = "; ".join(f"({words(s.position)}) kept {s.kept:.0%}" for s in spots[:_NAMED])
    return text + (f"; and {len(spots) - _NAMED} more" if len(spots) > _NAMED else "")


def _locator(meta: Mapping) -> Any:
    """``position -> (voxel of the MRI file, RAS mm)`` for a position on a volume's preprocessed grid (the
    image's ``affine``), through the MRI file's ``original_affine``: the voxel is the written volume's own;
    ``None`` without an affine."""
    if meta.get("affine") is None or meta.get("original_affine") is None:
        return None
    affine = np.asarray(meta["affine"], dtype=np.float64)
    original = np.asarray(meta["original_affine"], dtype=np.float64)

    def locate(position: Sequence[int]) -> tuple[tuple[int, ...], np.ndarray]:
        world = affine @ np.append(np.asarray(position, dtype=np.float64), 1.0)
        voxel = tuple(int(round(v)) for v in np.linalg.solve(original, world)[:3])
        return voxel, world[:3]

    return locate


class InferenceChecksHandler:
    """Run the per-pair checks of an inference evaluator and record them; attach it after the MLflow handler.

    On every iteration (at ``IterationEvents.FORWARD_COMPLETED``, before the postprocessing), for each pair of
    the batch: the hot-spot guard when the secondary is PET or SPECT (the item's ``modality``), and the
    registration record when the item carries one. Per pair ``i`` (its MLflow step, from 0) it logs the
    metrics ``hot_spots_found``, ``hot_spots_lost`` and ``hot_spot_min_kept``, and
    ``registration_rotation_deg``, ``registration_shift_mm`` and ``registration_metric``; at the end of the
    run the param ``hot_spot_min_kept`` and the artifact ``inference_checks.json`` (every hot spot's position,
    radius, contrast and contrast kept, every registration's matrix; pairs by number, never by file name).
    The records are also kept in :attr:`records`.

    Args:
        mlflow_run: the :class:`~hkafusion_monai.handlers.mlflow_run.MLflowRun` of the evaluator's
            ``monai.handlers.MLFlowHandler`` (or None: log only).
        min_kept: the fraction of its contrast a hot spot must keep not to be warned about.
        image_key: the batch's stacked ``(B, 2, H, W[, D])`` sources in [0, 1] (channel 1 the secondary).
        pred_key: the network's ``(B, 1, H, W[, D])`` output in [0, 1].
        modality_key: the batch key holding each pair's secondary modality (else the image's metadata).
    """

    def __init__(
        self,
        mlflow_run: MLflowRun | None = None,
        min_kept: float = HOT_SPOT_MIN_KEPT,
        image_key: str = "image",
        pred_key: str = "pred",
        modality_key: str = "modality",
    ) -> None:
        self.mlflow_run = mlflow_run
        self.min_kept = float(min_kept)
        if not 0.0 <= self.min_kept <= 1.0:
            raise ValueError(f"hot_spot_min_kept must lie in [0, 1], got {min_kept}")
        self.image_key = image_key
        self.pred_key = pred_key
        self.modality_key = modality_key
        self.records: list[dict[str, Any]] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._reset)
        engine.add_event_handler(IterationEvents.FORWARD_COMPLETED, self._iteration)
        # before the MLflow handler closes its run at COMPLETED
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._completed)

    def _reset(self, engine: Engine) -> None:
        self.records = []

    @torch.no_grad()
    def _iteration(self, engine: Engine) -> None:
        # FORWARD_COMPLETED: the network's output, before MONAI decollates the batch and runs the postprocessing
        # (colour, the file's own axes), which it does at MODEL_COMPLETED
        batch: Any = engine.state.batch  # ignite types State.batch and State.output as int | None
        output: Any = engine.state.output
        items = batch if isinstance(batch, list) else decollate_batch(batch, detach=True)
        if isinstance(output, list):
            preds = [o[self.pred_key] for o in output]
        else:
            pred = output[self.pred_key]
            preds = list((pred.as_tensor() if isinstance(pred, MetaTensor) else torch.as_tensor(pred)).detach().cpu())
        for item, pred in zip(items, preds, strict=True):
            image = item[self.image_key]
            meta = getattr(image, "meta", None) or {}
            record: dict[str, Any] = {"pair": len(self.records) + 1}
            modality = str(item.get(self.modality_key) or meta.get("modality") or "")
            if modality in GUARDED_MODALITIES:
                sources = torch.as_tensor(image).detach().cpu()
                fused = torch.as_tensor(pred).detach().cpu()[0]
                record["modality"] = modality
                record["hot_spots"] = self._guard(fused, sources[1], sources[0], meta, modality)
            registration = item.get(REGISTRATION_KEY)
            if isinstance(registration, Mapping):
                record["registration"] = {k: np.asarray(v).tolist() for k, v in registration.items()}
            self.records.append(record)
            self._log_metrics(record)

    def _guard(
        self, fused: torch.Tensor, source: torch.Tensor, mri: torch.Tensor, meta: Mapping, modality: str
    ) -> list[dict]:
        spots = hot_spot_guard(fused, source, min_kept=self.min_kept, max_value=1.0, mri=mri)
        lost = [s for s in spots if s.lost]
        name = str(meta.get("other_filename") or meta.get("filename_or_obj") or "the secondary")
        locate = _locator(meta) if fused.ndim == 3 else None
        if lost:
            where = None
            if locate is not None:

                def where(position: tuple[int, ...]) -> str:
                    voxel, mm = locate(position)
                    return f"voxel {voxel} of the MRI, {', '.join(f'{v:.1f}' for v in mm)} mm RAS"

            logger.warning(
                "hot-spot guard, %s: the fusion keeps less than %.0f%% of the contrast of %d of %d hot spot(s) of "
                "the %s where the MRI is darker (a lesion's pattern), at %s; look at the %s there",
                name,
                100 * self.min_kept,
                len(lost),
                len(spots),
                modality,
                describe_hot_spots(lost, where),
                modality,
            )
        elif spots:
            logger.info(
                "hot-spot guard, %s: %d hot spot(s) of the %s, none keeping less than %.0f%% of its contrast where "
                "the MRI is darker (the least kept of all %.0f%%)",
                name,
                len(spots),
                modality,
                100 * self.min_kept,
                100 * min(s.kept for s in spots),
            )
        out = []
        for s in spots:
            entry = {**s._asdict(), "position": list(s.position)}
            if locate is not None:  # where it lies in the written volume (the MRI file's axes) and in the world
                voxel, mm = locate(s.position)
                entry.update(mri_voxel=list(voxel), ras_mm=[round(float(v), 2) for v in mm])
            out.append(entry)
        return out

    def _log_metrics(self, record: dict[str, Any]) -> None:
        if self.mlflow_run is None:
            return
        values: dict[str, float] = {}
        spots = record.get("hot_spots")
        if spots is not None:
            values["hot_spots_found"] = float(len(spots))
            values["hot_spots_lost"] = float(sum(s["lost"] for s in spots))
            if spots:
                values["hot_spot_min_kept"] = float(min(s["kept"] for s in spots))
        reg = record.get("registration")
        if reg is not None:
            values["registration_rotation_deg"] = float(reg["rotation_deg"])
            values["registration_shift_mm"] = float(np.linalg.norm(reg["shift_mm"]))
            values["registration_metric"] = float(reg["metric"])
        self.mlflow_run.log_metrics(values, step=record["pair"] - 1)

    def _completed(self, engine: Engine) -> None:
        run = self.mlflow_run
        if run is None or not run.active:
            return
        run.log_params({"hot_spot_min_kept": str(self.min_kept)})
        if any(len(r) > 1 for r in self.records):
            run.log_dict({"hot_spot_min_kept": self.min_kept, "pairs": self.records}, "inference_checks.json")
