"""MONAI transforms for fusion inputs: reading, colour (YCbCr), intensity, geometry, registration, slices.

2-D pairs: ``LoadFusionImaged`` -> ``ScaleByBitDepthd`` -> ``SplitYCbCrd`` -> ``StackPaird``.
Volumes: ``LoadFusionVolumed`` -> ``Orientationd`` -> ``ScaleIntensityByModalityd`` -> (``RigidRegisterd``)
-> ``CheckOverlapd`` -> ``ResampleToMatchd`` -> ``StackPaird`` -> ``DropEmptySlicesd`` -> slices.

The bundle's JSON declares these chains (``inference.json``'s ``preprocessing`` and ``postprocessing``,
``train.json``'s ``load_pair``); :mod:`hkafusion_monai.transforms.contract` holds the router between the 2-D
and the volume chain and the inference postprocessing.

DICOM header reading (series finding and ordering) is :mod:`hkafusion_monai.io.dicom`, the file suffixes
:mod:`hkafusion_monai.io.formats`, the error types :mod:`hkafusion_monai.utils.errors` and the colour maths
:mod:`hkafusion_monai.utils.colour`: each is imported from there.
"""

from . import contract
from .contract import FusionPostprocessd, FusionPreprocessd
from .dictionary import MergeYCbCrd, ScaleByBitDepthd, SplitYCbCrd, StackPaird
from .geometry import CheckOverlapd, RestoreOrientationd, world_bounding_box
from .intensity import CT_BRAIN_WINDOW, ScaleIntensityByModalityd, modality_of
from .pairing import CheckGreyMRId, CheckSamePatientd
from .reader import SUPPORTED_2D_SUFFIXES, FusionPILReader, LoadFusionImaged
from .registration import RigidRegisterd, rigid_registration, to_sitk_image
from .slices import DropEmptySlicesd
from .volume import SOURCE_META_KEYS, FusionDicomReader, FusionNibabelReader, LoadFusionVolumed

__all__ = [
    "contract",
    "CT_BRAIN_WINDOW",
    "SOURCE_META_KEYS",
    "SUPPORTED_2D_SUFFIXES",
    "CheckGreyMRId",
    "CheckOverlapd",
    "CheckSamePatientd",
    "DropEmptySlicesd",
    "FusionDicomReader",
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
    "modality_of",
    "rigid_registration",
    "to_sitk_image",
    "world_bounding_box",
]
