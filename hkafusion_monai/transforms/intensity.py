"""Per-modality intensity normalisation of volumes to [0, 1].

DICOM and NIfTI volumes carry physical values (HU for CT, activity for PET/SPECT, arbitrary units for
MRI), unlike the 8-bit Harvard atlas images the network is trained on; each modality is mapped to [0, 1]
with its own rule, over the whole volume so that the slices of one volume stay comparable:

- CT: a fixed window (level, width) in HU, by default the brain window (40, 80), i.e. [0, 80] HU -> [0, 1];
- MRI, PET and SPECT: robust percentiles of the whole volume, by default (0.5, 99.5) for each (two
  settings, ``mri_percentiles`` and ``emission_percentiles``); the few hottest voxels of a PET or SPECT
  volume (hot lesions) clip to 1, much as in the Harvard pseudo-colour images.

The work is done by MONAI's ``ScaleIntensityRange`` and ``ScaleIntensityRangePercentiles``; what
:class:`ScaleIntensityByModalityd` adds is the choice per data item, from its ``modality`` field or the
DICOM ``Modality`` tag, so one chain serves CT, PET and SPECT pairs (a bundle config for one task can
equally list ``ScaleIntensityRanged`` / ``ScaleIntensityRangePercentilesd`` itself).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import MapTransform, ScaleIntensityRange, ScaleIntensityRangePercentiles
from monai.utils import convert_to_dst_type

from hkafusion_monai.utils.errors import FusionInputError
from hkafusion_monai.utils.tasks import DICOM_MODALITIES

__all__ = ["CT_BRAIN_WINDOW", "ScaleIntensityByModalityd", "modality_of"]

CT_BRAIN_WINDOW = (40.0, 80.0)  # (level, width) in HU
# a DICOM Modality tag or a modality name -> the modality name
_MODALITY_NAMES = {**DICOM_MODALITIES, **{name: name for name in DICOM_MODALITIES.values()}}


def _name(img: NdarrayOrTensor, key: Hashable) -> str:
    meta = getattr(img, "meta", None) or {}
    return str(meta.get("filename_or_obj", f"<{key}>"))


def modality_of(img: NdarrayOrTensor, key: Hashable, declared: str | None = None, is_mri: bool = False) -> str:
    """The modality of a loaded volume (``MRI``, ``CT``, ``PET`` or ``SPECT``).

    Taken from ``declared`` (the datalist's ``modality`` field) or, for DICOM, from the ``Modality`` tag
    (``meta["source_modality"]``: MR, CT, PT, NM); the first key of a pair is the MRI. A tag that
    contradicts the declaration or the key's role is an error naming the file.
    """
    meta = getattr(img, "meta", None) or {}
    tag = str(meta.get("source_modality", "") or "").upper()
    from_tag = DICOM_MODALITIES.get(tag) if tag else None
    if tag and from_tag is None:
        raise FusionInputError(f"{_name(img, key)}: DICOM Modality {tag!r} is not one of {sorted(DICOM_MODALITIES)}")
    if is_mri:
        if from_tag not in (None, "MRI"):
            raise FusionInputError(
                f"{_name(img, key)}: the {key!r} volume should be MR but its DICOM Modality is {tag}"
            )
        return "MRI"
    want = _MODALITY_NAMES.get(str(declared).upper()) if declared else None
    if declared and want is None:
        raise FusionInputError(f"{_name(img, key)}: unknown modality {declared!r}; use CT, PET or SPECT")
    if want and from_tag and want != from_tag:
        raise FusionInputError(f"{_name(img, key)}: declared {declared} but its DICOM Modality is {tag} ({from_tag})")
    modality = want or from_tag
    if modality is None:
        raise FusionInputError(
            f"{_name(img, key)}: modality unknown; give 'modality' (CT, PET or SPECT) in the data item"
        )
    if modality == "MRI":
        raise FusionInputError(f"{_name(img, key)}: the {key!r} volume should be CT, PET or SPECT, not MR")
    return modality


class ScaleIntensityByModalityd(MapTransform):
    """Map each volume of a pair to [0, 1] (float32) by its modality's rule (see the module docstring).

    Args:
        keys: the MRI key first, then the other volume's key(s), e.g. ``["mri", "other"]``.
        modality_key: data key declaring the other volume's modality (``CT``, ``PET``, ``SPECT``).
        ct_window: CT ``(level, width)`` in HU; default the brain window (40, 80).
        mri_percentiles: ``(lower, upper)`` percentiles of the MRI volume mapped to 0 and 1.
        emission_percentiles: the same for PET and SPECT.
        clip: clip to [0, 1].
        allow_missing_keys: don't raise when a key is absent.

    The rule applied is recorded in ``meta["intensity_scaling"]``, e.g. ``"CT: CT window [0, 80] HU"``.
    """

    def __init__(
        self,
        keys: KeysCollection = ("mri", "other"),
        modality_key: str = "modality",
        ct_window: Sequence[float] = CT_BRAIN_WINDOW,
        mri_percentiles: Sequence[float] = (0.5, 99.5),
        emission_percentiles: Sequence[float] = (0.5, 99.5),
        clip: bool = True,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        level, width = (float(v) for v in ct_window)
        if width <= 0:
            raise ValueError(f"ct_window width must be positive, got {ct_window}")
        self.modality_key = modality_key
        self.ct = ScaleIntensityRange(level - width / 2, level + width / 2, 0.0, 1.0, clip=clip, dtype=np.float32)
        (mri_lower, mri_upper), (emission_lower, emission_upper) = mri_percentiles, emission_percentiles
        self.mri = ScaleIntensityRangePercentiles(mri_lower, mri_upper, 0.0, 1.0, clip=clip, dtype=np.float32)
        self.emission = ScaleIntensityRangePercentiles(
            emission_lower, emission_upper, 0.0, 1.0, clip=clip, dtype=np.float32
        )
        self._rules = {
            "CT": f"window [{level - width / 2:g}, {level + width / 2:g}] HU",
            "MRI": f"percentiles {tuple(mri_percentiles)} of the volume",
            "PET": f"percentiles {tuple(emission_percentiles)} of the volume",
            "SPECT": f"percentiles {tuple(emission_percentiles)} of the volume",
        }

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d: dict[Hashable, Any] = dict(data)  # the modality key holds a string
        declared = d.get(self.modality_key)
        for key in self.key_iterator(d):
            img = d[key]
            modality = modality_of(img, key, None if key == self.keys[0] else declared, is_mri=key == self.keys[0])
            scaler = {"CT": self.ct, "MRI": self.mri}.get(modality, self.emission)
            out = scaler(img)
            out = convert_to_dst_type(out, dst=img, dtype=out.dtype)[0]
            if isinstance(out, MetaTensor):
                out.meta["intensity_scaling"] = f"{modality}: {self._rules[modality]}"
            d[key] = out
        return d
