"""MONAI Deploy packaging of HKAFusion: a DICOM study in, one fused derived MR series per CT, PET and SPECT
series out, optionally sent to a PACS (docs/deploy.md).

Needs the optional deploy requirements (``pip install -r requirements-deploy.txt``: monai-deploy-app-sdk,
pynetdicom);
importing this package does not import the SDK, :mod:`hkafusion_monai.deploy.app` does.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["HKAFusionDeployApp", "main"]


def __getattr__(name: str) -> Any:
    if name == "HKAFusionDeployApp":
        return importlib.import_module(".app", __name__).HKAFusionDeployApp
    if name == "main":
        return importlib.import_module(".__main__", __name__).main
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
