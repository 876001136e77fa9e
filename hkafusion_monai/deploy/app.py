"""The MONAI Deploy application: an MR series and a CT/PET/SPECT series in, a fused derived MR series out.

Operator graph (docs/deploy.md)::

    DICOMDataLoaderOperator
      |-> FusionSeriesSelectorOperator("MR")        -> DICOMSeriesToVolumeOperator -+
      |-> FusionSeriesSelectorOperator("secondary") -> DICOMSeriesToVolumeOperator -+-> FusionOperator
                                                                                      -> DICOMFusedSeriesWriterOperator

Run: ``python -m hkafusion_monai.deploy -i <dicom folder> -o <output folder> [-m <model.ts | model.pt | folder>]``
(the SDK's arguments; ``HOLOSCAN_INPUT_PATH``, ``HOLOSCAN_OUTPUT_PATH`` and ``HOLOSCAN_MODEL_PATH`` in a
MAP). ``HKAFUSION_RULES`` names a rules file other than the packaged ``selection_rules.json``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from monai.deploy.conditions import CountCondition
from monai.deploy.core import Application
from monai.deploy.operators.dicom_data_loader_operator import DICOMDataLoaderOperator
from monai.deploy.operators.dicom_series_to_volume_operator import DICOMSeriesToVolumeOperator

from hkafusion_monai.deploy.operators import (
    DICOMFusedSeriesWriterOperator,
    FusionOperator,
    FusionSeriesSelectorOperator,
    load_rules,
)
from hkafusion_monai.transforms.reader import FusionInputError

__all__ = ["BUNDLE_DIR", "HKAFusionDeployApp", "resolve_model"]

#: the bundle this package ships beside (a source checkout or an editable install)
BUNDLE_DIR = Path(__file__).resolve().parents[2] / "bundle"
_MODEL_NAMES = ("model.ts", "model.pt")

logger = logging.getLogger(__name__)


def resolve_model(model_path: str | os.PathLike | None) -> Path:
    """The model file to load: ``model_path`` itself if a file; ``model.ts`` or ``model.pt`` inside it if a
    folder (a MAP's ``/opt/holoscan/models``); else the bundle's ``models/model.ts`` or ``models/model.pt``.

    Raises:
        FileNotFoundError: none of these exists.
    """
    tried = []
    if model_path:
        path = Path(model_path)
        if path.is_file():
            return path
        tried.append(path)
        if path.is_dir():
            for name in _MODEL_NAMES:
                if (path / name).is_file():
                    return path / name
                tried.append(path / name)
    for name in _MODEL_NAMES:
        candidate = BUNDLE_DIR / "models" / name
        if candidate.is_file():
            return candidate
        tried.append(candidate)
    raise FileNotFoundError(
        "no HKAFusion model found; pass -m <model.ts | model.pt | folder>. Looked for: "
        + ", ".join(str(t) for t in tried)
    )


class HKAFusionDeployApp(Application):
    """Fuse an MR series with a CT/PET/SPECT series of the same study into a derived MR series.

    Args:
        argv: the SDK's command line (``-i``, ``-o``, ``-m``, ``-l``); default ``sys.argv``.
        rules: the selection rules file (default: ``HKAFUSION_RULES``, else the packaged file).
        task: the bundle task whose network config to use (``mri_pet`` by default; a TorchScript model needs
            none).
        device: default CUDA where there is one, else CPU.
    """

    def __init__(self, *args: Any, rules: str | os.PathLike | None = None, task: str = "mri_pet", device: str | None = None, **kwargs: Any) -> None:
        self.rules_path = rules or os.environ.get("HKAFUSION_RULES") or None
        self.task = task
        self.device = device or ("cuda:0" if torch.cuda.is_available() else "cpu")
        self.writer: DICOMFusedSeriesWriterOperator | None = None
        super().__init__(*args, **kwargs)

    def compose(self) -> None:
        from hkafusion_monai.inference import bundle_version, load_fuser

        app_context = Application.init_app_context(self.argv)
        input_folder = Path(app_context.input_path)
        output_folder = Path(app_context.output_path)
        if not input_folder.exists():
            raise FusionInputError(f"{input_folder}: input folder does not exist")
        rules = load_rules(self.rules_path)
        model = resolve_model(app_context.model_path)
        fuser = load_fuser(bundle_dir=BUNDLE_DIR, task=self.task, weights=model, device=self.device)
        version = bundle_version(BUNDLE_DIR / "configs" / "metadata.json")
        logger.info("HKAFusion %s: model %s on %s; input %s; output %s", version, model, self.device, input_folder, output_folder)

        # one pass over the input folder: the loader is the graph's source and would otherwise run again
        loader = DICOMDataLoaderOperator(self, CountCondition(self, 1), input_folder=input_folder, name="dicom_loader")
        selectors, volumes = {}, {}
        for role in ("MR", "secondary"):
            selectors[role] = FusionSeriesSelectorOperator(
                self, rules=rules, selection=role, input_folder=str(input_folder), name=f"select_{role}"
            )
            volumes[role] = DICOMSeriesToVolumeOperator(self, name=f"volume_{role}")
        fusion = FusionOperator(
            self,
            fuser=fuser,
            registration=rules["fusion"]["registration"],
            colour_series=bool(rules["fusion"]["colour_series"]),
            name="fusion",
        )
        self.writer = DICOMFusedSeriesWriterOperator(
            self, output_folder=output_folder, model_version=version, name="fused_series_writer"
        )
        for role, prefix in (("MR", "mri"), ("secondary", "other")):
            self.add_flow(loader, selectors[role], {("dicom_study_list", "dicom_study_list")})
            self.add_flow(
                selectors[role], volumes[role], {("study_selected_series_list", "study_selected_series_list")}
            )
            self.add_flow(volumes[role], fusion, {("image", f"{prefix}_image")})
            self.add_flow(selectors[role], fusion, {("study_selected_series_list", f"{prefix}_series")})
        self.add_flow(fusion, self.writer, {("fused", "fused")})
