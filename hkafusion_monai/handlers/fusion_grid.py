"""PNG grids of validation fusions, saved per evaluator run and logged to MLflow."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events

from hkafusion_monai.handlers.mlflow_run import MLflowRun
from hkafusion_monai.io.atomic import atomic_write
from hkafusion_monai.networks import LaplacianPyramidFusion
from hkafusion_monai.reports.html_report import colourise, load_display_image
from hkafusion_monai.utils import as_bool
from hkafusion_monai.utils.quantisation import to_uint8

__all__ = ["FusionGridHandler", "fusion_grid"]


def fusion_grid(
    columns: Sequence[Sequence[np.ndarray]],
    titles: Sequence[str] | None = None,
    gap: int = 2,
    row_labels: Sequence[str] | None = None,
    font_size: int = 14,
) -> np.ndarray:
    """Tile rows of images into one uint8 RGB image: ``columns[c][r]`` is row r of column c, each a 2-D image
    in [0, 1] (grey), a uint8 ``(H, W)`` grey or ``(H, W, 3)`` picture; ``titles`` are written above the columns and
    ``row_labels`` in a margin left of the rows, so that the picture reads without a caption."""
    from PIL import Image, ImageDraw, ImageFont

    def as_rgb(img: np.ndarray) -> np.ndarray:
        if img.ndim == 3:
            return np.asarray(img, dtype=np.uint8)
        grey = img if img.dtype == np.uint8 else to_uint8(np.asarray(img))
        return np.repeat(grey[..., None], 3, axis=-1)

    font = ImageFont.load_default(size=font_size)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    n_rows = len(columns[0])
    h = max(img.shape[0] for col in columns for img in col)
    w = max(img.shape[1] for col in columns for img in col)
    top = font_size + 8 if titles else 0
    left = int(max(measure.textlength(str(s), font=font) for s in row_labels)) + 10 if row_labels else 0
    shape = (top + n_rows * (h + gap) - gap, left + len(columns) * (w + gap) - gap, 3)
    grid = np.full(shape, 255, dtype=np.uint8)
    for c, col in enumerate(columns):
        for r, img in enumerate(col):
            y, x = top + r * (h + gap), left + c * (w + gap)
            grid[y : y + img.shape[0], x : x + img.shape[1]] = as_rgb(img)
    if titles or row_labels:
        picture = Image.fromarray(grid)
        draw = ImageDraw.Draw(picture)
        for c, title in enumerate(titles or ()):  # centred over its column
            x = left + c * (w + gap) + (w - measure.textlength(str(title), font=font)) / 2
            draw.text((max(x, left + c * (w + gap)), 3), str(title), fill=(0, 0, 0), font=font)
        for r, label in enumerate(row_labels or ()):  # at the middle of its row
            draw.text((4, top + r * (h + gap) + (h - font_size) / 2), str(label), fill=(0, 0, 0), font=font)
        grid = np.asarray(picture)
    return grid


class FusionGridHandler:
    """Save a labelled PNG grid of the first validation fusions at every evaluator run, and log it to MLflow.

    Rows are pairs, labelled ``pair 1``, ``pair 2``, ... (with their modality where the rows' modalities
    differ); columns, titled, are MRI | CT/PET/SPECT | average | max | laplacian | HKAFusion. PET and
    SPECT are shown in their pseudo-colour (the source file's chroma on each fused luminance, when the batch
    keeps the file names); the rest is grey. Switch it off (``enabled=False``) for data that must not leave the
    site: nothing is then written or logged.

    Args:
        output_dir: folder of the PNG files (``val_epoch_0001.png``, ...).
        mlflow_run: the evaluator's :class:`~hkafusion_monai.handlers.mlflow_run.MLflowRun`; its run receives the
            PNG under ``figures/``.
        max_pairs: rows of the grid.
        filename: file name, formatted with the evaluator's ``epoch``.
        enabled: False to write nothing.
        model_name: the title of the network's column.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        mlflow_run: MLflowRun | None = None,
        max_pairs: int = 4,
        filename: str = "val_epoch_{epoch:04d}.png",
        enabled: bool | str = True,
        model_name: str = "HKAFusion",
    ) -> None:
        self.output_dir = Path(output_dir)
        self.mlflow_run = mlflow_run
        self.max_pairs = max_pairs
        self.filename = filename
        self.enabled = as_bool(enabled, "log_figures")
        self.model_name = model_name
        self._images: list[np.ndarray] = []
        self._preds: list[np.ndarray] = []
        self._sources: list[tuple[str | None, str]] = []  # (colour source file, modality) per pair
        self.last_path: Path | None = None

    def attach(self, engine: Engine) -> None:
        if not self.enabled:
            return
        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._write)

    def _reset(self, engine: Engine) -> None:
        self._images, self._preds, self._sources = [], [], []

    def _collect(self, engine: Engine) -> None:
        if len(self._images) >= self.max_pairs:
            return
        output: Any = engine.state.output  # ignite types State.output as int | None
        items = output if isinstance(output, list) else [output]
        for item in items:
            image = item["image"]
            meta = getattr(image, "meta", None) or {}
            image, pred = torch.as_tensor(image).detach().cpu(), torch.as_tensor(item["pred"]).detach().cpu()
            if image.ndim == 3:  # decollated: one channel-first sample
                image, pred = image[None], pred[None]
                meta = {k: [v] for k, v in meta.items()}
            files, modalities = meta.get("other_filename"), meta.get("modality")
            for b in range(image.shape[0]):
                if len(self._images) < self.max_pairs:
                    self._images.append(image[b].float().numpy())
                    self._preds.append(pred[b, 0].float().numpy())
                    file = files[b] if isinstance(files, (list, tuple)) and b < len(files) else None
                    modality = modalities[b] if isinstance(modalities, (list, tuple)) and b < len(modalities) else ""
                    self._sources.append((None if file is None else str(file), str(modality or "other")))

    def _write(self, engine: Engine) -> None:
        if not self._images:
            return
        from PIL import Image

        stack = torch.from_numpy(np.stack(self._images))
        fused = {
            "average": stack.mean(1).numpy(),
            "max": stack.amax(1).numpy(),
            "laplacian": LaplacianPyramidFusion()(stack)[:, 0].numpy(),
            self.model_name: np.stack(self._preds),
        }
        columns: list[list[np.ndarray]] = [[img[0] for img in self._images], []]
        for _ in fused:
            columns.append([])
        for r, (img, (file, _)) in enumerate(zip(self._images, self._sources, strict=True)):
            rgb = load_display_image(file) if file else None
            if rgb is not None and (rgb.ndim != 3 or rgb.shape[:2] != img.shape[1:]):
                rgb = None  # grey source, or resized for the network: show the network's view
            columns[1].append(rgb if rgb is not None else img[1])
            for c, values in enumerate(fused.values(), start=2):
                columns[c].append(colourise(values[r], rgb) if rgb is not None else values[r])
        modalities = {m for _, m in self._sources}
        titles = ["MRI", "/".join(sorted(modalities)) if modalities else "other", *fused]
        # rows are pairs, named by their order (file names stay on the site) and, in a mixed grid, modality
        rows = [f"pair {r + 1}" + (f" {m}" if len(modalities) > 1 else "") for r, (_, m) in enumerate(self._sources)]
        grid = Image.fromarray(fusion_grid(columns, titles, row_labels=rows))
        self.output_dir.mkdir(parents=True, exist_ok=True)
        path = self.output_dir / self.filename.format(epoch=int(engine.state.epoch))
        atomic_write(path, lambda tmp: grid.save(tmp, format="PNG"), overwrite=True)
        self.last_path = path
        if self.mlflow_run is not None:
            self.mlflow_run.log_artifact(path, artifact_path="figures")
