"""The series selector: the SDK's ``DICOMSeriesSelectorOperator`` with the rules' ``MR`` and ``secondary``
selections, and the pairs to fuse (:func:`hkafusion_monai.deploy.planning.plan_study`)."""

from __future__ import annotations

import json
from typing import Any

from monai.deploy.core import Fragment, OperatorSpec
from monai.deploy.operators.dicom_series_selector_operator import DICOMSeriesSelectorOperator

from hkafusion_monai.deploy.planning import FusionPair, plan_study
from hkafusion_monai.io.dicom import DicomSeries, series_of
from hkafusion_monai.io.pairing import describe_series
from hkafusion_monai.utils.errors import FusionInputError, RefusedPairError

__all__ = ["FusionSeriesSelectorOperator"]


def _describe_sdk(series: Any) -> str:
    count = f"{len(series.get_sop_instances())} instance(s)"
    return describe_series(
        series.Modality, series.SeriesNumber, series.SeriesDescription, count, series.SeriesInstanceUID
    )


def _header(series: Any, role: str) -> DicomSeries:
    """The header summary of an SDK series, as the bundle's reader makes it (:func:`series_of`); without image
    instances, one without slices."""
    datasets = [sop.get_native_sop_instance() for sop in series.get_sop_instances()]
    pairs = [(getattr(ds, "filename", None) or f"<{role} instance {i}>", ds) for i, ds in enumerate(datasets)]
    found = series_of(pairs)
    if found:
        return found[0]
    image_type = datasets[0].get("ImageType") if datasets else None
    return DicomSeries(
        series_uid=str(series.SeriesInstanceUID),
        study_uid="",
        frame_of_reference_uid="",
        modality=str(series.Modality).upper(),
        description=str(series.SeriesDescription or ""),
        series_number=series.SeriesNumber,
        patient_id="",
        image_type=tuple(str(v).upper() for v in image_type or ()),
    )


class FusionSeriesSelectorOperator(DICOMSeriesSelectorOperator):
    """Select the series of the one study with the rules' ``MR`` and ``secondary`` selections and pair them.

    Named input ``dicom_study_list``; named output ``pairs`` (a list of
    :class:`~hkafusion_monai.deploy.planning.FusionPair`, one per CT/PET/SPECT series;
    :func:`~hkafusion_monai.deploy.planning.plan_study` says which MR each gets). It logs one line per
    selected series.

    Args:
        fragment: the application.
        rules: the rules dict (:func:`~hkafusion_monai.deploy.rules.load_rules`).
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
        # the rules as the SDK's filter() reads them, kept here (the SDK's own copy is private)
        self.selections: dict[str, Any] = json.loads(json.dumps(selections))
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
        selected = super().filter(self.selections, studies, True, False)
        chosen: dict[str, list] = {"MR": [], "secondary": []}
        for item in (s for st in selected for s in st.selected_series):
            if item.series not in chosen[item.selection_name]:
                chosen[item.selection_name].append(item.series)
        headers = {role: [_header(s, role) for s in series] for role, series in chosen.items()}
        holds = [_describe_sdk(s) for s in study.get_all_series()]
        return plan_study(headers, self.rules, where, holds)

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
                f"PatientID {pid!r}: " + "; ".join(_describe_sdk(s) for s in series)
                for pid, series in by_patient.items()
            )
            raise RefusedPairError(
                f"{where}: the study holds series of {len(by_patient)} different patients; refusing to fuse them "
                f'(set "allow_patient_mismatch": true in the rules\' fusion block only if they are one '
                f"subject):\n  {listed}"
            )
