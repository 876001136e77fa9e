"""Inference: the notebook API :func:`load_fuser`, and the pieces ``bundle/configs/inference.json`` declares.

>>> from hkafusion_monai import load_fuser
>>> fuser = load_fuser(bundle_dir="bundle", task="mri_pet", weights="model.pt")   # doctest: +SKIP
>>> fused = fuser(mri, pet)                                                          # doctest: +SKIP

Both use the bundle's one preprocessing/postprocessing contract,
:mod:`hkafusion_monai.transforms.contract`, so a pair fuses to the same pixels through ``load_fuser``, the
inference workflow and the evaluation workflow.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor
from monai.inferers import Inferer, SliceInferer, SlidingWindowInferer
from tqdm import tqdm

from hkafusion_monai.io.bundle import default_bundle_dir
from hkafusion_monai.io.writers import output_name
from hkafusion_monai.utils import TASK_MODALITY, CheckpointError, CheckpointNotFoundError, as_bool
from hkafusion_monai.utils.hashing import file_sha256, inputs_summary
from hkafusion_monai.utils.tasks import DICOM_MODALITIES, modality_task
from hkafusion_monai.utils.weights import read_checkpoint, state_dict_of
from hkafusion_monai.transforms.contract import FusionPostprocessd, FusionPreprocessd, is_2d_path
from hkafusion_monai.transforms.intensity import CT_BRAIN_WINDOW

__all__ = [
    "NO_WEIGHTS_MESSAGE",
    "TASK_MODALITY",
    "Fuser",
    "FusionInferer",
    "bundle_version",
    "export_onnx",
    "file_sha256",
    "check_outputs",
    "dicom_modality",
    "inference_items",
    "modality_task",
    "task_of",
    "inputs_summary",
    "load_fuser",
    "load_weights",
    "shipped_weights",
]

_PLS_DIAGONAL = (-1.0, -1.0, 1.0, 1.0)  # voxel axes towards posterior, left, superior (RAS world)


#: the secondary modality assumed when nothing names it (see :func:`inference_items`)
ASSUMED_MODALITY = "PET"

logger = logging.getLogger(__name__)

NO_WEIGHTS_MESSAGE = (
    "no HKAFusion checkpoint at {path}. The bundle ships its trained weights as bundle/models/model.pt "
    "(docs/results.md); pass another checkpoint on the command line with --ckpt_path PATH/model.pt, in Python "
    "with load_fuser(weights='PATH/model.pt'). Any checkpoint of this network works: a state dict, or a "
    "CheckpointSaver file holding it under 'model'."
)


# ---------------------------------------------------------------------------------------------------------
# weights and metadata
# ---------------------------------------------------------------------------------------------------------
def load_weights(
    network: torch.nn.Module, path: str | os.PathLike | None, map_location: str | torch.device = "cpu"
) -> torch.nn.Module:
    """Load a checkpoint into ``network`` (strictly) and put it in eval mode; returns ``network``.

    ``path`` holds a state dict, or a ``CheckpointSaver`` dict with the state dict under ``"model"`` (the
    full training state). Loaded with ``torch.load(weights_only=True)``: no code runs from the file.

    Raises:
        CheckpointNotFoundError: no file at ``path`` (a FileNotFoundError; the message says how to pass one).
        CheckpointError: the file is unreadable, or holds no state dict of this network (a ValueError).
    """
    if path is None or not Path(path).is_file():
        raise CheckpointNotFoundError(NO_WEIGHTS_MESSAGE.format(path=path))
    state = state_dict_of(read_checkpoint(path, map_location), path)
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as e:
        detail = " ".join(str(e).split())[:300]
        raise CheckpointError(f"{path}: not a checkpoint of this network ({detail})") from None
    return network.eval()


def bundle_version(meta_file: str | os.PathLike | None = None) -> str:
    """The bundle version: ``version`` of a ``metadata.json``, or of the ``metadata.json`` a TorchScript
    export (``.ts``, ``ckpt_export``) carries inside; ``None``: the bundle this package runs with (the source
    checkout's, else the copy packaged in the wheel). ``"unknown"`` when the file is missing or unreadable."""
    path = Path(meta_file) if meta_file is not None else default_bundle_dir() / "configs" / "metadata.json"
    try:
        if path.suffix == ".ts":
            extra = {"metadata.json": ""}
            torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
            text = extra["metadata.json"]
        else:
            text = path.read_text()
        return str(json.loads(text).get("version", "unknown"))
    except (OSError, ValueError, RuntimeError):
        return "unknown"


# ---------------------------------------------------------------------------------------------------------
# the workflow's data items and outputs
# ---------------------------------------------------------------------------------------------------------
def inference_items(
    mri: str | None = None,
    other: str | None = None,
    datalist: str | None = None,
    split: str = "test",
    task: str | None = None,
    modality: str | None = None,
    output_dir: str | os.PathLike = ".",
    output_format: str = "auto",
) -> list[dict[str, Any]]:
    """The data items of an inference run: one pair (``mri`` and ``other`` paths) or a datalist's ``split``.

    Each item gets ``"output"``: ``<output_dir>/<MRI name>_fused.png`` (2-D) or ``..._fused.nii.gz``
    (volume) unless the datalist item names one, and ``"modality"`` (``CT``, ``PET`` or ``SPECT``), from the
    first that gives one: ``modality``; the item's own (datalist); the ``Modality`` of a DICOM ``other``
    series; ``task``. When none does (a 2-D pair or NIfTI volumes and no ``--task``), PET is assumed and a
    warning says so: the modality decides how a volume is scaled, and what the run records as its task.

    With ``output_format="dicom"`` every pair must be two DICOM series folders; the output is a derived
    series folder ``<output_dir>/<MRI name>_fused`` and the items keep the folders as ``"mri_series"`` and
    ``"other_series"`` for the writer.

    Raises:
        ValueError: neither or both of a pair and a datalist, half a pair, or DICOM output for inputs that
            are not DICOM series folders.
        FileNotFoundError: an input path that does not exist.
    """
    from hkafusion_monai.io.writers import OUTPUT_FORMATS

    if output_format not in OUTPUT_FORMATS:
        raise ValueError(f"output_format must be one of {OUTPUT_FORMATS}, got {output_format!r}")
    if (mri is None) != (other is None):
        raise ValueError("give both --mri PATH and --other PATH (or a --datalist)")
    if mri is not None and datalist is not None:
        raise ValueError("give either a pair (--mri, --other) or a --datalist, not both")
    if mri is None and datalist is None:
        raise ValueError("nothing to fuse: give --mri PATH --other PATH, or --datalist PATH [--split test]")
    if task is not None and task not in TASK_MODALITY:
        raise ValueError(f"unknown task {task!r}; use one of {sorted(TASK_MODALITY)}")
    if datalist is not None:
        from hkafusion_monai.data import load_fusion_datalist

        items = load_fusion_datalist(datalist, split)
        if not items:
            raise ValueError(f"{datalist}: the {split!r} list is empty")
    else:
        items = [{"mri": str(mri), "other": str(other)}]
    out = []
    for item in items:
        item = dict(item)
        for key in ("mri", "other"):
            if not Path(str(item[key])).exists():
                raise FileNotFoundError(f"{item[key]}: missing {key} input (no such file or directory)")
        kind = "2d" if is_2d_path(item["mri"]) else "volume"
        if is_2d_path(item["other"]) != (kind == "2d"):
            raise ValueError(
                f"{item['mri']} and {item['other']}: a pair is two 2-D images or two volumes, not one of each"
            )
        if modality is not None:
            item["modality"] = modality
        elif "modality" not in item:
            found = dicom_modality(item["other"]) if Path(str(item["other"])).is_dir() else None
            if found is None and task is None:
                found = ASSUMED_MODALITY
                logger.warning(
                    "%s: no modality for the secondary image (no --task, --modality, datalist field or DICOM "
                    "Modality); assuming %s (task %s)", Path(str(item["other"])).name, found, modality_task(found),
                )
            item["modality"] = found or TASK_MODALITY[task]
        if output_format == "dicom":
            not_series = [str(item[k]) for k in ("mri", "other") if not Path(str(item[k])).is_dir()]
            if not_series:
                raise ValueError(
                    f"DICOM output needs DICOM series folders as inputs; not a folder: {', '.join(not_series)}"
                )
            item["mri_series"], item["other_series"] = str(item["mri"]), str(item["other"])
            kind = "dicom"
        item["output"] = str(Path(output_dir) / item["output"]) if "output" in item else str(
            Path(output_dir) / output_name(item["mri"], kind)
        )
        out.append(item)
    return out


def dicom_modality(folder: str | os.PathLike) -> str | None:
    """``CT``, ``PET`` or ``SPECT`` from the ``Modality`` of the first DICOM file found in ``folder`` (CT, PT,
    NM), or None when there is none or it is another modality."""
    import pydicom

    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Modality"])
            except Exception:  # not DICOM: look further
                continue
            found = DICOM_MODALITIES.get(str(ds.get("Modality", "")))
            return found if found in TASK_MODALITY.values() else None
    return None


def task_of(items: Sequence[Mapping[str, Any]]) -> str:
    """The task an inference run performed, from its items' modalities (``"mri_ct+mri_pet"`` for a mix); what
    the run records in MLflow."""
    tasks = sorted({modality_task(str(item["modality"])) for item in items if item.get("modality")})
    return "+".join(tasks) or "unknown"


def check_outputs(items: Sequence[Mapping[str, Any]], overwrite: bool | str = False) -> list[str]:
    """Fail before any work when two items would write one file, or an output exists and not ``overwrite``.

    Returns:
        the output paths.
    """
    paths = [str(Path(item["output"]).resolve()) for item in items]
    seen: dict[str, int] = {}
    for i, p in enumerate(paths):
        if p in seen:
            raise ValueError(
                f"pairs {seen[p]} and {i} ({items[seen[p]]['mri']}, {items[i]['mri']}) would both write {p}; "
                "give the items distinct 'output' names"
            )
        seen[p] = i
    if not as_bool(overwrite):
        existing = [p for p in paths if os.path.exists(p)]
        if existing:
            shown = "\n  ".join(existing[:10]) + ("\n  ..." if len(existing) > 10 else "")
            raise FileExistsError(
                f"{len(existing)} output(s) exist and are kept; pass --overwrite true to replace them:\n  {shown}"
            )
    return paths


# ---------------------------------------------------------------------------------------------------------
# the inferer
# ---------------------------------------------------------------------------------------------------------
class FusionInferer(Inferer):
    """Run the network on a 2-D batch ``(B, 2, H, W)`` at once, or on a volume batch ``(B, 2, H, W, D)``
    slice by slice along the last axis (axial slices of the ``PLS`` volume chain) with
    ``monai.inferers.SliceInferer``; returns ``(B, 1, H, W)`` or ``(B, 1, H, W, D)``.

    Planes larger than ``max_pixels`` are fused in overlapping tiles with MONAI's ``SlidingWindowInferer``
    (``tile_size``, 25 % overlap, Gaussian blending, one tile per call), so memory stays bounded whatever the
    image size (a 4096 x 4096 pair needed 13.7 GB whole; a 1024 x 1024 tile about 1.3 GB). The network's channel attention (MDTA) pools over the whole
    plane, so a tiled result differs slightly from a whole-plane one: docs/inference.md gives the measured
    difference.

    Args:
        sw_batch_size: slices (or tiles) per network call.
        progress: a labelled progress bar over a volume's slices (tqdm).
        max_pixels: the largest plane (H x W) fused whole.
        tile_size: the tile side for larger planes (a multiple of 32).
    """

    def __init__(
        self, sw_batch_size: int = 8, progress: bool = False, max_pixels: int = 1024 * 1024, tile_size: int = 1024
    ) -> None:
        super().__init__()
        self.sw_batch_size = sw_batch_size
        self.progress = as_bool(progress, "progress")
        self.max_pixels = int(max_pixels)
        self.tile_size = int(tile_size)

    def _plane(self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any, **kwargs: Any):
        if inputs.shape[-2] * inputs.shape[-1] <= self.max_pixels:
            return network(inputs, *args, **kwargs)
        tiler = SlidingWindowInferer(
            roi_size=(self.tile_size, self.tile_size),
            sw_batch_size=1,  # one tile at a time: the memory bound
            overlap=0.25,
            mode="gaussian",
            progress=self.progress,
        )
        return tiler(inputs, network, *args, **kwargs)

    def __call__(self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any, **kwargs: Any):
        if inputs.ndim == 4:
            return self._plane(inputs, network, *args, **kwargs)
        if inputs.ndim != 5:
            raise ValueError(f"FusionInferer: expected (B, 2, H, W) or (B, 2, H, W, D), got {tuple(inputs.shape)}")
        slicer = SliceInferer(
            spatial_dim=2,
            roi_size=tuple(int(s) for s in inputs.shape[2:4]),
            sw_batch_size=self.sw_batch_size,
            progress=False,  # MONAI's bar counts unlabelled slice batches; this one counts labelled slices
            cache_roi_weight_map=False,
        )
        depth = int(inputs.shape[0] * inputs.shape[-1])
        with tqdm(total=depth, desc="fusing slices", unit="slice", leave=False, disable=not self.progress) as bar:

            def fuse(x: torch.Tensor) -> torch.Tensor:
                out = self._plane(x, network, *args, **kwargs)
                bar.update(int(x.shape[0]))
                return out

            return slicer(inputs, fuse)


# ---------------------------------------------------------------------------------------------------------
# the notebook API
# ---------------------------------------------------------------------------------------------------------
def _as_array(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array or a torch tensor, got {type(x).__name__}")
    if x.dtype.kind not in "uif":
        raise TypeError(f"{name}: dtype {x.dtype} is not supported; give integer or float intensities")
    if x.size == 0:
        raise ValueError(f"{name}: empty array (shape {x.shape})")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        first = tuple(int(v) for v in np.argwhere(~np.isfinite(x))[0])
        n_nan, n_inf = int(np.isnan(x).sum()), int(np.isinf(x).sum())
        raise ValueError(f"{name}: {n_nan} NaN and {n_inf} inf value(s), the first at {first}")
    return x


def _bit_depth_max(x: np.ndarray, name: str) -> float:
    """The full-white value of a 2-D array, as the PNG reader gives it for a file of that type."""
    if x.dtype.kind == "f":
        lo, hi = float(x.min()), float(x.max())
        if lo < 0 or hi > 1:
            raise ValueError(
                f"{name}: float 2-D images must lie in [0, 1] (got [{lo:g}, {hi:g}]), like a float TIFF; "
                "scale them, or pass the uint8/uint16 pixels as read from the file"
            )
        return 1.0
    if x.dtype.kind == "i" and int(x.min()) < 0:
        raise ValueError(f"{name}: negative pixel values (min {int(x.min())}); 2-D inputs must be >= 0")
    return float(np.iinfo(x.dtype).max)


def _is_2d_colour(x: np.ndarray) -> bool:
    # a (H, W, 3|4) uint8 array is a picture, never a 3- or 4-slice volume
    return x.ndim == 3 and x.shape[-1] in (3, 4) and x.dtype == np.uint8


class Fuser:
    """Fuse an MRI with a CT/PET/SPECT image or volume: ``fused = fuser(mri, other)``.

    Made by :func:`load_fuser`. Inputs are raw intensities, never modified:

    - 2-D: ``mri`` ``(H, W)`` (or ``(H, W, 3)`` grey-as-RGB uint8), ``other`` ``(H, W)`` grey or
      ``(H, W, 3)`` RGB (pseudo-colour PET/SPECT). Integer arrays are divided by their type's maximum
      (255, 65535), as the file reader does; float arrays must lie in [0, 1].
    - volumes: ``mri`` and ``other`` ``(H, W, D)`` on one grid, fused slice by slice along the last axis;
      each is scaled by its modality over the whole volume (MRI, PET, SPECT percentiles; CT the HU window).

    Output: grey ``(H, W)`` / ``(H, W, D)``, or RGB ``(H, W, 3)`` with the colour re-attached when
    ``other`` was RGB (unless ``colour=False``). uint8 in (the MRI's dtype) gives uint8 out (0..255, the one
    quantisation :func:`hkafusion_monai.metrics.quantise`); anything else gives float in [0, 1], in the
    MRI's float dtype (float32 for integer volumes). With ``stretch``, the fused luminance is min-max
    stretched to [0, 1] per image or per volume (:func:`~hkafusion_monai.transforms.contract.min_max_stretch`).
    """

    def __init__(
        self,
        network: torch.nn.Module,
        task: str = "mri_pet",
        device: str | torch.device = "cpu",
        ct_window: Sequence[float] = CT_BRAIN_WINDOW,
        sw_batch_size: int = 8,
        stretch: bool = False,
    ) -> None:
        if task not in TASK_MODALITY:
            raise ValueError(f"unknown task {task!r}; use one of {sorted(TASK_MODALITY)}")
        self.network = network.to(device).eval()
        self.task = task
        self.modality = TASK_MODALITY[task]
        self.device = torch.device(device)
        self.stretch = as_bool(stretch, "stretch")
        self.preprocess = FusionPreprocessd(ct_window=ct_window, allow_blank=True)
        self.inferer = FusionInferer(sw_batch_size=sw_batch_size)

    def _items(self, mri: np.ndarray, other: np.ndarray) -> dict[str, Any]:
        """The data item of the contract's array path: ``(C, H, W)`` images or ``(1, H, W, D)`` volumes."""
        if _is_2d_colour(mri) or mri.ndim == 2:
            for name, x in (("mri", mri), ("other", other)):
                if x.ndim == 3 and x.shape[-1] == 4:
                    raise ValueError(
                        f"{name}: RGBA image {x.shape}; the alpha channel is not supported, give RGB or grey"
                    )
                if not (x.ndim == 2 or (x.ndim == 3 and x.shape[-1] == 3)):
                    raise ValueError(f"{name}: shape {x.shape}; a 2-D image is (H, W) grey or (H, W, 3) RGB")
            if mri.shape[:2] != other.shape[:2]:
                raise ValueError(f"shape mismatch: mri is {mri.shape[:2]} (H, W) but other is {other.shape[:2]}")
            item: dict[str, Any] = {"modality": self.modality}
            for name, x in (("mri", mri), ("other", other)):
                chw = x[None] if x.ndim == 2 else np.moveaxis(x, -1, 0)
                meta = {"filename_or_obj": f"<{name} array>", "bit_depth_max": _bit_depth_max(x, name)}
                item[name] = MetaTensor(torch.from_numpy(np.array(chw, dtype=np.float32)), meta=meta)
            return item
        if mri.ndim != 3 or other.ndim != 3:
            raise ValueError(
                f"mri {mri.shape} and other {other.shape}: expected 2-D images (H, W) / (H, W, 3) or "
                "3-D volumes (H, W, D)"
            )
        if mri.shape != other.shape:
            raise ValueError(
                f"shape mismatch: mri is {mri.shape} but other is {other.shape}; volumes must share a grid"
            )
        # an affine with the chain's own axis codes (PLS): the orientation step and the resampling are no-ops
        affine = torch.diag(torch.tensor(_PLS_DIAGONAL, dtype=torch.float64))
        item = {"modality": self.modality}
        for name, x in (("mri", mri), ("other", other)):
            vol = torch.from_numpy(np.array(x, dtype=np.float32))[None]
            meta = {"filename_or_obj": f"<{name} array>", "original_affine": affine.numpy().copy()}
            item[name] = MetaTensor(vol, affine=affine.clone(), meta=meta)
        return item

    @torch.no_grad()
    def __call__(self, mri: Any, other: Any, colour: bool = True) -> np.ndarray:
        """Fuse one pair; see the class docstring for shapes and types.

        Args:
            mri: the MRI image or volume.
            other: the CT, PET or SPECT image or volume.
            colour: re-attach the colour of an RGB ``other``; ``False`` returns the fused luminance.

        Raises:
            TypeError: not an array, or a non-numeric dtype.
            ValueError: empty, NaN/inf, RGBA, wrong dimensions, mismatched shapes, out-of-range values.
        """
        mri, other = _as_array(mri, "mri"), _as_array(other, "other")
        data = self.preprocess(self._items(mri, other))
        image = data["image"]
        pred = self.inferer(image.as_tensor()[None].to(self.device), self.network)[0]
        uint8 = mri.dtype == np.uint8
        data["pred"] = pred
        out = FusionPostprocessd("pred", colour=colour, uint8=uint8, stretch=self.stretch)(data)["pred"]
        arr = out.as_tensor().numpy() if isinstance(out, MetaTensor) else np.asarray(out)
        arr = arr[0] if arr.shape[0] == 1 else np.moveaxis(arr, 0, -1)  # (H, W[, D]) or (H, W, 3)
        if not uint8:
            arr = arr.astype(mri.dtype if mri.dtype.kind == "f" else np.float32, copy=False)
        return np.ascontiguousarray(arr)

    @torch.no_grad()
    def fuse_volumes(
        self,
        mri: MetaTensor,
        other: MetaTensor,
        modality: str | None = None,
        register: bool | str = "auto",
        return_other: bool = False,
        allow_patient_mismatch: bool = False,
    ) -> MetaTensor | tuple[MetaTensor, MetaTensor]:
        """Fuse two volumes on their own grids: the result lies on the MRI's grid and axes.

        The contract's volume chain (orientation, per-modality scaling, optional rigid registration, the
        overlap check, resampling of ``other`` onto the MRI grid), then the network slice by slice, then the
        MRI's own axes back. This is what the MONAI Deploy application and DICOM output run.

        Args:
            mri: ``(1, X, Y, Z)`` raw MRI intensities with its RAS ``affine``.
            other: ``(1, X', Y', Z')`` raw CT (HU), PET or SPECT with its RAS ``affine``.
            modality: ``"CT"``, ``"PET"`` or ``"SPECT"`` (default: the task's).
            register: rigidly register ``other`` to the MRI first: ``"auto"`` (when the frames of reference
                differ, as the Deploy application does), ``True`` or ``False``.
            return_other: also return the scaled ``other`` as resampled onto the MRI grid (for a colour
                rendering).
            allow_patient_mismatch: fuse volumes whose PatientIDs differ (refused by default).

        Returns:
            float32 ``(1, X, Y, Z)`` in [0, 1] with the MRI's affine (and, with ``return_other``, the other
            volume on the same grid).

        Raises:
            ValueError: not ``(1, X, Y, Z)`` MetaTensors, NaN/inf; ``RefusedPairError`` (a ValueError): two
                patients, or volumes that do not overlap enough in space.
        """
        item: dict[str, Any] = {
            "modality": modality or self.modality,
            "register": register,
            "allow_patient_mismatch": allow_patient_mismatch,
        }
        for name, vol in (("mri", mri), ("other", other)):
            if not isinstance(vol, MetaTensor) or vol.ndim != 4 or vol.shape[0] != 1:
                raise ValueError(
                    f"{name}: expected a (1, X, Y, Z) MetaTensor with an affine, got {type(vol).__name__} "
                    f"{tuple(getattr(vol, 'shape', ()))}"
                )
            if not torch.isfinite(vol.as_tensor()).all():
                raise ValueError(f"{name} ({vol.meta.get('filename_or_obj', 'volume')}): NaN or infinite values")
            vol = vol.clone().float()
            vol.meta.setdefault("original_affine", vol.affine.numpy().copy())
            vol.meta.setdefault("filename_or_obj", f"<{name} volume>")
            item[name] = vol
        data = self.preprocess(item)
        pred = self.inferer(data["image"].as_tensor()[None].to(self.device), self.network)[0]
        data["pred"] = pred
        if return_other:
            data["other_on_mri"] = data["image"].as_tensor()[1:2]
        post = FusionPostprocessd("pred", colour=False, uint8=False, stretch=self.stretch)(data)
        if return_other:
            post = FusionPostprocessd("other_on_mri", colour=False, uint8=False)(post)
        return (post["pred"], post["other_on_mri"]) if return_other else post["pred"]



def shipped_weights(bundle_dir: str | os.PathLike | None, task: str) -> Path:
    """The bundle's weights for ``task``: ``models/model_<task>.pt`` when a task-specific model is shipped,
    else ``models/model.pt`` (the joint model trained on all three tasks). ``bundle_dir=None``: the bundle
    this package runs with (an installed wheel ships no weights: pass them)."""
    models = Path(bundle_dir if bundle_dir is not None else default_bundle_dir()) / "models"
    specific = models / f"model_{task}.pt"
    return specific if specific.is_file() else models / "model.pt"


def load_fuser(
    bundle_dir: str | os.PathLike | None = None,
    task: str = "mri_pet",
    weights: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    config_file: str | os.PathLike | None = None,
    stretch: bool = False,
) -> Fuser:
    """The notebook API: a :class:`Fuser` with the bundle's network and checkpoint.

    Args:
        bundle_dir: the bundle folder (its ``configs/inference.json`` defines the network); default the
            bundle this package runs with: the source checkout's ``bundle/``, else the configs packaged in the
            installed wheel (:func:`hkafusion_monai.io.bundle.default_bundle_dir`).
        task: ``"mri_ct"``, ``"mri_pet"`` or ``"mri_spect"`` (the other image's modality, for volume scaling).
        weights: a checkpoint (a state dict, or a ``CheckpointSaver`` file with ``"model"``), or a TorchScript
            ``.ts`` export, which needs no config (the network, and the ``inference.json`` settings it was
            exported with, travel inside it); default :func:`shipped_weights` (``models/model_<task>.pt`` if
            shipped, else the joint ``models/model.pt``).
        device: default CUDA when available, else CPU.
        config_file: the config defining ``network_def``; default ``<bundle_dir>/configs/inference.json``.
        stretch: min-max stretch each fused image (per volume for volumes) to the full range, as the peers'
            test code does (docs/results.md).

    Raises:
        CheckpointNotFoundError: no checkpoint at ``weights`` (a FileNotFoundError; the message says how to
            pass one).
        CheckpointError: a file that is not a readable checkpoint or TorchScript model (named).
        FileNotFoundError: a checkpoint without the inference config that defines its network.
    """
    bundle_dir = Path(bundle_dir) if bundle_dir is not None else default_bundle_dir()
    if weights is None:
        weights = shipped_weights(bundle_dir, task)
    if not Path(weights).is_file():
        raise CheckpointNotFoundError(NO_WEIGHTS_MESSAGE.format(path=weights))
    device = torch.device(device or ("cuda:0" if torch.cuda.is_available() else "cpu"))
    if str(weights).endswith(".ts"):  # a TorchScript export (ckpt_export): the network travels with its weights
        extra = {"inference.json": ""}  # and the settings it was exported with
        try:
            network = torch.jit.load(str(weights), map_location="cpu", _extra_files=extra).eval()
        except (RuntimeError, ValueError, OSError, EOFError) as e:
            detail = " ".join(str(e).split()).split(". ")[0][:120]  # torch's first sentence names the fault
            raise CheckpointError(
                f"{weights}: not a readable TorchScript model (empty, truncated or another kind of file: {detail})"
            ) from None
        try:
            ct_window = json.loads(extra["inference.json"] or "{}").get("ct_window", CT_BRAIN_WINDOW)
        except (ValueError, AttributeError):
            ct_window = CT_BRAIN_WINDOW
        if not (isinstance(ct_window, (list, tuple)) and len(ct_window) == 2):
            ct_window = CT_BRAIN_WINDOW
        ct_window = [float(v) for v in ct_window]
    else:
        config = Path(config_file or bundle_dir / "configs" / "inference.json")
        if not config.is_file():
            raise FileNotFoundError(
                f"{config}: no inference config defining the network for the checkpoint {weights}; pass "
                "bundle_dir= or config_file=, or a TorchScript export (.ts), which needs none"
            )
        parser = ConfigParser()
        parser.read_config(str(config))
        network = parser.get_parsed_content("network_def", instantiate=True)
        load_weights(network, weights, map_location="cpu")
        ct_window = parser.get("ct_window", list(CT_BRAIN_WINDOW))
    return Fuser(network, task=task, device=device, ct_window=ct_window, stretch=stretch)


def export_onnx(
    network: torch.nn.Module,
    filepath: str | os.PathLike,
    example_size: Sequence[int] = (64, 64),
    dynamic: bool = True,
    overwrite: bool = False,
) -> Path:
    """Export the network to ONNX with ``torch.onnx.export(..., dynamo=True)`` (optional extra
    ``pip install -e ".[onnx]"``), input ``image`` ``(1, 2, H, W)``, output ``pred`` ``(1, 1, H, W)``.

    With ``dynamic``, H and W are free multiples of 32 (the network's own padding to 32 is then a no-op;
    pad other sizes before calling the ONNX model); otherwise the model is fixed to ``example_size``. The
    TorchScript-based exporter cannot export the re-parameterised depthwise kernel, hence dynamo. Written
    atomically.
    """
    from hkafusion_monai.io.writers import atomic_write

    network = network.eval()
    h, w = (int(s) for s in example_size)
    if dynamic and (h % 32 or w % 32):
        raise ValueError(f"example_size {tuple(example_size)}: a dynamic export needs multiples of 32")
    example = torch.rand(1, 2, h, w)
    dims = None
    if dynamic:
        h32, w32 = torch.export.Dim("h32", min=1, max=128), torch.export.Dim("w32", min=1, max=128)
        dims = {"image": {2: 32 * h32, 3: 32 * w32}}

    def write(tmp: str) -> None:
        torch.onnx.export(
            network, (example,), tmp, input_names=["image"], output_names=["pred"], dynamo=True, dynamic_shapes=dims
        )

    return atomic_write(filepath, write, overwrite)
