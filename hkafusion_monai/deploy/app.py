"""The MONAI Deploy application: a study folder in, one fused derived MR series per CT, PET and SPECT series out.

Operator graph (docs/deploy.md)::

    StudyLoaderOperator -> FusionSeriesSelectorOperator -> FusionOperator -> DICOMFusedSeriesWriterOperator
                                                                               [-> DICOMSendOperator]

Run: ``python -m hkafusion_monai.deploy -i <study folder> -o <output folder> -m <model.ts | model.pt | folder>``
(``HOLOSCAN_INPUT_PATH``, ``HOLOSCAN_OUTPUT_PATH`` and ``HOLOSCAN_MODEL_PATH`` in a MAP; ``--help`` lists the
options). ``HKAFUSION_RULES`` (or ``--rules``) names a rules file other than the packaged
``selection_rules.json``.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import torch
from monai.deploy.conditions import CountCondition
from monai.deploy.core import Application

from hkafusion_monai.deploy.operators import (
    DICOMFusedSeriesWriterOperator,
    DICOMSendOperator,
    FusionOperator,
    FusionSeriesSelectorOperator,
    StudyLoaderOperator,
)
from hkafusion_monai.deploy.rules import load_rules
from hkafusion_monai.inference import TaskFusers, bundle_version, load_fuser
from hkafusion_monai.io.bundle import bundle_dir_of, default_bundle_dir
from hkafusion_monai.io.pacs import DEFAULT_CALLING_AE, DicomDestination
from hkafusion_monai.utils.errors import FusionInputError

__all__ = ["HKAFusionDeployApp", "configure_logging", "resolve_model"]

_MODEL_NAMES = ("model.ts", "model.pt")

logger = logging.getLogger("hkafusion_monai.deploy")


def configure_logging(level: str = "INFO") -> None:
    """The application's log: its own lines (``hkafusion_monai`` loggers) at ``level``, one plain line each, on
    stderr; the SDK's (it logs every rule it tries at INFO on the root logger), Holoscan's and pynetdicom's
    (which logs a refused association that the application reports itself) only at ``DEBUG``.

    The SDK configures the root logger again whenever it parses its arguments: call this after that."""
    debug = level == "DEBUG"
    logging.getLogger().setLevel(logging.DEBUG if debug else logging.CRITICAL)
    ours = logging.getLogger("hkafusion_monai")
    ours.setLevel(logging.WARNING if level == "WARN" else getattr(logging, level))
    ours.propagate = False
    for handler in list(ours.handlers):
        ours.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    ours.addHandler(handler)
    for name in ("monai.deploy", "pynetdicom", "holoscan"):
        logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.CRITICAL)


def resolve_model(model_path: str | os.PathLike | None) -> Path:
    """The model file to load: ``model_path`` itself if a file; ``model.ts`` or ``model.pt`` inside it (or in its
    ``models/``, a bundle folder) if a folder (a MAP's ``/opt/holoscan/models``); without one, the bundle's
    ``models/model.ts`` or ``models/model.pt`` when the package runs from a source checkout (an installed wheel
    ships no weights).

    Raises:
        FileNotFoundError: none of these exists (the message lists where it looked).
    """
    tried = []
    if model_path:
        path = Path(model_path)
        if path.is_file():
            return path
        tried.append(path)
        if path.is_dir():
            for candidate in [folder / name for folder in (path, path / "models") for name in _MODEL_NAMES]:
                if candidate.is_file():
                    return candidate
                tried.append(candidate)
    for name in _MODEL_NAMES:
        candidate = default_bundle_dir() / "models" / name
        if candidate.is_file():
            return candidate
        tried.append(candidate)
    raise FileNotFoundError(
        "no HKAFusion model found; pass -m <model.ts | model.pt | folder> (or HOLOSCAN_MODEL_PATH). Looked for: "
        + ", ".join(str(t) for t in tried)
    )


class HKAFusionDeployApp(Application):
    """Fuse the MR series of a study with each of its CT, PET and SPECT series (docs/deploy.md).

    Args:
        argv: the SDK's command line (``-i``, ``-o``, ``-m``, ``-l``, ...); default ``sys.argv``.
        rules: the selection rules file (default: ``HKAFUSION_RULES``, else the packaged file).
        send: ``"AE@host:port"``: send every written series there by C-STORE.
        calling_ae: this application's AE title when sending.
        overwrite: replace series folders of an earlier run.
        task: the bundle task whose network config a checkpoint (``.pt``) uses; a TorchScript model needs none.
        device: default CUDA where there is one, else CPU.
        log_level: see :func:`configure_logging` (``None``: leave the SDK's logging as it is).
    """

    def __init__(
        self,
        *args: Any,
        rules: str | os.PathLike | None = None,
        send: str | None = None,
        calling_ae: str = DEFAULT_CALLING_AE,
        overwrite: bool = False,
        task: str = "mri_pet",
        device: str | None = None,
        log_level: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.rules_path = rules or os.environ.get("HKAFUSION_RULES") or None
        self.calling_ae = calling_ae
        self.overwrite = overwrite
        self.task = task
        self.log_level = log_level
        self.device = device or ("cuda:0" if torch.cuda.is_available() else "cpu")
        self.writer: DICOMFusedSeriesWriterOperator | None = None
        self.sender: DICOMSendOperator | None = None
        self.model_version = "unknown"
        self.output_folder: Path | None = None
        self.destination: DicomDestination | None = None
        super().__init__(*args, **kwargs)
        if send:  # checked before any work; after the base class is set up, which its finaliser needs
            self.destination = DicomDestination.parse(send)

    def compose(self) -> None:
        app_context = Application.init_app_context(self.argv)
        if self.log_level is not None:
            configure_logging(self.log_level)  # the SDK has just configured its own
        input_folder = Path(app_context.input_path)
        self.output_folder = output_folder = Path(app_context.output_path)
        if not input_folder.is_dir():
            raise FusionInputError(f"{input_folder}: the input must be a folder holding one DICOM study")
        rules = load_rules(self.rules_path)
        model = resolve_model(app_context.model_path)
        # a bundle folder given as the model (or its models/ file): its inference.json's transforms
        bundle_dir = bundle_dir_of(app_context.model_path)

        # a labelled bar over each series' slices on a terminal; none in a pipeline's log
        def load(weights: str | os.PathLike, task: str) -> Any:
            return load_fuser(bundle_dir=bundle_dir, task=task, weights=weights, device=self.device, progress=None)

        # each pair with its task's own model where one lies beside the default (model_mri_ct.ts), else the joint
        fuser = TaskFusers(load(model, self.task), model, load)
        meta = bundle_dir / "configs" / "metadata.json" if bundle_dir is not None else None
        self.model_version = bundle_version(model if model.suffix == ".ts" else meta)
        logger.info("HKAFusion %s: model %s on %s", self.model_version, model, self.device)

        # one pass over the input folder: the loader is the graph's source and would otherwise run again
        loader = StudyLoaderOperator(self, CountCondition(self, 1), input_folder=input_folder, name="dicom_loader")
        selector = FusionSeriesSelectorOperator(self, rules=rules, input_folder=str(input_folder), name="select_pairs")
        self.writer = DICOMFusedSeriesWriterOperator(
            self,
            output_folder=output_folder,
            model_version=self.model_version,
            overwrite=self.overwrite,
            name="fused_series_writer",
        )
        fusion = FusionOperator(
            self,
            fuser=fuser,
            colour_series=rules["fusion"]["colour_series"],
            allow_patient_mismatch=rules["fusion"]["allow_patient_mismatch"],
            check_outputs=self.writer.check_targets,
            hot_spot_min_kept=rules["fusion"]["hot_spot_min_kept"],
            name="fusion",
        )
        self.add_flow(loader, selector, {("dicom_study_list", "dicom_study_list")})
        self.add_flow(selector, fusion, {("pairs", "pairs")})
        self.add_flow(fusion, self.writer, {("fused", "fused")})
        if self.destination is not None:
            self.sender = DICOMSendOperator(
                self, destination=self.destination, calling_ae=self.calling_ae, name="dicom_send"
            )
            self.add_flow(self.writer, self.sender, {("written", "written")})
