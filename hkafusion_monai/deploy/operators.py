"""The MONAI Deploy operators of the fusion application (docs/deploy.md).

- :class:`FusionSeriesSelectorOperator`: the SDK's ``DICOMSeriesSelectorOperator`` that insists on exactly
  one study and exactly one series per rule, says which series it saw when it finds none or several, and
  checks the chosen series is one regular volume (the bundle reader's ``order_series``);
- :class:`FusionOperator`: both volumes to the fused volume on the MR grid, through :meth:`Fuser.fuse_volumes`
  (the bundle's one preprocessing contract; registration when the frames of reference differ);
- :class:`DICOMFusedSeriesWriterOperator`: :func:`hkafusion_monai.io.dicom_series.write_fused_series`.

Every failure raises :class:`~hkafusion_monai.transforms.reader.FusionInputError` (or ``FileExistsError``)
naming the input and the problem, before anything is written.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.deploy.core import Fragment, Operator, OperatorSpec
from monai.deploy.core.domain.dicom_series_selection import StudySelectedSeries
from monai.deploy.operators.dicom_series_selector_operator import DICOMSeriesSelectorOperator

from hkafusion_monai.transforms.dicom import DICOM_MODALITIES, lps_affine, order_series, series_of
from hkafusion_monai.transforms.reader import FusionInputError

__all__ = [
    "DEFAULT_RULES",
    "REGISTRATION_MODES",
    "DICOMFusedSeriesWriterOperator",
    "FusionOperator",
    "FusionSeriesSelectorOperator",
    "load_rules",
]

#: the documented default rules (docs/deploy.md)
DEFAULT_RULES = Path(__file__).with_name("selection_rules.json")
#: ``fusion.registration``: register when the frames of reference differ, always, or never
REGISTRATION_MODES = ("auto", "always", "never")
_RAS_FROM_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])

logger = logging.getLogger(__name__)


def load_rules(path: str | Path | None = None) -> dict[str, Any]:
    """Read and check a rules file: ``selections`` with one ``"MR"`` and one ``"secondary"`` selection, and an
    optional ``fusion`` block (``registration``, ``colour_series``)."""
    path = Path(path or DEFAULT_RULES)
    try:
        rules = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise FusionInputError(f"{path}: cannot read the selection rules ({e})") from e
    names = [s.get("name") for s in rules.get("selections", []) if isinstance(s, dict)]
    if sorted(names) != ["MR", "secondary"]:
        raise FusionInputError(
            f"{path}: the rules need exactly two selections named 'MR' and 'secondary', found {names}"
        )
    fusion = rules.setdefault("fusion", {})
    mode = fusion.setdefault("registration", "auto")
    if mode not in REGISTRATION_MODES:
        raise FusionInputError(f"{path}: fusion.registration is {mode!r}; use one of {REGISTRATION_MODES}")
    fusion.setdefault("colour_series", False)
    return rules


def _describe(series: Any) -> str:
    number = f" #{series.SeriesNumber}" if series.SeriesNumber is not None else ""
    desc = f" {series.SeriesDescription!r}" if series.SeriesDescription else ""
    n = len(series.get_sop_instances())
    return f"{series.Modality}{number}{desc}, {n} image(s), SeriesInstanceUID {series.SeriesInstanceUID}"


class FusionSeriesSelectorOperator(DICOMSeriesSelectorOperator):
    """The SDK's series selector for one named selection of the rules, which must pick exactly one series.

    Named input ``dicom_study_list``; named output ``study_selected_series_list`` (one study, one series).

    Args:
        fragment: the application.
        rules: the whole rules dict (:func:`load_rules`).
        selection: ``"MR"`` or ``"secondary"``.
        input_folder: named in error messages.

    Raises (at run time):
        FusionInputError: no study, several studies, no matching series, or several matching series (the
            message lists the candidates, and says to add a condition that decides).
    """

    def __init__(
        self, fragment: Fragment, *args, rules: dict[str, Any], selection: str, input_folder: str = "", **kwargs
    ) -> None:
        chosen = [s for s in rules["selections"] if s.get("name") == selection]
        self.selection = selection
        self.rule_conditions = chosen[0].get("conditions", {})
        self.input_folder = input_folder
        super().__init__(fragment, *args, rules=json.dumps({"selections": chosen}), all_matched=True, **kwargs)

    def filter(self, selection_rules, dicom_study_list, all_matched=False, sort_by_sop_instance_count=False):
        where = self.input_folder or "the input"
        if not dicom_study_list:
            raise FusionInputError(f"{where}: no DICOM study found (no readable DICOM image files)")
        if len(dicom_study_list) > 1:
            uids = ", ".join(str(s.StudyInstanceUID) for s in dicom_study_list)
            raise FusionInputError(f"{where}: {len(dicom_study_list)} studies ({uids}); give one study per run")
        selected = super().filter(selection_rules, dicom_study_list, True, sort_by_sop_instance_count)
        series = [s.series for study in selected for s in study.selected_series]
        if len(series) == 1:
            # here, before DICOMSeriesToVolumeOperator silently drops slices without position or orientation
            datasets = [sop.get_native_sop_instance() for sop in series[0].get_sop_instances()]
            _check_volume(series[0], datasets, "MR" if self.selection == "MR" else str(series[0].Modality))
            return selected
        seen = "\n  ".join(_describe(s) for s in dicom_study_list[0].get_all_series()) or "(none)"
        rule = json.dumps(self.rule_conditions)
        if not series:
            what = "MR series" if self.selection == "MR" else "CT, PET (PT) or SPECT (NM) series"
            raise FusionInputError(
                f"{where}: no {what} matches the {self.selection!r} selection rule {rule}; the study holds:\n  {seen}"
            )
        found = "\n  ".join(_describe(s) for s in series)
        raise FusionInputError(
            f"{where}: {len(series)} series match the {self.selection!r} selection rule {rule} and no rule "
            f"decides between them:\n  {found}\nadd a condition (SeriesDescription, SeriesInstanceUID, "
            "Modality) to the rules (docs/deploy.md)"
        )


def _datasets(selected: list[StudySelectedSeries]) -> tuple[Any, list]:
    series = selected[0].selected_series[0].series
    return series, [sop.get_native_sop_instance() for sop in series.get_sop_instances()]


def _check_volume(series: Any, datasets: list, role: str) -> None:
    """The regular-volume checks of the bundle's own DICOM reader (:func:`order_series`)."""
    pairs = [(getattr(ds, "filename", None) or f"<{role} instance {i}>", ds) for i, ds in enumerate(datasets)]
    grouped = series_of(pairs)
    if len(grouped) != 1:
        raise FusionInputError(f"{role} series {series.SeriesInstanceUID}: no image instances with pixel data")
    order_series(grouped[0])


