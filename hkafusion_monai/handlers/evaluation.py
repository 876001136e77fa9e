"""Side-by-side evaluation: several methods (HKAFusion and the pixel rules) scored by the same evaluation
pipeline, their per-pair metrics written as one CSV, their summary as JSON, and a self-contained HTML report
(tables with paired confidence intervals, an image grid, per-pair distributions)."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events

from hkafusion_monai.handlers.mlflow_run import MLflowRun
from hkafusion_monai.io.atomic import atomic_write
from hkafusion_monai.metrics import CHECK_NAMES, METRIC_NAMES
from hkafusion_monai.reports.html_report import colourise, load_display_image, render_report
from hkafusion_monai.utils import TASK_MODALITY, as_bool
from hkafusion_monai.utils.hashing import name_digest

__all__ = ["FusionEvaluationReport", "MethodMetricsCollector", "metric_display_name"]


def metric_display_name(key: str) -> str:
    """``"val_qabf"``, ``"test_average_qabf"`` -> ``"Qabf"``: the handler key's last part, spelt as in
    ``METRIC_NAMES``."""
    bare = key.rsplit("_", 1)[-1]
    for name in METRIC_NAMES + CHECK_NAMES:
        if name.lower() == bare.lower():
            return name
    return bare


def _write_atomic(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"), overwrite=True)


class FusionEvaluationReport:
    """Per-pair fusion metrics of several methods, written as ``metrics_per_pair.csv`` and ``summary.json``.

    Each method's evaluator gets a :class:`MethodMetricsCollector` (``report.collector(method)`` or from a
    config); after all evaluators ran, :meth:`write` writes both files (atomically) into ``output_dir`` and,
    given the evaluation's :class:`~hkafusion_monai.handlers.mlflow_run.MLflowRun`, logs them as artifacts and
    each method's means as metrics ``<split>_<method>_<metric>`` (``test_hkafusion_qabf``; the split from
    ``extra["split"]``).

    File names can carry patient names: unless ``log_names``, every pair is named ``pair_0001-<hash>`` (12 hex
    digits of the SHA-256 of its MRI file name) in the CSV, the JSON and the report, and the key from those
    names back to the files is written only to ``output_dir/pair_names.csv``, which is never logged to MLflow.

    Args:
        output_dir: folder of the two files (created).
        mlflow_run: the evaluator's :class:`~hkafusion_monai.handlers.mlflow_run.MLflowRun`, or None.
        extra: more fields for ``summary.json`` (e.g. the checkpoint and datalist).
        ours: the evaluated model's method name.
        peer_results: ``peer_results.json`` with the published peer means, or None.
        task: the task (the published peer's row, the grid's column title).
        grid_pairs: rows of the report's image grid.
        log_names: keep the pairs' file names in what is written and logged.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        mlflow_run: MLflowRun | None = None,
        extra: dict | None = None,
        ours: str = "hkafusion",
        peer_results: str | os.PathLike | None = None,
        task: str | None = None,
        grid_pairs: int = 4,
        log_names: bool | str = False,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.log_names = as_bool(log_names, "log_names")
        self.mlflow_run = mlflow_run
        self.extra = dict(extra or {})
        self.ours = ours
        self.peer = _published_peer(peer_results, task)
        self.grid_pairs = grid_pairs
        self.methods: dict[str, dict[str, Any]] = {}
        self.samples: dict[str, list[dict[str, Any]]] = {}

    def collector(self, method: str) -> MethodMetricsCollector:
        return MethodMetricsCollector(self, method)

    def add(self, method: str, pairs: Sequence[str], details: dict[str, np.ndarray]) -> None:
        """Record ``details[metric]`` = per-pair values (same order as ``pairs``) for ``method``."""
        for name, values in details.items():
            if len(values) != len(pairs):
                raise ValueError(f"{method}: {len(values)} values of {name} for {len(pairs)} pairs.")
        self.methods[method] = {"pairs": list(pairs), "details": details}

    def display_name(self, index: int, name: str) -> str:
        """The pair's name as written: its file name with ``log_names``, else ``pair_0001-<hash>``."""
        return name if self.log_names else f"pair_{index + 1:04d}-{name_digest(name)}"

    def add_samples(self, method: str, samples: list[dict[str, Any]]) -> None:
        """Record the first pairs of ``method`` for the image grid: ``{"pair", "image", "pred", "mri_file",
        "other_file"}`` with ``image`` ``(2, H, W)`` and ``pred`` ``(H, W)`` in [0, 1]."""
        self.samples[method] = samples[: self.grid_pairs]

    def grid(self) -> list[dict[str, Any]]:
        """Rows of the report's image grid: MRI | other | average | max | laplacian | ours, PET/SPECT in
        colour (a method that was not evaluated is left out)."""
        base = self.samples.get(self.ours) or next(iter(self.samples.values()), [])
        rows = []
        for i, sample in enumerate(base):
            image = np.asarray(sample["image"], dtype=np.float32)
            other_rgb = load_display_image(sample["other_file"]) if sample.get("other_file") else None
            if other_rgb is not None and (other_rgb.ndim != 3 or other_rgb.shape[:2] != image.shape[1:]):
                other_rgb = None  # grey source, or resized for the network: show the network's view
            row: dict[str, Any] = {"pair": self.display_name(i, sample["pair"]), "MRI": colourise(image[0], None)}
            row["other"] = other_rgb if other_rgb is not None else colourise(image[1], None)
            for column, method in (
                ("average", "average"),
                ("max", "max"),
                ("laplacian", "laplacian"),
                ("ours", self.ours),
            ):
                got = self.samples.get(method, [])
                row[column] = colourise(got[i]["pred"], other_rgb) if i < len(got) else None
            rows.append(row)
        return rows

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"methods": {}, **self.extra}
        for method, rec in self.methods.items():
            out["methods"][method] = {
                name: {"mean": float(np.mean(v)), "std": float(np.std(v)), "n": int(len(v))}
                for name, v in rec["details"].items()
            }
        return out

    def write(self) -> dict[str, str]:
        """Write the CSV, the JSON summary and the HTML report; return their paths."""
        if not self.methods:
            raise RuntimeError("FusionEvaluationReport.write: no method was evaluated.")
        self.output_dir.mkdir(parents=True, exist_ok=True)
        names = [n for n in METRIC_NAMES + CHECK_NAMES if any(n in r["details"] for r in self.methods.values())]
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["pair", "method", *names])
        for method, rec in self.methods.items():
            for i, pair in enumerate(rec["pairs"]):
                row = [f"{float(rec['details'][n][i]):.6g}" if n in rec["details"] else "" for n in names]
                writer.writerow([self.display_name(i, pair), method, *row])
        csv_path, json_path = self.output_dir / "metrics_per_pair.csv", self.output_dir / "summary.json"
        html_path = self.output_dir / "report.html"
        summary = self.summary()
        page = self.html()  # built first: a failure leaves none of the three files half-updated
        _write_atomic(csv_path, buf.getvalue())
        _write_atomic(json_path, json.dumps(summary, indent=2))
        _write_atomic(html_path, page)
        if not self.log_names:  # the local key from the written names back to the files; never logged
            first = next(iter(self.methods.values()))["pairs"]
            key = io.StringIO()
            csv.writer(key).writerows(
                [["pair", "mri_file"], *[[self.display_name(i, p), p] for i, p in enumerate(first)]]
            )
            _write_atomic(self.output_dir / "pair_names.csv", key.getvalue())

        run = self.mlflow_run
        if run is not None and run.active:
            split = str(self.extra.get("split", "test"))
            metrics = {
                f"{split}_{method}_{name}": stats["mean"]
                for method, per in summary["methods"].items()
                for name, stats in per.items()
            }
            run.log_metrics({k: float(v) for k, v in metrics.items() if np.isfinite(v)}, step=0)
            for path in (csv_path, json_path, html_path):
                run.log_artifact(path, artifact_path="evaluation")
        return {"csv": str(csv_path), "json": str(json_path), "html": str(html_path)}

    def html(self) -> str:
        """The self-contained HTML report (:func:`hkafusion_monai.reports.html_report.render_report`)."""
        first = next(iter(self.methods.values()))["pairs"]
        for method, rec in self.methods.items():
            if rec["pairs"] != first:  # the paired intervals compare pair i with pair i
                raise ValueError(f"FusionEvaluationReport: {method} scored other pairs, or in another order")
        methods = {m: rec["details"] for m, rec in self.methods.items()}
        if self.ours in methods:  # ours first, as the table's reference row
            methods = {self.ours: methods[self.ours], **{k: v for k, v in methods.items() if k != self.ours}}
        info = {k: v for k, v in self.extra.items() if isinstance(v, (str, int, float))}
        other = TASK_MODALITY.get(str(self.extra.get("task")), "other")
        return render_report(
            methods, self.ours, grid=self.grid(), peer=self.peer, info=info, column_titles={"other": other}
        )


