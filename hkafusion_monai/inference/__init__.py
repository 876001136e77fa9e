"""Inference: the notebook API :func:`load_fuser`, and the pieces ``bundle/configs/inference.json`` declares,
one module per job:

- :mod:`~hkafusion_monai.inference.weights`: the checkpoint (the shipped one by default), loaded safely, and
  the model version;
- :mod:`~hkafusion_monai.inference.items`: the run's data items, their modality and outputs, the checks before
  any work, and the dataset that lets a batch run go on past a pair that cannot be fused;
- :mod:`~hkafusion_monai.inference.inferer`: :class:`FusionInferer` (2-D whole, volumes slice by slice, large
  planes in tiles), and the restoration it runs after the network;
- :mod:`~hkafusion_monai.inference.lesion_restoration`: :class:`RestoreLesionContrast`, hypointense-hot lesions the
  network let fade raised back to most of their PET/SPECT contrast, detected and bounded;
- :mod:`~hkafusion_monai.inference.pipeline`: ``inference.json``'s ``preprocessing``, ``inferer`` and
  ``postprocessing``, parsed for in-memory use (:func:`bundle_pipeline`);
- :mod:`~hkafusion_monai.inference.fuser`: :func:`load_fuser` and :class:`Fuser`;
- :mod:`~hkafusion_monai.inference.export`: ONNX export.

>>> from hkafusion_monai import load_fuser
>>> fuser = load_fuser(bundle_dir="bundle", task="mri_pet", weights="model.pt")   # doctest: +SKIP
>>> fused = fuser(mri, pet)                                                          # doctest: +SKIP

Every path runs the transforms that ``inference.json`` declares.
"""

from hkafusion_monai.inference.export import export_onnx
from hkafusion_monai.inference.fuser import Fuser, TaskFusers, load_fuser
from hkafusion_monai.inference.inferer import FusionInferer
from hkafusion_monai.inference.items import (
    ASSUMED_MODALITY,
    FAILED_KEY,
    InferenceDataset,
    check_outputs,
    dicom_modality,
    inference_items,
    task_of,
)
from hkafusion_monai.inference.lesion_restoration import RestoredHotSpot, RestoreLesionContrast
from hkafusion_monai.inference.pipeline import BundlePipeline, bundle_pipeline
from hkafusion_monai.inference.weights import NO_WEIGHTS_MESSAGE, bundle_version, load_weights, shipped_weights

__all__ = [
    "ASSUMED_MODALITY",
    "BundlePipeline",
    "FAILED_KEY",
    "NO_WEIGHTS_MESSAGE",
    "Fuser",
    "FusionInferer",
    "InferenceDataset",
    "TaskFusers",
    "RestoreLesionContrast",
    "RestoredHotSpot",
    "bundle_pipeline",
    "bundle_version",
    "check_outputs",
    "dicom_modality",
    "export_onnx",
    "inference_items",
    "load_fuser",
    "load_weights",
    "shipped_weights",
    "task_of",
]
