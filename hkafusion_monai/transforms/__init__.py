"""MONAI transforms for fusion inputs: reading, colour (YCbCr), intensity, geometry, registration, slices.

2-D pairs: ``LoadFusionImaged`` -> ``ScaleByBitDepthd`` -> ``SplitYCbCrd`` -> ``StackPaird``.
Volumes: ``LoadFusionVolumed`` -> ``Orientationd`` -> ``ScaleIntensityByModalityd`` -> (``RigidRegisterd``)
-> ``CheckOverlapd`` -> ``ResampleToMatchd`` -> ``StackPaird`` -> ``DropEmptySlicesd`` -> slices.

The one preprocessing/postprocessing contract of evaluation, inference and ``load_fuser`` is
:mod:`hkafusion_monai.transforms.contract`.

DICOM header reading (series finding and ordering) is :mod:`hkafusion_monai.io.dicom`, the file suffixes
:mod:`hkafusion_monai.io.formats`, the error types :mod:`hkafusion_monai.utils.errors`.

The colour maths lives once, in :mod:`hkafusion_monai.utils.colour` (re-exported here).
"""

# re-exported where the public API has always had them; their homes are io and utils
from hkafusion_monai.io.dicom import DICOM_MODALITIES, DicomSeries, DicomSlice, order_series, pick_series, scan_dicom
from hkafusion_monai.io.formats import DICOM_SUFFIXES, NIFTI_SUFFIXES
from hkafusion_monai.utils.colour import is_grey_rgb, rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb
from hkafusion_monai.utils.errors import FusionInputError

from .dictionary import MergeYCbCrd, ScaleByBitDepthd, SplitYCbCrd, StackPaird
from .geometry import CheckOverlapd, RestoreOrientationd, world_bounding_box
from .intensity import CT_BRAIN_WINDOW, ScaleIntensityByModalityd, modality_of
from .reader import SUPPORTED_2D_SUFFIXES, FusionPILReader, LoadFusionImaged
from .registration import RigidRegisterd, rigid_registration, to_sitk_image
from .slices import DropEmptySlicesd
from .volume import SOURCE_META_KEYS, FusionDicomReader, FusionNibabelReader, LoadFusionVolumed

from . import contract  # noqa: E402  (after the transforms it builds on)
from .contract import FusionPostprocessd, FusionPreprocessd  # noqa: E402

__all__ = [
    "contract",
    "CT_BRAIN_WINDOW",
    "DICOM_MODALITIES",
    "DICOM_SUFFIXES",
    "NIFTI_SUFFIXES",
    "SOURCE_META_KEYS",
    "SUPPORTED_2D_SUFFIXES",
    "CheckOverlapd",
    "DicomSeries",
    "DicomSlice",
    "DropEmptySlicesd",
    "FusionDicomReader",
    "FusionInputError",
    "FusionNibabelReader",
    "FusionPILReader",
    "FusionPostprocessd",
    "FusionPreprocessd",
    "LoadFusionImaged",
    "LoadFusionVolumed",
    "MergeYCbCrd",
    "RestoreOrientationd",
    "RigidRegisterd",
    "ScaleByBitDepthd",
    "ScaleIntensityByModalityd",
    "SplitYCbCrd",
    "StackPaird",
    "is_grey_rgb",
    "modality_of",
    "order_series",
    "pick_series",
    "rgb_to_y",
    "rgb_to_ycbcr",
    "rigid_registration",
    "scan_dicom",
    "to_sitk_image",
    "world_bounding_box",
    "ycbcr_to_rgb",
]
