"""The notebook API: :func:`load_fuser` and the :class:`Fuser` it returns.

>>> from hkafusion_monai import load_fuser
>>> fuser = load_fuser(bundle_dir="bundle", task="mri_pet", weights="model.pt")   # doctest: +SKIP
>>> fused = fuser(mri, pet)                                                          # doctest: +SKIP

It runs the ``preprocessing``, ``inferer`` and ``postprocessing`` that the bundle's ``inference.json`` declares
(:func:`~hkafusion_monai.inference.pipeline.bundle_pipeline`), so a pair fuses to the same pixels through
``load_fuser``, the inference workflow and the Deploy application, and an edit in the JSON changes all three.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor
from monai.transforms import Compose

from hkafusion_monai.inference.inferer import FusionInferer
from hkafusion_monai.inference.lesion_restoration import RestoreLesionContrast
from hkafusion_monai.inference.pipeline import bundle_pipeline, inference_config
from hkafusion_monai.inference.weights import NO_WEIGHTS_MESSAGE, load_weights, shipped_weights
from hkafusion_monai.io.bundle import default_bundle_dir
from hkafusion_monai.transforms.contract import VOLUME_AXCODES, FusionPostprocessd
from hkafusion_monai.transforms.geometry import axcodes_affine
from hkafusion_monai.transforms.intensity import CT_BRAIN_WINDOW
from hkafusion_monai.utils import CheckpointError, CheckpointNotFoundError, as_bool
from hkafusion_monai.utils.tasks import modality_of_task, modality_task

__all__ = ["Fuser", "TaskFusers", "load_fuser"]


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
    quantisation :func:`hkafusion_monai.utils.quantise`); anything else gives float in [0, 1], in the
    MRI's float dtype (float32 for integer volumes). With ``stretch``, the fused luminance is min-max
    stretched to [0, 1] per image or per volume (:func:`~hkafusion_monai.transforms.contract.min_max_stretch`).

    The transforms and the inferer are the ``preprocessing``, ``inferer`` and ``postprocessing`` of the bundle's
    ``inference.json`` (:func:`~hkafusion_monai.inference.pipeline.bundle_pipeline`), with its loaders and
    writers left out; ``ct_window``, ``sw_batch_size``, ``stretch`` and ``progress`` set those config values
    (``None``: the config's own).

    Args:
        network: the fusion network, ``(B, 2, H, W)`` -> ``(B, 1, H, W)``.
        task: ``"mri_ct"``, ``"mri_pet"`` or ``"mri_spect"``.
        device: where the network runs.
        ct_window: CT ``(level, width)`` in HU for volumes.
        sw_batch_size: slices per network call for volumes.
        stretch: min-max stretch the fused luminance.
        progress: a labelled bar over a volume's slices (``None``: only on a terminal).
        config_file: the inference config to read; default the bundle's (``load_fuser``'s ``bundle_dir``).
        restoration: the step after the network on PET/SPECT fusions, which raises hot spots over a darker MRI
            that the network let fade (:class:`~hkafusion_monai.inference.RestoreLesionContrast`): ``None``, as
            the config says (its ``restore_lesions``, off in the bundle); ``True``, the config's restoration
            switched on; ``False``, off; or one of your own.
    """

    def __init__(
        self,
        network: torch.nn.Module,
        task: str = "mri_pet",
        device: str | torch.device = "cpu",
        ct_window: Sequence[float] | None = None,
        sw_batch_size: int | None = None,
        stretch: bool = False,
        progress: bool | None = False,
        config_file: str | os.PathLike | None = None,
        restoration: RestoreLesionContrast | bool | None = None,
    ) -> None:
        self.modality = modality_of_task(task)
        self.network = network.to(device).eval()
        self.task = task
        self.device = torch.device(device)
        overrides: dict[str, Any] = {"stretch": as_bool(stretch, "stretch"), "progress": progress}
        if ct_window is not None:
            overrides["ct_window"] = [float(v) for v in ct_window]
        if sw_batch_size is not None:
            overrides["sw_batch_size"] = int(sw_batch_size)
        if isinstance(restoration, bool):
            overrides["restore_lesions"] = restoration
        self.pipeline = bundle_pipeline(config_file, **overrides)
        if isinstance(restoration, RestoreLesionContrast) and isinstance(self.pipeline.inferer, FusionInferer):
            self.pipeline.inferer.restoration = restoration
        self._outputs: dict[tuple[bool, bool], Compose] = {}

    def postprocess(self, data: dict, colour: bool, uint8: bool) -> dict:
        """The config's postprocessing of ``data["pred"]``, its ``FusionPostprocessd`` set to this call's
        ``colour`` and ``uint8`` (the notebook API returns what the input's type asks for)."""
        key = (bool(colour), bool(uint8))
        if key not in self._outputs:
            steps = []
            for t in self.pipeline.postprocessing.transforms:
                if isinstance(t, FusionPostprocessd):
                    t = copy.copy(t)
                    t.colour, t.uint8 = key
                steps.append(t)
            self._outputs[key] = Compose(steps)
        out: dict = self._outputs[key](data)
        return out

    def _infer(self, image: MetaTensor, modality: str) -> torch.Tensor:
        """The config's inferer on one preprocessed ``image`` (2, H, W[, D]); the restoration after the network
        acts by the secondary's ``modality``."""
        if isinstance(self.pipeline.inferer, FusionInferer):
            self.pipeline.inferer.modality = modality
        pred: torch.Tensor = self.pipeline.inferer(image.as_tensor()[None].to(self.device), self.network)[0]
        return pred

    def _items(self, mri: np.ndarray, other: np.ndarray) -> dict[Hashable, Any]:
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
            item: dict[Hashable, Any] = {"modality": self.modality}
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
        # an affine with the chain's own axis codes: the orientation step and the resampling are no-ops, so each
        # (H, W) slice reaches the network as given
        affine = torch.from_numpy(axcodes_affine(VOLUME_AXCODES))
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
        data = self.pipeline.preprocessing(self._items(mri, other))
        image = data["image"]
        pred = self._infer(image, self.modality)
        uint8 = mri.dtype == np.uint8
        data["pred"] = pred
        out = self.postprocess(data, colour=colour, uint8=uint8)["pred"]
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
        return_mri: bool = False,
    ) -> MetaTensor | tuple[MetaTensor, ...]:
        """Fuse two volumes on their own grids: the result lies on the MRI's grid and axes.

        ``inference.json``'s volume chain (orientation, per-modality scaling, optional rigid registration, the
        overlap check, resampling of ``other`` onto the MRI grid), then the network slice by slice, then its
        postprocessing (the MRI's own axes back). This is what the MONAI Deploy application and DICOM output
        run.

        Args:
            mri: ``(1, X, Y, Z)`` raw MRI intensities with its RAS ``affine``.
            other: ``(1, X', Y', Z')`` raw CT (HU), PET or SPECT with its RAS ``affine``.
            modality: ``"CT"``, ``"PET"`` or ``"SPECT"`` (default: the task's).
            register: rigidly register ``other`` to the MRI first: ``"auto"`` (when the frames of reference
                differ, as the Deploy application does), ``True`` or ``False``.
            return_other: also return the scaled ``other`` as resampled onto the MRI grid (for a colour
                rendering).
            allow_patient_mismatch: fuse volumes whose PatientIDs differ (refused by default).
            return_mri: also return the scaled MRI as the network saw it, on the same grid (for the hot-spot
                guard), after the other volume when both are asked for.

        Returns:
            float32 ``(1, X, Y, Z)`` in [0, 1] with the MRI's affine (and, with ``return_other``, the other
            volume on the same grid, and with ``return_mri`` the MRI's).

        Raises:
            ValueError: not ``(1, X, Y, Z)`` MetaTensors, NaN/inf; ``RefusedPairError`` (a ValueError): two
                patients, or volumes that do not overlap enough in space.
        """
        item: dict[Hashable, Any] = {
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
        data = self.pipeline.preprocessing(item)
        pred = self._infer(data["image"], str(item["modality"]))
        data["pred"] = pred
        # the network's input channels asked for, each put through the same postprocessing as the fusion
        channels = {
            key: c for key, c, wanted in (("other_on_mri", 1, return_other), ("mri_scaled", 0, return_mri)) if wanted
        }
        extras = list(channels)
        for key, c in channels.items():
            data[key] = data["image"].as_tensor()[c : c + 1]
        post = self.postprocess(data, colour=False, uint8=False)
        if extras:
            post = FusionPostprocessd(extras, colour=False, uint8=False)(post)
        fused: MetaTensor = post["pred"]
        return (fused, *(post[key] for key in extras)) if extras else fused


def load_fuser(
    bundle_dir: str | os.PathLike | None = None,
    task: str = "mri_pet",
    weights: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    config_file: str | os.PathLike | None = None,
    stretch: bool = False,
    progress: bool | None = False,
    restoration: RestoreLesionContrast | bool | None = None,
) -> Fuser:
    """The notebook API: a :class:`Fuser` with the bundle's network and checkpoint.

    Args:
        bundle_dir: the bundle folder (its ``configs/inference.json`` defines the network and the transforms,
            :func:`~hkafusion_monai.inference.pipeline.bundle_pipeline`); default the
            bundle this package runs with: the source checkout's ``bundle/``, else the configs packaged in the
            installed wheel (:func:`hkafusion_monai.io.bundle.default_bundle_dir`).
        task: ``"mri_ct"``, ``"mri_pet"`` or ``"mri_spect"`` (the other image's modality, for volume scaling).
        weights: a checkpoint (a state dict, or a ``CheckpointSaver`` file with ``"model"``), or a TorchScript
            ``.ts`` export (the network, and the CT window of the ``inference.json`` it was exported with, travel
            inside it; the transforms are the bundle's, or the installed package's without one); default
            :func:`shipped_weights` (``models/model_<task>.pt`` if shipped, else the joint ``models/model.pt``).
        device: default CUDA when available, else CPU.
        config_file: the inference config defining ``network_def`` and the transforms; default
            ``<bundle_dir>/configs/inference.json``.
        stretch: min-max stretch each fused image (per volume for volumes) to the full range, as the peers'
            test code does (docs/results.md).
        progress: a labelled bar over a volume's slices (``None``: only when writing to a terminal).
        restoration: the lesion restoration after the network (:class:`Fuser`): ``None``, as the inference
            config says; ``True`` / ``False``, the config's switched on / off; or one of your own.

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
        raise CheckpointNotFoundError(NO_WEIGHTS_MESSAGE.format(path=weights, option="--ckpt_path"))
    device = torch.device(device or ("cuda:0" if torch.cuda.is_available() else "cpu"))
    config = Path(config_file) if config_file is not None else inference_config(bundle_dir)
    ct_window = None
    if str(weights).endswith(".ts"):  # a TorchScript export (ckpt_export): the network travels with its weights
        network, ct_window = _load_torchscript(weights)
        if not config.is_file():  # the transforms are the installed bundle's
            config = inference_config()
    else:
        network = _load_checkpoint(weights, config)
    return Fuser(
        network,
        task=task,
        device=device,
        ct_window=ct_window,
        stretch=stretch,
        progress=progress,
        config_file=config,
        restoration=restoration,
    )


def _load_torchscript(weights: str | os.PathLike) -> tuple[torch.nn.Module, list[float]]:
    """A TorchScript export's network and the CT window of the ``inference.json`` settings it was exported with
    (the bundle's default window when it holds none)."""
    extra = {"inference.json": ""}
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
    return network, [float(v) for v in ct_window]


def _load_checkpoint(weights: str | os.PathLike, config: Path) -> torch.nn.Module:
    """The network that ``config`` (an inference config) defines, with the checkpoint's weights."""
    if not config.is_file():
        raise FileNotFoundError(
            f"{config}: no inference config defining the network for the checkpoint {weights}; pass "
            "bundle_dir= or config_file=, or a TorchScript export (.ts), which needs none"
        )
    parser = ConfigParser()
    parser.read_config(str(config))
    network: torch.nn.Module = parser.get_parsed_content("network_def", instantiate=True)
    return load_weights(network, weights, map_location="cpu")


class TaskFusers:
    """The fusers of one study with several secondaries: a pair runs the model of its own task where one lies
    beside the default model (``model_<task>.ts`` next to ``model.ts``, ``model_<task>.pt`` next to
    ``model.pt``, as the bundle ships them), else the default (joint) model. What the Deploy application fuses a
    study's CT, PET and SPECT series with; each fuser is loaded once, when its first pair comes.

    Args:
        default: the :class:`Fuser` of the default model.
        model: the default model's file, whose folder is searched for the task models.
        load: ``load(weights, task)`` -> a :class:`Fuser` (:func:`load_fuser` with the caller's bundle, device
            and progress settings).
    """

    def __init__(self, default: Fuser, model: str | os.PathLike, load: Any) -> None:
        self.default = default
        self.model = Path(model)
        self.load = load
        self.fusers: dict[str, Fuser] = {}

    def model_for(self, modality: str) -> Path:
        """The model a pair with this secondary ``modality`` runs: its task's own, else the default."""
        own = self.model.with_name(f"model_{modality_task(modality)}{self.model.suffix}")
        return own if self.model.name.startswith("model.") and own.is_file() else self.model

    def fuser_for(self, modality: str) -> Fuser:
        model = self.model_for(modality)
        if model == self.model:
            return self.default
        if modality not in self.fusers:
            self.fusers[modality] = self.load(model, modality_task(modality))
        return self.fusers[modality]

    def fuse_volumes(self, mri: MetaTensor, other: MetaTensor, modality: str, **kwargs: Any) -> Any:
        """:meth:`Fuser.fuse_volumes` with the fuser of ``modality``'s task."""
        return self.fuser_for(modality).fuse_volumes(mri, other, modality=modality, **kwargs)
