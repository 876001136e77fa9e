"""The MONAI Deploy operators of the fusion application (docs/deploy.md).

- :class:`StudyLoaderOperator`: the SDK's ``DICOMDataLoaderOperator`` over a study folder listed safely
  (:func:`hkafusion_monai.io.study.study_files`: symbolic-link loops skipped and reported, hidden and
  non-DICOM files left out);
- :class:`FusionSeriesSelectorOperator`: the SDK's ``DICOMSeriesSelectorOperator`` with the ``MR`` and
  ``secondary`` rules; it leaves out (and logs) localizers and NM images other than reconstructions, pairs
  the MR with every other CT, PET and SPECT series of the one study (:func:`plan_pairs`), refuses series of
  other patients and pairs that can be neither trusted nor registered, and checks each chosen series is one
  regular volume;
- :class:`FusionOperator`: each pair's two volumes, read by the bundle's own DICOM reader
  (``LoadFusionVolumed``: single-frame series, NM and enhanced multi-frame images), fused on the MR grid by
  :meth:`Fuser.fuse_volumes` (the bundle's one preprocessing contract); for PET and SPECT, the hot-spot guard
  (:func:`hkafusion_monai.metrics.hot_spot_guard`), one log line per pair;
- :class:`DICOMFusedSeriesWriterOperator`: one derived series per pair
  (:func:`hkafusion_monai.io.dicom_series.write_fused_series`), each checked after writing; a series whose
  fusion lost a hot spot says so in its ``SeriesDescription`` and ``ImageComments``;
- :class:`DICOMSendOperator`: C-STORE of the written series to a DICOM destination
  (:func:`hkafusion_monai.io.pacs.send_files`).

Every failure raises an :class:`~hkafusion_monai.utils.errors.HKAFusionError` naming the input and the
problem; nothing is written unless every pair fused.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from monai.deploy.core import ConditionType, Fragment, Operator, OperatorSpec
from monai.deploy.operators.dicom_data_loader_operator import DICOMDataLoaderOperator
from monai.deploy.operators.dicom_series_selector_operator import (
    DICOMSeriesSelectorOperator,
)

from hkafusion_monai.io.dicom import DicomSeries, frame_headers, multiframe_geometry, order_series, series_of
from hkafusion_monai.io.study import study_files
from hkafusion_monai.metrics.checks import HOT_SPOT_MIN_KEPT, GuardedHotSpot, hot_spot_guard
from hkafusion_monai.utils.errors import FusionInputError, HKAFusionError, OutputExistsError, RefusedPairError
from hkafusion_monai.utils.tasks import DICOM_MODALITIES, TASK_MODALITY

__all__ = [
    "DEFAULT_RULES",
    "REGISTRATION_MODES",
    "DICOMFusedSeriesWriterOperator",
    "DICOMSendOperator",
    "FusionOperator",
    "FusionPair",
    "FusionSeriesSelectorOperator",
    "SelectedSeries",
    "StudyLoaderOperator",
    "hot_spot_notes",
    "load_rules",
    "plan_pairs",
]

#: the documented default rules (docs/deploy.md)
DEFAULT_RULES = Path(__file__).with_name("selection_rules.json")
#: ``fusion.registration``: register when the frames of reference differ, always, or never
REGISTRATION_MODES = ("auto", "always", "never")
#: the first series number of the derived series; pair ``i`` gets ``SERIES_NUMBER + 2 i`` (+ 1: its colour)
SERIES_NUMBER = 9001

logger = logging.getLogger("hkafusion_monai.deploy")


def load_rules(path: str | Path | None = None) -> dict[str, Any]:
    """Read and check a rules file: ``selections`` with one ``"MR"`` and one ``"secondary"`` selection, and an
    optional ``fusion`` block (``registration``, ``colour_series``, ``allow_patient_mismatch``,
    ``hot_spot_min_kept``)."""
    path = Path(path or DEFAULT_RULES)
    try:
        rules = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise FusionInputError(f"{path}: cannot read the selection rules ({e})") from e
    if not isinstance(rules, dict):
        raise FusionInputError(f"{path}: the selection rules must be a JSON object")
    names = [s.get("name") for s in rules.get("selections", []) if isinstance(s, dict)]
    if sorted(names) != ["MR", "secondary"]:
        raise FusionInputError(
            f"{path}: the rules need exactly two selections named 'MR' and 'secondary', found {names}"
        )
    fusion = rules.setdefault("fusion", {})
    mode = fusion.setdefault("registration", "auto")
    if mode not in REGISTRATION_MODES:
        raise FusionInputError(f"{path}: fusion.registration is {mode!r}; use one of {REGISTRATION_MODES}")
    for flag in ("colour_series", "allow_patient_mismatch"):
        value = fusion.setdefault(flag, False)
        if not isinstance(value, bool):
            raise FusionInputError(f"{path}: fusion.{flag} is {value!r}; use true or false")
    kept = fusion.setdefault("hot_spot_min_kept", HOT_SPOT_MIN_KEPT)
    if isinstance(kept, bool) or not isinstance(kept, (int, float)) or not 0.0 <= kept <= 1.0:
        raise FusionInputError(f"{path}: fusion.hot_spot_min_kept is {kept!r}; use a fraction from 0 to 1")
    return rules


# ---------------------------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------------------------
class StudyLoaderOperator(DICOMDataLoaderOperator):
    """The SDK's DICOM loader over :func:`~hkafusion_monai.io.study.study_files`: symbolic links followed,
    every folder read once (a link loop is skipped with a warning naming it, where the SDK's own listing
    would recurse until memory runs out), hidden and non-DICOM files left out.

    Named output ``dicom_study_list``; see ``DICOMDataLoaderOperator``.
    """

    def _list_files(self, path, files: list[str]) -> None:
        found, skipped = study_files(path)
        for line in skipped:
            logger.warning(line)
        files.extend(str(f) for f in found if pydicom.misc.is_dicom(f))


# ---------------------------------------------------------------------------------------------------------
# selection and pairing
# ---------------------------------------------------------------------------------------------------------
@dataclass
class SelectedSeries:
    """A series chosen for fusion: the SDK's ``DICOMSeries``, the bundle reader's header summary, and its
    files in spatial order."""

    series: Any  # monai.deploy.core.domain.DICOMSeries
    header: DicomSeries
    files: list[Path]
    n_images: int
    extent_mm3: float

    @property
    def uid(self) -> str:
        return self.header.series_uid

    @property
    def frame_of_reference(self) -> str:
        return self.header.frame_of_reference_uid

    def describe(self) -> str:
        """``MR #1 'T1 3D phantom', 32 image(s), SeriesInstanceUID …`` (for the log and error messages)."""
        h = self.header
        number = f" #{h.series_number}" if h.series_number is not None else ""
        desc = f" {h.description!r}" if h.description else ""
        return f"{h.modality}{number}{desc}, {self.n_images} image(s), SeriesInstanceUID {h.series_uid}"


