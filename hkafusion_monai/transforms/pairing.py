"""Is this a pair that may be fused at all? Two volumes of different patients never are, unless the user says
so for a documented reason (a phantom or a test object filed under two IDs). Nor is a 2-D pair given the wrong
way round: a pseudo-colour image as the MRI (:class:`CheckGreyMRId`).

Registration is the other half of "may these be fused": :class:`~hkafusion_monai.transforms.RigidRegisterd`
decides, by default, from the frames of reference (``"auto"``), as the Deploy application does.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform
from monai.utils import convert_data_type

from hkafusion_monai.utils import FusionInputError, RefusedPairError, as_bool

__all__ = ["PATIENT_OVERRIDE_KEY", "CheckGreyMRId", "CheckSamePatientd", "coloured_fraction"]

#: the data item field (and the inference config option) that allows fusing two patients' images
PATIENT_OVERRIDE_KEY = "allow_patient_mismatch"


class CheckSamePatientd(MapTransform):
    """Refuse a pair whose two images carry different, non-empty ``PatientID`` s (``meta["patient_id"]``, set
    by the DICOM reader; NIfTI and PNG carry none and pass).

    Args:
        keys: the MRI key, then the other's.
        allow_mismatch: fuse anyway (for every item); an item's ``allow_patient_mismatch`` field wins.
        flag_key: the item field that allows it per item (``None``: ignore items).

    Raises:
        RefusedPairError: naming both files, both IDs and the override.
    """

    def __init__(
        self,
        keys: KeysCollection = ("mri", "other"),
        allow_mismatch: bool | str = False,
        flag_key: str | None = PATIENT_OVERRIDE_KEY,
    ) -> None:
        super().__init__(keys, allow_missing_keys=False)
        if len(self.keys) != 2:
            raise ValueError(f"CheckSamePatientd needs exactly two keys, got {self.keys}.")
        self.allow_mismatch = as_bool(allow_mismatch, PATIENT_OVERRIDE_KEY)
        self.flag_key = flag_key

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        allowed = self.allow_mismatch
        if self.flag_key is not None and d.get(self.flag_key) is not None:
            allowed = as_bool(d[self.flag_key], f"the item's {self.flag_key!r} field")
        metas = [getattr(d[k], "meta", None) or {} for k in self.keys]
        ids = [str(m.get("patient_id", "") or "").strip() for m in metas]
        if all(ids) and ids[0] != ids[1] and not allowed:
            names = [str(m.get("filename_or_obj", k)) for m, k in zip(metas, self.keys, strict=True)]
            raise RefusedPairError(
                f"{names[0]} (PatientID {ids[0]!r}) and {names[1]} (PatientID {ids[1]!r}) belong to different "
                f"patients; refusing to fuse them (pass --{PATIENT_OVERRIDE_KEY} true, or set "
                f'"{PATIENT_OVERRIDE_KEY}": true in the datalist item, only if they are one subject)'
            )
        return d


def coloured_fraction(image: NdarrayOrTensor, spread: float = 0.1, foreground: float = 0.08) -> float:
    """The fraction of an RGB image's foreground pixels (brightest channel above ``foreground``) whose channels
    differ by more than ``spread``; 0 for a grey image. ``image``: ``(3, H, W)`` or ``(1, H, W)`` in [0, 1].

    A Harvard PET or SPECT slice in pseudo-colour has 50-100 % of such pixels, a grey MRI stored as RGB none
    (JPEG chroma noise stays under 0.1)."""
    arr = convert_data_type(image, np.ndarray, dtype=np.float32)[0]
    if arr.ndim != 3 or arr.shape[0] != 3:
        return 0.0
    hi, lo = arr.max(axis=0), arr.min(axis=0)
    fg = hi > foreground
    return float(((hi - lo) > spread)[fg].mean()) if fg.any() else 0.0


class CheckGreyMRId(MapTransform):
    """Refuse a 2-D pair whose MRI is a pseudo-colour image: more than ``max_coloured`` of its foreground
    pixels are coloured (:func:`coloured_fraction`). Most often the pair was given the wrong way round (the
    PET/SPECT as ``--mri``), which would fuse the MRI as if it were the PET and drop the colour. Place it after
    :class:`~hkafusion_monai.transforms.ScaleByBitDepthd` (images in [0, 1]) and before ``SplitYCbCrd``.

    Args:
        keys: the MRI key, then the other's.
        max_coloured: the largest fraction of coloured pixels a (grey) MRI may have.

    Raises:
        FusionInputError: naming the MRI file and the fix (swap ``--mri`` and ``--other`` when the other image
            is grey).
    """

    def __init__(self, keys: KeysCollection = ("mri", "other"), max_coloured: float = 0.05) -> None:
        super().__init__(keys, allow_missing_keys=False)
        if len(self.keys) != 2:
            raise ValueError(f"CheckGreyMRId needs exactly two keys (MRI first), got {self.keys}.")
        self.max_coloured = float(max_coloured)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        k_mri, k_other = self.keys
        coloured = coloured_fraction(d[k_mri])
        if coloured <= self.max_coloured:
            return d
        names = [str((getattr(d[k], "meta", None) or {}).get("filename_or_obj", f"<{k}>")) for k in self.keys]
        other_grey = coloured_fraction(d[k_other]) <= self.max_coloured
        fix = (
            f'{names[1]} is grey: the pair looks reversed, swap --mri and --other (the datalist\'s "mri" and "other")'
            if other_grey
            else "give the grey MRI as --mri and the PET/SPECT as --other"
        )
        raise FusionInputError(
            f"{names[0]}: a pseudo-colour image ({coloured:.0%} of its pixels coloured) given as the MRI, which must "
            f"be grey; {fix}"
        )