def _volume(image: Any, datasets: list) -> MetaTensor:
    """The SDK's ``Image`` ``(slices, rows, columns)`` as a ``(1, columns, rows, slices)`` MetaTensor with its
    RAS affine, computed from the sorted instances (the SDK's own affine scales the row direction by the
    row spacing, which is wrong for non-square pixels)."""
    array = np.asarray(image.asnumpy(), dtype=np.float32)
    if array.ndim != 3 or array.shape[0] != len(datasets):
        raise FusionInputError(f"expected one (slices, rows, columns) volume, got shape {array.shape}")
    affine = torch.as_tensor(_RAS_FROM_LPS @ lps_affine(datasets), dtype=torch.float64)
    name = str(datasets[0].get("SeriesInstanceUID", "series"))
    meta = {"filename_or_obj": name, "original_affine": affine.numpy().copy()}
    return MetaTensor(torch.from_numpy(np.ascontiguousarray(array.transpose(2, 1, 0)))[None], affine=affine, meta=meta)


class FusionOperator(Operator):
    """Fuse the selected MR volume with the selected CT/PET/SPECT volume, on the MR grid.

    Named inputs: ``mri_image`` and ``other_image`` (``DICOMSeriesToVolumeOperator`` outputs), ``mri_series``
    and ``other_series`` (the selectors' outputs, for the instances and their headers; the selectors have
    checked each series is one regular volume). Named output
    ``fused``: a dict with ``volume`` (float32 ``(slices, rows, columns)`` in [0, 1], slice ``k`` on MR
    instance ``k``), ``mri`` and ``other`` (the datasets), ``colour`` (uint8 RGB or ``None``), ``registered``.

    Args:
        fragment: the application.
        fuser: a :class:`hkafusion_monai.inference.Fuser`.
        registration: ``"auto"`` (register when the frames of reference differ), ``"always"`` or ``"never"``.
        colour_series: also render PET/SPECT in colour (``colour_rendering``) for an RGB series.
    """

    def __init__(
        self, fragment: Fragment, *args, fuser: Any, registration: str = "auto", colour_series: bool = False, **kwargs
    ) -> None:
        if registration not in REGISTRATION_MODES:
            raise ValueError(f"registration must be one of {REGISTRATION_MODES}, got {registration!r}")
        self.fuser = fuser
        self.registration = registration
        self.colour_series = colour_series
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        for name in ("mri_image", "other_image", "mri_series", "other_series"):
            spec.input(name)
        spec.output("fused")

    def compute(self, op_input, op_output, context) -> None:
        mri_image, other_image = op_input.receive("mri_image"), op_input.receive("other_image")
        mri_series, mri_ds = _datasets(op_input.receive("mri_series"))
        other_series, other_ds = _datasets(op_input.receive("other_series"))
        modality = DICOM_MODALITIES.get(str(other_series.Modality).upper())
        if modality not in ("CT", "PET", "SPECT"):
            raise FusionInputError(
                f"secondary series {other_series.SeriesInstanceUID}: modality {other_series.Modality!r}; "
                "HKAFusion fuses MR with CT, PT (PET) or NM (SPECT)"
            )
        mri_for = str(mri_ds[0].get("FrameOfReferenceUID", ""))
        other_for = str(other_ds[0].get("FrameOfReferenceUID", ""))
        if not mri_for:  # the derived series lies in the MR's frame of reference: it must have one
            raise FusionInputError(f"MR series {mri_series.SeriesInstanceUID}: no FrameOfReferenceUID")
        register = self.registration == "always" or (self.registration == "auto" and mri_for != other_for)
        if register:
            logger.info("registering %s to MR (frames of reference %s / %s)", modality, mri_for, other_for)
        mri, other = _volume(mri_image, mri_ds), _volume(other_image, other_ds)
        try:
            fused, other_on_mri = self.fuser.fuse_volumes(
                mri, other, modality=modality, register=register, return_other=True
            )
        except ValueError as e:  # the overlap check, NaN: name both series
            raise FusionInputError(
                f"MR series {mri_series.SeriesInstanceUID} and {modality} series {other_series.SeriesInstanceUID}: {e}"
            ) from e
        volume = fused.as_tensor()[0].numpy().transpose(2, 1, 0)
        colour = None
        if self.colour_series and modality in ("PET", "SPECT"):
            from hkafusion_monai.transforms.colour import colour_rendering

            colour = colour_rendering(volume, other_on_mri.as_tensor()[0].numpy().transpose(2, 1, 0))
        op_output.emit(
            {"volume": np.ascontiguousarray(volume), "mri": mri_ds, "other": other_ds, "colour": colour, "registered": register},
            "fused",
        )


