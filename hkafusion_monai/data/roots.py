"""Where the data and the bundle lie.

The Harvard pairs are the folder that ``python -m hkafusion_monai.data.harvard prepare --from <folder>`` builds,
``data/harvard`` in the working directory; their split is always the repository's own
(:data:`hkafusion_monai.data.harvard.SPLITS_FILE`). One setting, ``HKAFUSION_SHARED``, names instead a shared
folder that holds them (``data/harvard``) and the reference values (``reference/``), as this project's CI has
it; its default is ``../shared`` beside the checkout's working directory. Every overlay, workflow, benchmark
and test reads them through these functions.

A bundle workflow finds its bundle folder with :func:`bundle_root` (``"."`` inside the bundle, as model-zoo
bundles run, ``"bundle"`` from the repository root) and its data with :func:`dataset_datalist` (the
``dataset_dir`` of MONAI's ``TrainProperties`` and ``InferProperties``).
"""

from __future__ import annotations

import os
from pathlib import Path

from hkafusion_monai.data.folder_datalist import harvard_datalist
from hkafusion_monai.data.harvard import DEFAULT_FOLDER, SPLITS_FILE
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
    """The Harvard folder: ``<shared>/data/harvard`` when ``HKAFUSION_SHARED`` is set, else ``data/harvard``
    (built by ``prepare``) when it is there, else ``../shared/data/harvard``; checked to hold ``splits.json``.

    Raises:
        DataRootError: one line naming the paths tried and the command that builds the folder.
    """
    shared = Path(shared_root()) / "data" / "harvard"
    tried = [shared] if os.environ.get(SHARED_VARIABLE) else [DEFAULT_FOLDER, shared]
    for root in tried:
        if (root / "splits.json").is_file():
            return str(root)
    raise DataRootError(
        f"no Harvard pairs at {' or '.join(str(r) for r in tried)} (no splits.json there; {_setting()}): build "
        f"{DEFAULT_FOLDER} from a copy of the public images with python -m hkafusion_monai.data.harvard prepare "
        "--from <folder> (where to get them: bundle/docs/data_license.txt), or train on the phantom with "
        "configs/demo.json"
    )


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

    - the Harvard pairs (a folder holding ``splits.json``): ``<out_dir>/<task>.json``, written from the
      repository's de-leaked split (:data:`~hkafusion_monai.data.harvard.SPLITS_FILE`) by
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
    if (root / "splits.json").is_file():  # the Harvard folder; its split is the repository's own
        if source != "png":
            raise OptionError(
                f"--dataset_dir {root}: the Harvard pairs are 2-D PNG pairs, not {source} volumes; pass the phantom's "
                "folder as --dataset_dir, or a volume datalist as --datalist"
            )
        return harvard_datalist(SPLITS_FILE, task, out_dir, base_dir=root)
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
