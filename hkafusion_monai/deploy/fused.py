"""The result of one fused pair (:class:`FusedPair`), and what the log and the derived series say about the
PET/SPECT hot spots its fusion lost (docs/failure_behaviour.md)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom

from hkafusion_monai.deploy.planning import FusionPair
from hkafusion_monai.metrics.checks import HOT_SPOT_MIN_KEPT, GuardedHotSpot

__all__ = ["FusedPair", "hot_spot_notes", "log_hot_spots"]

logger = logging.getLogger("hkafusion_monai.deploy")


@dataclass
class FusedPair:
    """The result of one pair: the fused volume on the MR grid and what the writer needs."""

    pair: FusionPair
    volume: np.ndarray  # float32 (slices, rows, columns) in [0, 1]; slice k on mri[k]
    mri: list[pydicom.Dataset]  # one header per MR slice, in the order of ``volume``
    other: list[pydicom.Dataset]  # the secondary's headers (for the references)
    colour: np.ndarray | None = None
    written: list[Path] = field(default_factory=list)
    hot_spots: list[GuardedHotSpot] = field(default_factory=list)  # PET/SPECT: (row, column, slice k) on mri[k]
    min_kept: float = HOT_SPOT_MIN_KEPT

    @property
    def lost_hot_spots(self) -> list[GuardedHotSpot]:
        return [s for s in self.hot_spots if s.lost]


def _spot_words(spot: GuardedHotSpot) -> str:
    row, column, k = spot.position
    return f"instance {k + 1}, row {row}, column {column}"


def log_hot_spots(result: FusedPair) -> None:
    """One line per PET/SPECT pair: the guard's figures (INFO), and the lost hot spots where any (WARNING)."""
    spots, lost, pair = result.hot_spots, result.lost_hot_spots, result.pair
    what = pair.other.describe()
    if not spots:
        logger.info("hot-spot guard, %s: no hot spot", what)
        return
    figures = (
        f"{len(spots)} hot spot(s), {len(lost)} keeping less than {result.min_kept:.0%} of their contrast where "
        f"the MRI is darker (a lesion's pattern; the least kept of all {min(s.kept for s in spots):.0%})"
    )
    if not lost:
        logger.info("hot-spot guard, %s: %s", what, figures)
        return
    shown = "; ".join(f"({_spot_words(s)} of the derived series) kept {s.kept:.0%}" for s in lost[:10])
    more = f"; and {len(lost) - 10} more" if len(lost) > 10 else ""
    logger.warning(
        "hot-spot guard, %s: %s, at %s%s; the derived series says so: look at the %s series there",
        what,
        figures,
        shown,
        more,
        pair.other.header.modality,
    )


def hot_spot_notes(result: FusedPair) -> dict[str, Any]:
    """What the derived series of ``result`` says about lost hot spots (none: ``{}``): the keyword arguments
    ``note``, ``slice_notes`` and ``description_note`` of :func:`~hkafusion_monai.io.dicom_series.write_fused_series`
    (docs/failure_behaviour.md)."""
    lost = result.lost_hot_spots
    if not lost:
        return {}
    modality = result.pair.other.header.modality
    slices = sorted({s.position[2] for s in lost})
    note = (
        f"HOT-SPOT GUARD: {len(lost)} of {len(result.hot_spots)} hot spot(s) of the {modality} series "
        f"{result.pair.other.uid} keep less than {result.min_kept:.0%} of their contrast in this fusion where the MRI "
        f"is darker (instances "
        f"{', '.join(str(k + 1) for k in slices)}); read the {modality} series there, not this fusion alone."
    )
    here: dict[int, list[str]] = {}
    for s in lost:
        row, column, k = s.position
        here.setdefault(k, []).append(f"the hot spot at row {row}, column {column} keeps {s.kept:.0%} of its contrast")
    slice_notes = {k: f"In this instance, {'; '.join(words)}." for k, words in here.items()}
    return {"note": note, "slice_notes": slice_notes, "description_note": f"hot spot lost: see {modality}"}
