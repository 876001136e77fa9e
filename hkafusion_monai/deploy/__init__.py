"""MONAI Deploy packaging of HKAFusion: a DICOM study in, one fused derived MR series per CT, PET and SPECT
series out, optionally sent to a PACS (docs/deploy.md).

Modules: the command line (``cli``; ``python -m hkafusion_monai.deploy``), the application (``app``), its rules
file (``rules``), which pairs it fuses (``planning``, by the pairing rule of :mod:`hkafusion_monai.io.pairing`),
a fused pair and its hot-spot notes (``fused``), and one operator per module in ``operators``.

Needs the optional deploy requirements (``pip install -r requirements-deploy.txt``: monai-deploy-app-sdk,
pynetdicom) for ``app`` and ``operators``; the other modules, and importing this package, do not import the SDK.
"""

from hkafusion_monai.deploy.cli import main
from hkafusion_monai.utils.lazy import lazy_exports

__all__ = ["HKAFusionDeployApp", "main"]

# lazy: the application loads the Deploy SDK (optional) and Holoscan; the command line installs its handlers first
__getattr__ = lazy_exports(__name__, {"HKAFusionDeployApp": ".app"})