class DICOMFusedSeriesWriterOperator(Operator):
    """Write the fused volume as a derived MR series (and the optional RGB series) under the output folder.

    Named input ``fused`` (from :class:`FusionOperator`). The series goes to
    ``<output_folder>/HKAFusion_<MR SeriesInstanceUID>/``, written to a temporary folder and renamed, so a
    watcher never sees half a series; an existing folder is an error (nothing is replaced).

    Args:
        fragment: the application.
        output_folder: where series folders are created.
        model_version: recorded in the series (``DerivationDescription``, ``SoftwareVersions``).
    """

    def __init__(self, fragment: Fragment, *args, output_folder: str | Path, model_version: str = "unknown", **kwargs) -> None:
        self.output_folder = Path(output_folder)
        self.model_version = model_version
        self.written: dict[str, list[Path]] = {}
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        spec.input("fused")

    def compute(self, op_input, op_output, context) -> None:
        from hkafusion_monai.io.dicom_series import write_fused_series

        fused = op_input.receive("fused")
        mri = fused["mri"]
        out = self.output_folder / f"HKAFusion_{mri[0].SeriesInstanceUID}"
        self.written = write_fused_series(
            fused["volume"], mri, fused["other"], out, model_version=self.model_version, colour=fused["colour"]
        )
        logger.info("wrote %d fused MR instance(s) to %s", len(self.written["mr"]), out)