@dataclass
class FusionPair:
    """One MR series and one CT/PET/SPECT series to fuse, with the reasons for the choice."""

    mri: SelectedSeries
    other: SelectedSeries
    modality: str  # "CT", "PET" or "SPECT"
    register: bool
    why: str = ""
    index: int = 0


def _describe_sdk(series: Any) -> str:
    number = f" #{series.SeriesNumber}" if series.SeriesNumber is not None else ""
    desc = f" {series.SeriesDescription!r}" if series.SeriesDescription else ""
    n = len(series.get_sop_instances())
    return f"{series.Modality}{number}{desc}, {n} instance(s), SeriesInstanceUID {series.SeriesInstanceUID}"


def _not_a_volume(series: Any) -> str | None:
    """Why a series is, by its type, no volume to fuse (a localizer; an NM image other than a tomographic
    reconstruction: planar, whole-body, dynamic, gated, projections), or ``None``."""
    sops = series.get_sop_instances()
    if not sops:
        return "no instances"
    image_type = [str(v).upper() for v in (sops[0].get_native_sop_instance().get("ImageType") or ())]
    shown = "\\".join(image_type)
    if "LOCALIZER" in image_type:
        return f"a localizer (ImageType {shown})"
    if str(series.Modality).upper() == "NM" and (len(image_type) < 3 or image_type[2] != "RECON TOMO"):
        return f"an NM image of ImageType {shown}, not a reconstructed tomographic volume (RECON TOMO)"
    return None