def _published_peer(peer_results: str | os.PathLike | None, task: str | None) -> dict[str, float] | None:
    """CDDFuse_MIF's published means for ``task`` from ``peer_results.json`` (``None`` when unavailable)."""
    if not peer_results or not task or not Path(peer_results).is_file():
        return None
    values = json.loads(Path(peer_results).read_text()).get("published_metrics_from_README", {}).get("values", {})
    peer: dict[str, float] | None = values.get(task, {}).get("CDDFuse_MIF")
    return peer


class MethodMetricsCollector:
    """Attach to one method's evaluator: at its completion, hand the per-pair values of every metric handler
    (``engine.state.metric_details``; the fusion metric handlers keep them) and the pair names to the report.

    Pair names come from the batch's ``image`` metadata (``mri_filename``, set by ``StackPaird``), else the
    pair's index.
    """

    def __init__(self, report: FusionEvaluationReport, method: str) -> None:
        self.report = report
        self.method = method
        self._pairs: list[str] = []
        self._samples: list[dict[str, Any]] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect_names)
        engine.add_event_handler(Events.COMPLETED, self._hand_over)

    def _reset(self, engine: Engine) -> None:
        self._pairs, self._samples = [], []

    def _collect_names(self, engine: Engine) -> None:
        batch: Any = engine.state.batch  # ignite types State.batch as int | None
        image = batch["image"]
        meta = getattr(image, "meta", {}) if hasattr(image, "meta") else {}
        names, others = meta.get("mri_filename"), meta.get("other_filename")
        n = image.shape[0]
        start = len(self._pairs)
        if isinstance(names, (list, tuple)) and len(names) == n:
            self._pairs += [Path(str(p)).name for p in names]
        else:
            self._pairs += [f"pair_{i:04d}" for i in range(start, start + n)]
        output = engine.state.output
        pred = output.get("pred") if isinstance(output, dict) else None
        for b in range(n):
            if len(self._samples) >= self.report.grid_pairs or pred is None or pred.ndim != 4:
                break
            self._samples.append(
                {
                    "pair": self._pairs[start + b],
                    "image": torch.as_tensor(image[b]).detach().cpu().float().numpy(),
                    "pred": torch.as_tensor(pred[b, 0]).detach().cpu().float().numpy(),
                    "other_file": str(others[b]) if isinstance(others, (list, tuple)) and len(others) == n else None,
                }
            )

    def _hand_over(self, engine: Engine) -> None:
        details = {
            metric_display_name(key): torch.as_tensor(values).detach().cpu().reshape(-1).double().numpy()
            for key, values in (getattr(engine.state, "metric_details", None) or {}).items()
        }
        self.report.add(self.method, self._pairs, details)
        self.report.add_samples(self.method, self._samples)
