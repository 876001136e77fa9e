"""Which pairs the Deploy application fuses: from the series the rules' ``MR`` and ``secondary`` selections
chose, the volumes (:func:`choose_volumes`) and their pairs (:func:`plan_pairs`), by the pairing rule of
:mod:`hkafusion_monai.io.pairing` that the datalist tool applies too (docs/deploy.md).

It needs no MONAI Deploy SDK: :class:`~hkafusion_monai.deploy.operators.FusionSeriesSelectorOperator` hands it
the header summaries (:class:`~hkafusion_monai.io.dicom.DicomSeries`) of the series the SDK's selector matched.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hkafusion_monai.io.dicom import DicomSeries
from hkafusion_monai.io.pairing import VolumeSeries, describe_series, measure, not_a_volume, pair_series
from hkafusion_monai.utils.errors import FusionInputError, RefusedPairError
from hkafusion_monai.utils.tasks import DICOM_MODALITIES, TASK_MODALITY

__all__ = ["FusionPair", "choose_volumes", "plan_pairs", "plan_study"]

logger = logging.getLogger("hkafusion_monai.deploy")

#: what each selection of the rules must find, in the words of the error that says it found none
_ROLES = (("MR", "MR series"), ("secondary", "CT, PET (PT) or SPECT (NM) series"))


@dataclass
class FusionPair:
    """One MR series and one CT/PET/SPECT series to fuse, with the reasons for the choice."""

    mri: VolumeSeries
    other: VolumeSeries
    modality: str  # "CT", "PET" or "SPECT"
    register: bool
    why: str = ""
    index: int = 0


def _describe(h: DicomSeries) -> str:
    return describe_series(h.modality, h.series_number, h.description, f"{len(h.slices)} instance(s)", h.series_uid)


def _volume(header: DicomSeries, role: str) -> VolumeSeries:
    if not header.slices:
        raise FusionInputError(f"{role} series {header.series_uid}: no image instances with pixel data")
    return measure(header)


def choose_volumes(
    chosen: dict[str, list[DicomSeries]], rules: dict[str, Any], where: str, holds: Sequence[str] = ()
) -> tuple[list[VolumeSeries], list[VolumeSeries]]:
    """The MR and the secondary volumes among the series each selection ``chosen`` (``"MR"``, ``"secondary"``).

    Series that are no volume by their type (:func:`~hkafusion_monai.io.pairing.not_a_volume`) are left out
    with one warning each; a series both selections chose is a secondary one.

    Raises:
        FusionInputError: a selection with no series left (the message lists ``holds``, the study's series),
            a secondary series that is not CT, PT or NM, an MR one that is not MR, a series that is not one
            regular volume.
    """
    kept: dict[str, list[DicomSeries]] = {}
    for role, _ in _ROLES:
        kept[role] = []
        for h in chosen.get(role, []):
            why = not_a_volume(h.modality, h.image_type)
            if why is None:
                kept[role].append(h)
            else:
                logger.warning("skipped %s: %s", _describe(h), why)
    secondary_uids = {h.series_uid for h in kept["secondary"]}
    kept["MR"] = [h for h in kept["MR"] if h.series_uid not in secondary_uids]
    for role, what in _ROLES:
        if not kept[role]:
            rule = json.dumps(next(s for s in rules["selections"] if s["name"] == role).get("conditions", {}))
            listed = "\n  ".join(holds) or "(none)"
            raise FusionInputError(
                f"{where}: no {what} matches the {role!r} selection rule {rule}; the study holds:\n  {listed}"
            )
    for h in kept["secondary"]:
        if DICOM_MODALITIES.get(h.modality) not in TASK_MODALITY.values():
            raise FusionInputError(
                f"{where}: the 'secondary' rule selected {_describe(h)}; HKAFusion fuses MR with CT, PT (PET) or NM "
                "(SPECT)"
            )
    for h in kept["MR"]:
        if h.modality != "MR":
            raise FusionInputError(f"{where}: the 'MR' rule selected {_describe(h)}, which is not an MR series")
    return [_volume(h, "MR") for h in kept["MR"]], [_volume(h, h.modality) for h in kept["secondary"]]


def plan_pairs(
    mris: list[VolumeSeries], others: list[VolumeSeries], rules: dict[str, Any], where: str = "the input"
) -> list[FusionPair]:
    """Pair each CT/PET/SPECT series with one MR series (:func:`~hkafusion_monai.io.pairing.pair_series`).

    ``fusion.registration`` decides registration: ``auto`` when the frames of reference differ, ``always``, or
    ``never``; with ``never`` a pair in two frames of reference is refused (it can be neither trusted nor
    registered).

    Raises:
        FusionInputError: an MR series without a FrameOfReferenceUID (the derived series lies in its frame).
        RefusedPairError: a pair in two frames of reference while registration is ``never``.
    """
    mode = rules["fusion"]["registration"]
    for m in mris:
        if not m.frame_of_reference:
            raise FusionInputError(
                f"{where}: MR series {m.describe()} has no FrameOfReferenceUID; the derived series lies in the MR's "
                "frame of reference, so it must have one"
            )
    pairs = []
    for i, chosen in enumerate(pair_series(mris, others)):
        mri, other = chosen.mri, chosen.other
        if len(mris) == 1:
            why = "the one MR series"
        else:
            why = (
                "same frame of reference, " if chosen.same_frame else ""
            ) + f"largest coverage of {len(mris)} MR series"
        if not chosen.same_frame and mode == "never":
            raise RefusedPairError(
                f"{where}: MR series {mri.describe()} and {other.header.modality} series {other.describe()} lie in "
                f"different frames of reference ({mri.frame_of_reference or 'none'} / "
                f"{other.frame_of_reference or 'none'}) "
                "and fusion.registration is 'never': they can be neither trusted as co-registered nor registered; "
                "set fusion.registration to 'auto' in the rules"
            )
        register = mode == "always" or (mode == "auto" and not chosen.same_frame)
        modality = DICOM_MODALITIES[other.header.modality]
        pairs.append(FusionPair(mri=mri, other=other, modality=modality, register=register, why=why, index=i))
    return pairs


def plan_study(
    chosen: dict[str, list[DicomSeries]], rules: dict[str, Any], where: str = "the input", holds: Sequence[str] = ()
) -> list[FusionPair]:
    """The pairs to fuse from the series each selection chose (:func:`choose_volumes`, :func:`plan_pairs`), with
    one log line per selected MR series and one per pair."""
    mris, others = choose_volumes(chosen, rules, where, holds)
    for m in mris:
        logger.info("selected %s", m.describe())
    pairs = plan_pairs(mris, others, rules, where)
    for p in pairs:
        how = "registered" if p.register else "same frame of reference, not registered"
        logger.info(
            "selected %s: fused with MR #%s (%s; %s)", p.other.describe(), p.mri.header.series_number, p.why, how
        )
    return pairs