def _selected(series: Any, role: str) -> SelectedSeries:
    """Check that an SDK series is one regular volume (the bundle reader's :func:`order_series`) and
    measure it."""
    datasets = [sop.get_native_sop_instance() for sop in series.get_sop_instances()]
    pairs = [(getattr(ds, "filename", None) or f"<{role} instance {i}>", ds) for i, ds in enumerate(datasets)]
    grouped = series_of(pairs)
    if len(grouped) != 1:
        raise FusionInputError(f"{role} series {series.SeriesInstanceUID}: no image instances with pixel data")
    header = grouped[0]
    files, step = order_series(header)
    first = datasets[0]
    if header.slices[0].multiframe:
        geometry = multiframe_geometry(first, files[0])
        n, spacing = len(geometry.order), geometry.pixel_spacing
    else:
        n, spacing = len(files), np.asarray([float(v) for v in first.PixelSpacing])
    extent = float(first.Rows) * float(spacing[0]) * float(first.Columns) * float(spacing[1]) * n * float(
        np.linalg.norm(step)
    )
    return SelectedSeries(series=series, header=header, files=list(files), n_images=n, extent_mm3=extent)


def plan_pairs(
    mris: list[SelectedSeries], others: list[SelectedSeries], rules: dict[str, Any], where: str = "the input"
) -> list[FusionPair]:
    """Pair each CT/PET/SPECT series with one MR series (the documented default, docs/deploy.md).

    The MR for a secondary series is, in this order of preference: one in the secondary's frame of reference;
    the one covering the largest volume (rows x columns x slices in mm^3); the one with more images; the
    lowest series number; the lowest SeriesInstanceUID. ``fusion.registration`` decides registration:
    ``auto`` when the frames of reference differ, ``always``, or ``never``; with ``never`` a pair in two
    frames of reference is refused (it can neither be trusted nor registered).

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

    def preference(m: SelectedSeries, other: SelectedSeries) -> tuple:
        number = m.header.series_number if m.header.series_number is not None else 1 << 30
        return (m.frame_of_reference != other.frame_of_reference, -m.extent_mm3, -m.n_images, number, m.uid)

    pairs = []
    for i, other in enumerate(others):
        ranked = sorted(mris, key=lambda m: preference(m, other))
        mri = ranked[0]
        same_frame = mri.frame_of_reference == other.frame_of_reference and bool(other.frame_of_reference)
        if len(mris) == 1:
            why = "the one MR series"
        else:
            why = ("same frame of reference, " if same_frame else "") + f"largest coverage of {len(mris)} MR series"
        if not same_frame and mode == "never":
            raise RefusedPairError(
                f"{where}: MR series {mri.describe()} and {other.header.modality} series {other.describe()} lie in "
                f"different frames of reference ({mri.frame_of_reference or 'none'} / {other.frame_of_reference or 'none'}) "
                "and fusion.registration is 'never': they can be neither trusted as co-registered nor registered; "
                "set fusion.registration to 'auto' in the rules"
            )
        register = mode == "always" or (mode == "auto" and not same_frame)
        modality = DICOM_MODALITIES[other.header.modality]
        pairs.append(FusionPair(mri=mri, other=other, modality=modality, register=register, why=why, index=i))
    return pairs


class FusionSeriesSelectorOperator(DICOMSeriesSelectorOperator):
    """Select the series of the one study with the rules' ``MR`` and ``secondary`` selections and pair them.

    Named input ``dicom_study_list``; named output ``pairs`` (a list of :class:`FusionPair`, one per
    CT/PET/SPECT series; :func:`plan_pairs` says which MR each gets). It logs one line per selected series.

    Args:
        fragment: the application.
        rules: the rules dict (:func:`load_rules`).
        input_folder: named in error messages.

    Raises (at run time):
        FusionInputError: no study, several studies, no MR or no secondary series (the message lists what the
            study holds), a chosen series that is not one regular volume.
        RefusedPairError: series of different patients (unless ``fusion.allow_patient_mismatch``), or a pair
            that can be neither trusted nor registered.
    """

    def __init__(self, fragment: Fragment, *args, rules: dict[str, Any], input_folder: str = "", **kwargs) -> None:
        self.rules = rules
        self.input_folder = input_folder
        selections = {"selections": rules["selections"]}
        super().__init__(fragment, *args, rules=json.dumps(selections), all_matched=True, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        spec.input(self.input_name_study_list)
        spec.output("pairs")

    def compute(self, op_input, op_output, context) -> None:
        studies = op_input.receive(self.input_name_study_list)
        op_output.emit(self.pairs(studies), "pairs")

    def pairs(self, studies: list) -> list[FusionPair]:
        """The fusion pairs of ``studies`` (the SDK's ``DICOMStudy`` list); see the class docstring."""
        where = self.input_folder or "the input"
        if not studies:
            raise FusionInputError(f"{where}: no DICOM study found (no readable DICOM image files)")
        if len(studies) > 1:
            uids = ", ".join(str(s.StudyInstanceUID) for s in studies)
            raise FusionInputError(f"{where}: {len(studies)} studies ({uids}); give one study per run")
        study = studies[0]
        self._check_patients(study, where)
        selected = super().filter(json.loads(self._rules_json_str), studies, True, False)
        chosen: dict[str, list] = {"MR": [], "secondary": []}
        for item in (s for st in selected for s in st.selected_series):
            if item.series not in chosen[item.selection_name]:
                chosen[item.selection_name].append(item.series)
        for role in chosen:  # series that are no volume by their type: said, and left out
            kept = []
            for s in chosen[role]:
                why = _not_a_volume(s)
                if why is None:
                    kept.append(s)
                else:
                    logger.warning("skipped %s: %s", _describe_sdk(s), why)
            chosen[role] = kept
        secondary_uids = {s.SeriesInstanceUID for s in chosen["secondary"]}
        chosen["MR"] = [s for s in chosen["MR"] if s.SeriesInstanceUID not in secondary_uids]
        seen = "\n  ".join(_describe_sdk(s) for s in study.get_all_series()) or "(none)"
        for role, what in (("MR", "MR series"), ("secondary", "CT, PET (PT) or SPECT (NM) series")):
            if not chosen[role]:
                rule = json.dumps(next(s for s in self.rules["selections"] if s["name"] == role).get("conditions", {}))
                raise FusionInputError(
                    f"{where}: no {what} matches the {role!r} selection rule {rule}; the study holds:\n  {seen}"
                )
        for s in chosen["secondary"]:
            if DICOM_MODALITIES.get(str(s.Modality).upper()) not in TASK_MODALITY.values():
                raise FusionInputError(
                    f"{where}: the 'secondary' rule selected {_describe_sdk(s)}; HKAFusion fuses MR with CT, PT "
                    "(PET) or NM (SPECT)"
                )
        for s in chosen["MR"]:
            if str(s.Modality).upper() != "MR":
                raise FusionInputError(f"{where}: the 'MR' rule selected {_describe_sdk(s)}, which is not an MR series")
        mris = [_selected(s, "MR") for s in chosen["MR"]]
        others = [_selected(s, str(s.Modality)) for s in chosen["secondary"]]
        for m in mris:
            logger.info("selected %s", m.describe())
        pairs = plan_pairs(mris, others, self.rules, where)
        for p in pairs:
            how = "registered" if p.register else "same frame of reference, not registered"
            logger.info("selected %s: fused with MR #%s (%s; %s)", p.other.describe(), p.mri.header.series_number, p.why, how)
        return pairs

    def _check_patients(self, study: Any, where: str) -> None:
        """Every image series of the study must carry one PatientID (empty IDs are not compared)."""
        if self.rules["fusion"]["allow_patient_mismatch"]:
            return
        by_patient: dict[str, list[Any]] = {}
        for s in study.get_all_series():
            sops = s.get_sop_instances()
            if not sops:
                continue
            ds = sops[0].get_native_sop_instance()
            if ds.get("Rows") is None:
                continue
            pid = str(ds.get("PatientID", "") or "").strip()
            if pid:
                by_patient.setdefault(pid, []).append(s)
        if len(by_patient) > 1:
            listed = "\n  ".join(
                f"PatientID {pid!r}: " + "; ".join(_describe_sdk(s) for s in series) for pid, series in by_patient.items()
            )
            raise RefusedPairError(
                f"{where}: the study holds series of {len(by_patient)} different patients; refusing to fuse them "
                f"(set \"allow_patient_mismatch\": true in the rules' fusion block only if they are one subject):\n  {listed}"
            )


# ---------------------------------------------------------------------------------------------------------
# fusion
# ---------------------------------------------------------------------------------------------------------
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


def _headers(selected: SelectedSeries) -> list[pydicom.Dataset]:
    """Per-slice headers in spatial order (one per frame of a multi-frame image)."""
    datasets = [pydicom.dcmread(f, stop_before_pixels=True) for f in selected.files]
    if selected.header.slices[0].multiframe:
        return frame_headers(datasets[0], multiframe_geometry(datasets[0], selected.files[0]))
    return datasets


class FusionOperator(Operator):
    """Fuse each pair on its MR grid, with the bundle's reader and preprocessing contract.

    Named input ``pairs`` (from :class:`FusionSeriesSelectorOperator`); named output ``fused``: a list of
    :class:`FusedPair`, in the order of the pairs. Each volume is read from the series' files by
    ``LoadFusionVolumed`` (the reader of the bundle's inference and evaluation: single-frame series, NM
    SPECT and enhanced multi-frame images), so Deploy fuses what they fuse.

    Args:
        fragment: the application.
        fuser: a :class:`hkafusion_monai.inference.Fuser`.
        colour_series: also render PET/SPECT in colour (``colour_rendering``) for an RGB series.
        allow_patient_mismatch: passed to :meth:`Fuser.fuse_volumes` (the selector has refused mismatches
            unless the rules allow them).
        check_outputs: called with the pairs before any work (the writer's
            :meth:`DICOMFusedSeriesWriterOperator.check_targets`), so that an existing output fails first.
        hot_spot_min_kept: the hot-spot guard's fraction (the rules' ``fusion.hot_spot_min_kept``): a PET/SPECT
            hot spot keeping less of its contrast in the fusion is lost, logged, and noted in the series.
    """

    def __init__(
        self, fragment: Fragment, *args, fuser: Any, colour_series: bool = False,
        allow_patient_mismatch: bool = False, check_outputs: Any = None,
        hot_spot_min_kept: float = HOT_SPOT_MIN_KEPT, **kwargs,
    ) -> None:
        self.hot_spot_min_kept = float(hot_spot_min_kept)
        self.check_outputs = check_outputs
        self.fuser = fuser
        self.colour_series = colour_series
        self.allow_patient_mismatch = allow_patient_mismatch
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        spec.input("pairs")
        spec.output("fused")

    def compute(self, op_input, op_output, context) -> None:
        op_output.emit(self.fuse(op_input.receive("pairs")), "fused")

    def fuse(self, pairs: list[FusionPair]) -> list[FusedPair]:
        """Fuse every pair (see the class docstring)."""
        from hkafusion_monai.transforms.volume import LoadFusionVolumed

        if self.check_outputs is not None:
            self.check_outputs(pairs)
        load = LoadFusionVolumed(["v"], allow_blank=True)
        cache: dict[str, Any] = {}

        def volume(s: SelectedSeries):
            if s.uid not in cache:
                cache[s.uid] = load({"v": [str(f) for f in s.files]})["v"]
            return cache[s.uid]

        results = []
        for p in pairs:
            mri, other = volume(p.mri), volume(p.other)
            names = f"MR series {p.mri.describe()} and {p.other.header.modality} series {p.other.describe()}"
            kwargs = {"allow_patient_mismatch": True} if self.allow_patient_mismatch else {}
            try:
                fused, other_on_mri = self.fuser.fuse_volumes(
                    mri, other, modality=p.modality, register=p.register, return_other=True, **kwargs
                )
            except HKAFusionError as e:  # refused pair, overlap: name both series
                raise type(e)(f"{names}: {e}") from e
            except (ValueError, RuntimeError) as e:
                what = "cannot be registered" if p.register else "cannot be fused"
                detail = " ".join(str(e).split())[:300]
                raise RefusedPairError(f"{names}: {what} ({detail})") from e
            array = fused.as_tensor()[0].numpy().transpose(2, 1, 0)
            other_array = other_on_mri.as_tensor()[0].numpy().transpose(2, 1, 0)
            colour = None
            if self.colour_series and p.modality in ("PET", "SPECT"):
                from hkafusion_monai.utils.colour import colour_rendering

                colour = colour_rendering(array, other_array)
            mri_headers = _headers(p.mri)
            if len(mri_headers) != array.shape[0]:
                raise FusionInputError(f"MR series {p.mri.uid}: {len(mri_headers)} slices but a {array.shape} volume")
            result = FusedPair(
                p, np.ascontiguousarray(array, dtype=np.float32), mri_headers, _headers(p.other), colour,
                min_kept=self.hot_spot_min_kept,
            )
            if p.modality in ("PET", "SPECT"):
                # (slices, rows, columns) -> (rows, columns, slices): position (row, column, k) lies on mri[k]
                result.hot_spots = hot_spot_guard(
                    array.transpose(1, 2, 0), other_array.transpose(1, 2, 0), min_kept=self.hot_spot_min_kept,
                    max_value=1.0,
                )
                _log_hot_spots(result)
            results.append(result)
        return results


def _spot_words(spot: GuardedHotSpot) -> str:
    row, column, k = spot.position
    return f"instance {k + 1}, row {row}, column {column}"


def _log_hot_spots(result: FusedPair) -> None:
    """One line per PET/SPECT pair: the guard's figures (INFO), and the lost hot spots where any (WARNING)."""
    spots, lost, pair = result.hot_spots, result.lost_hot_spots, result.pair
    what = pair.other.describe()
    if not spots:
        logger.info("hot-spot guard, %s: no hot spot", what)
        return
    figures = (
        f"{len(spots)} hot spot(s), {len(lost)} keeping less than {result.min_kept:.0%} of their contrast "
        f"(the least {min(s.kept for s in spots):.0%})"
    )
    if not lost:
        logger.info("hot-spot guard, %s: %s", what, figures)
        return
    shown = "; ".join(f"({_spot_words(s)} of the derived series) kept {s.kept:.0%}" for s in lost[:10])
    more = f"; and {len(lost) - 10} more" if len(lost) > 10 else ""
    logger.warning(
        "hot-spot guard, %s: %s, at %s%s; the derived series says so: look at the %s series there",
        what, figures, shown, more, pair.other.header.modality,
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
        f"{result.pair.other.uid} keep less than {result.min_kept:.0%} of their contrast in this fusion (instances "
        f"{', '.join(str(k + 1) for k in slices)}); read the {modality} series there, not this fusion alone."
    )
    here: dict[int, list[str]] = {}
    for s in lost:
        row, column, k = s.position
        here.setdefault(k, []).append(f"the hot spot at row {row}, column {column} keeps {s.kept:.0%} of its contrast")
    slice_notes = {k: f"In this instance, {'; '.join(words)}." for k, words in here.items()}
    return {"note": note, "slice_notes": slice_notes, "description_note": f"hot spot lost: see {modality}"}


# ---------------------------------------------------------------------------------------------------------
# writing and sending
# ---------------------------------------------------------------------------------------------------------
def series_folder(output_folder: Path, pair: FusionPair) -> Path:
    """``<output>/HKAFusion_MR+<CT|PT|NM>_<secondary SeriesInstanceUID>``: one folder per pair."""
    return output_folder / f"HKAFusion_MR+{pair.other.header.modality}_{pair.other.uid}"


class DICOMFusedSeriesWriterOperator(Operator):
    """Write one derived MR series per fused pair (and its optional RGB series) under the output folder.

    Named input ``fused`` (from :class:`FusionOperator`); named output ``written`` (the :class:`FusedPair`
    list with the written files). Every target is checked before anything is written: an existing folder is
    an error unless ``overwrite``. Each series is written to a temporary folder and renamed (a watcher never
    sees half a series), then read back and checked (:func:`~hkafusion_monai.io.dicom_series.check_written_series`).
    If a later series fails, the ones written by this run are removed.

    Args:
        fragment: the application.
        output_folder: where series folders are created.
        model_version: recorded in the series (``DerivationDescription``, ``SoftwareVersions``).
        overwrite: replace existing series folders.
    """

    def __init__(
        self, fragment: Fragment, *args, output_folder: str | Path, model_version: str = "unknown",
        overwrite: bool = False, **kwargs,
    ) -> None:
        self.output_folder = Path(output_folder)
        self.model_version = model_version
        self.overwrite = overwrite
        self.written: list[FusedPair] = []
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        spec.input("fused")
        spec.output("written").condition(ConditionType.NONE)  # a receiver only with --send

    def compute(self, op_input, op_output, context) -> None:
        op_output.emit(self.write(op_input.receive("fused")), "written")

    def check_targets(self, pairs: list[FusionPair]) -> list[Path]:
        """The series folders of ``pairs``; raises :class:`OutputExistsError` for an existing one unless
        ``overwrite``."""
        targets = [series_folder(self.output_folder, p) for p in pairs]
        existing = [t for t in targets if t.exists()]
        if existing and not self.overwrite:
            raise OutputExistsError(
                f"{existing[0]} exists (a series of an earlier run); pass --overwrite to replace it"
                + (f" ({len(existing)} series folders exist)" if len(existing) > 1 else "")
            )
        return targets

    def write(self, fused: list[FusedPair]) -> list[FusedPair]:
        """Write and check every series (see the class docstring)."""
        from hkafusion_monai.io.dicom_series import (
            check_written_series,
            write_fused_series,
        )

        targets = self.check_targets([f.pair for f in fused])
        done: list[Path] = []
        try:
            for f, target in zip(fused, targets, strict=True):
                files = write_fused_series(
                    f.volume, f.mri, f.other, target, model_version=self.model_version, colour=f.colour,
                    series_number=SERIES_NUMBER + 2 * f.pair.index, overwrite=self.overwrite, **hot_spot_notes(f),
                )
                done.append(target)
                check_written_series(files["mr"], f.mri)
                f.written = files["mr"] + files["sc"]
                ds = pydicom.dcmread(files["mr"][0], stop_before_pixels=True)
                logger.info(
                    "wrote %s series %s, %d instance(s)%s, to %s", ds.SeriesDescription, ds.SeriesInstanceUID,
                    len(files["mr"]), f" and {len(files['sc'])} colour instance(s)" if files["sc"] else "", target,
                )
        except BaseException:
            if not self.overwrite:  # nothing half-written: remove what this run wrote
                for target in done:
                    shutil.rmtree(target, ignore_errors=True)
            raise
        self.written = fused
        return fused


class DICOMSendOperator(Operator):
    """Send every written series to a DICOM destination by C-STORE (:func:`hkafusion_monai.io.pacs.send_files`).

    Named input ``written`` (from :class:`DICOMFusedSeriesWriterOperator`).

    Args:
        fragment: the application.
        destination: ``"AE@host:port"`` or a :class:`~hkafusion_monai.io.pacs.DicomDestination`.
        calling_ae: this application's AE title.
        timeout: seconds for the connection, the association and each answer.

    Raises (at run time):
        HKAFusionError: the destination refused or could not be reached (named); the written series stay.
    """

    def __init__(self, fragment: Fragment, *args, destination: Any, calling_ae: str, timeout: float = 30.0, **kwargs) -> None:
        self.destination = destination
        self.calling_ae = calling_ae
        self.timeout = timeout
        self.sent = 0
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        spec.input("written")

    def compute(self, op_input, op_output, context) -> None:
        from hkafusion_monai.io.pacs import send_files

        for f in op_input.receive("written"):
            n = send_files(f.written, self.destination, calling_ae=self.calling_ae, timeout=self.timeout)
            self.sent += n
            logger.info("sent %d instance(s) of %s to %s", n, f.written[0].parent.name, self.destination)


def remove_partial_output(output_folder: Path, before: set[str]) -> None:
    """Remove the writer's temporary folders (``.HKAFusion_*.tmp``) that appeared in ``output_folder`` since
    ``before`` (its entries at start): what an interrupted run leaves behind."""
    if not output_folder.is_dir():
        return
    for entry in os.scandir(output_folder):
        if entry.name not in before and entry.name.startswith(".HKAFusion_") and entry.name.endswith(".tmp"):
            shutil.rmtree(entry.path, ignore_errors=True)
