"""MONAI Deploy packaging of HKAFusion: two DICOM series in, a fused derived MR series out (docs/deploy.md).

Needs the optional deploy requirements (``pip install -r requirements-deploy.txt``: monai-deploy-app-sdk);
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
