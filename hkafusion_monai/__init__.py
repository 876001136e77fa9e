"""HKAFusion for MONAI: hybrid-kernel attention fusion of MRI with CT, PET or SPECT.

Subpackages (leaves first): ``networks``, ``losses``, ``metrics``, ``transforms``,
``handlers``, ``engines``, ``io``, ``data``. The bundle configs in ``bundle/configs``
refer to them by dotted path.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
