"""Is this a pair that may be fused at all? Two volumes of different patients never are, unless the user says
so for a documented reason (a phantom or a test object filed under two IDs).

Registration is the other half of "may these be fused": :class:`~hkafusion_monai.transforms.RigidRegisterd`
decides, by default, from the frames of reference (``"auto"``), as the Deploy application does.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform

from hkafusion_monai.utils import RefusedPairError, as_bool

__all__ = ["PATIENT_OVERRIDE_KEY", "CheckSamePatientd"]

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
        self, keys: KeysCollection = ("mri", "other"), allow_mismatch: bool | str = False, flag_key: str | None = PATIENT_OVERRIDE_KEY
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
            names = [str(m.get("filename_or_obj", k)) for m, k in zip(metas, self.keys)]
            raise RefusedPairError(
                f"{names[0]} (PatientID {ids[0]!r}) and {names[1]} (PatientID {ids[1]!r}) belong to different "
                f"patients; refusing to fuse them (pass --{PATIENT_OVERRIDE_KEY} true, or set "
                f"\"{PATIENT_OVERRIDE_KEY}\": true in the datalist item, only if they are one subject)"
            )
        return d
