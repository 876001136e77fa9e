"""The bundle's inference pipeline read from ``inference.json``: what :func:`hkafusion_monai.load_fuser` and the
MONAI Deploy application run, parsed from the same ``preprocessing``, ``inferer`` and ``postprocessing`` items
as the inference workflow, so that one edit in the JSON changes all three.

MONAI Deploy's ``MonaiBundleInferenceOperator`` reads a bundle this way: it parses those three items and drops
the transforms that read or write files (``LoadImage``, ``SaveImage``), because its inputs and outputs are in
memory. :func:`bundle_pipeline` does the same for this bundle: the router
(:class:`~hkafusion_monai.transforms.FusionPreprocessd`) skips its chains' loaders for loaded arrays, and the
writers are left out of the postprocessing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from monai.bundle import ConfigParser
from monai.transforms import Compose, SaveImage, SaveImaged

from hkafusion_monai.io.bundle import default_bundle_dir
from hkafusion_monai.io.writers import FusedImageWriterd

__all__ = ["FILE_WRITERS", "BundlePipeline", "bundle_pipeline", "inference_config"]

#: the postprocessing transforms that write files, left out for in-memory use
FILE_WRITERS: tuple[type, ...] = (FusedImageWriterd, SaveImaged, SaveImage)


class BundlePipeline(NamedTuple):
    """The three items of ``inference.json`` that fuse a data item in memory."""

    #: ``preprocessing``: a data item (paths, or loaded arrays) -> ``image`` ``(2, H, W[, D])``
    preprocessing: Callable
    #: ``inferer``: ``(inputs, network)`` -> ``pred``
    inferer: Callable
    #: ``postprocessing`` without its file writers: ``pred`` -> the result
    postprocessing: Compose


def inference_config(bundle_dir: str | os.PathLike | None = None) -> Path:
    """``<bundle_dir>/configs/inference.json``; ``None``: the bundle this package runs with
    (:func:`hkafusion_monai.io.bundle.default_bundle_dir`)."""
    return Path(bundle_dir if bundle_dir is not None else default_bundle_dir()) / "configs" / "inference.json"


def bundle_pipeline(config_file: str | os.PathLike | None = None, **overrides: Any) -> BundlePipeline:
    """Parse ``preprocessing``, ``inferer`` and ``postprocessing`` of an inference config.

    Args:
        config_file: the inference config; default the ``inference.json`` of the bundle this package runs with.
        overrides: config values to set first, as on the command line (``ct_window=[40, 80]``, ``stretch=True``,
            ``progress=None``, ``sw_batch_size=8``).

    Raises:
        FileNotFoundError: no such config.
    """
    path = Path(config_file) if config_file is not None else inference_config()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no inference config (the bundle's configs/inference.json)")
    parser = ConfigParser()
    parser.read_config(str(path))
    # the config's own bundle, wherever the process runs (an installed wheel, a MAP): its writer names the
    # bundle version from there
    parser.update({"bundle_root": str(path.parent.parent), **overrides})
    post = parser.get_parsed_content("postprocessing")
    steps = post.transforms if isinstance(post, Compose) else [post]
    return BundlePipeline(
        preprocessing=parser.get_parsed_content("preprocessing"),
        inferer=parser.get_parsed_content("inferer"),
        postprocessing=Compose([t for t in steps if not isinstance(t, FILE_WRITERS)]),
    )
