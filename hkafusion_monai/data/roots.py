"""Where the shared data and the bundle lie.

One setting, ``HKAFUSION_SHARED``, names the shared folder that holds the Harvard pairs (``data/harvard``) and
the reference values (``reference/``). Every overlay, workflow, benchmark and test reads it through these
functions; the default is ``../shared`` beside the checkout's working directory.

A bundle workflow finds its bundle folder with :func:`bundle_root` (``"."`` inside the bundle, as model-zoo
bundles run, ``"bundle"`` from the repository root) and its data with :func:`dataset_datalist` (the
``dataset_dir`` of MONAI's ``TrainProperties`` and ``InferProperties``).
"""

from __future__ import annotations

import os
from pathlib import Path

from hkafusion_monai.data.folder_datalist import harvard_datalist
from hkafusion_monai.utils import DataRootError, OptionError
from hkafusion_monai.utils.tasks import TASK_MODALITY

__all__ = [
    "BUNDLE_FOLDER",
    "SHARED_VARIABLE",
    "bundle_root",
    "dataset_datalist",
    "harvard_root",
    "reference_file",
    "shared_root",
]

#: the one environment variable naming the data root
SHARED_VARIABLE = "HKAFUSION_SHARED"
_DEFAULT = "../shared"
#: the bundle's folder in the repository
BUNDLE_FOLDER = "bundle"
_METADATA = Path("configs") / "metadata.json"


def shared_root() -> str:
    """The shared folder: ``$HKAFUSION_SHARED``, else ``../shared`` (not checked: see :func:`harvard_root`)."""
    return os.environ.get(SHARED_VARIABLE) or _DEFAULT


def _setting() -> str:
    value = os.environ.get(SHARED_VARIABLE)
    return f"{SHARED_VARIABLE}={value}" if value else f"{SHARED_VARIABLE} is unset (default {_DEFAULT})"


def harvard_root() -> str:
    """``<shared>/data/harvard``, checked to hold ``splits.json``.

    Raises:
        DataRootError: one line naming the setting and the path tried.
    """
    root = Path(shared_root()) / "data" / "harvard"
    if not (root / "splits.json").is_file():
        raise DataRootError(
            f"no Harvard pairs at {root} (no splits.json there; {_setting()}): set {SHARED_VARIABLE} to the shared "
            "folder that holds data/harvard, or train on the phantom with configs/demo.json"
        )
    return str(root)


def reference_file(name: str) -> str:
    """``<shared>/reference/<name>`` (e.g. ``peer_results.json``); its absence is for the caller to judge."""
    return str(Path(shared_root()) / "reference" / name)


def bundle_root(cwd: str | os.PathLike | None = None) -> str:
    """The bundle folder, relative to the working directory ``cwd`` (default: the current one), for the configs'
    ``bundle_root``: ``"."`` when ``cwd`` is a bundle (it holds ``configs/metadata.json``), as model-zoo bundles
    run (``cd bundle && python -m monai.bundle run ...``, or a bundle unpacked elsewhere), and ``"bundle"`` when
    it is the repository root (``--config_file bundle/configs/train.json``). ``--bundle_root`` overrides it.

    Raises:
        OptionError: neither, naming ``--bundle_root``.
    """
    here = Path.cwd() if cwd is None else Path(cwd)
    if (here / _METADATA).is_file():
        return "."
    if (here / BUNDLE_FOLDER / _METADATA).is_file():
        return BUNDLE_FOLDER
    raise OptionError(
        f"no bundle at {here} (no {_METADATA} there or in {BUNDLE_FOLDER}/): run from the bundle folder or the "
        "repository root, or pass --bundle_root"
    )


def dataset_datalist(
    dataset_dir: str | os.PathLike, task: str | None, out_dir: str | os.PathLike, source: str = "png"
) -> str:
    """The datalist of the data set in ``dataset_dir`` for ``task`` (a workflow's ``dataset_dir``):

    - the Harvard pairs (``splits.json``, the de-leaked split): ``<out_dir>/<task>.json``, written from it by
      :func:`hkafusion_monai.data.harvard_datalist` (``task`` ``mri_ct``, ``mri_pet``, ``mri_spect`` or
      ``joint``); 2-D pairs only (``source`` ``"png"``);
    - the synthetic phantom (``phantom.json``, ``python -m hkafusion_monai.data.phantom``): its datalist of the
      task's modality in ``source`` (``"png"`` pairs, ``"nifti"`` or ``"dicom"`` volumes),
      ``datalists/<source>_<modality>.json``.

    Other data: build a datalist with ``python -m hkafusion_monai.data.datalist`` and pass ``--datalist``.

    Raises:
        DataRootError: ``dataset_dir`` holds neither; the message names it.
        OptionError: no ``task``, or one the phantom has no pairs for.
    """
    root = Path(dataset_dir)
    if not task:
        raise OptionError(f"--dataset_dir {root} needs --task ({', '.join(sorted(TASK_MODALITY))})")
    if (root / "splits.json").is_file():
        if source != "png":
            raise OptionError(
                f"--dataset_dir {root}: the Harvard pairs are 2-D PNG pairs, not {source} volumes; pass the phantom's "
                "folder as --dataset_dir, or a volume datalist as --datalist"
            )
        return harvard_datalist(root / "splits.json", task, out_dir)
    if (root / "phantom.json").is_file():
        if task not in TASK_MODALITY:
            raise OptionError(f"--task {task}: the phantom has pairs for {', '.join(sorted(TASK_MODALITY))}")
        datalist = root / "datalists" / f"{source}_{TASK_MODALITY[task].lower()}.json"
        if not datalist.is_file():
            raise DataRootError(f"no {datalist.name} in {datalist.parent}: regenerate the phantom")
        return str(datalist)
    raise DataRootError(
        f"--dataset_dir {root}: no splits.json (the Harvard pairs) or phantom.json (python -m "
        "hkafusion_monai.data.phantom) there; for other data pass --datalist (python -m hkafusion_monai.data.datalist)"
    )
