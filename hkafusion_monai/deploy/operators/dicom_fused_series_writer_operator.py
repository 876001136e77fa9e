"""The writer: one derived MR series per fused pair (:func:`hkafusion_monai.io.dicom_series.write_fused_series`),
each checked after writing; a series whose fusion lost a hot spot says so in its ``SeriesDescription`` and
``ImageComments``."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pydicom
from monai.deploy.core import ConditionType, Fragment, Operator, OperatorSpec

from hkafusion_monai.deploy.fused import FusedPair, hot_spot_notes
from hkafusion_monai.deploy.planning import FusionPair
from hkafusion_monai.io.dicom_series import check_written_series, write_fused_series
from hkafusion_monai.utils.errors import OutputExistsError

__all__ = ["SERIES_NUMBER", "DICOMFusedSeriesWriterOperator", "remove_partial_output", "series_folder"]

#: the first series number of the derived series; pair ``i`` gets ``SERIES_NUMBER + 2 i`` (+ 1: its colour)
SERIES_NUMBER = 9001

logger = logging.getLogger("hkafusion_monai.deploy")


def series_folder(output_folder: Path, pair: FusionPair) -> Path:
    """``<output>/HKAFusion_MR+<CT|PT|NM>_<secondary SeriesInstanceUID>``: one folder per pair."""
    return output_folder / f"HKAFusion_MR+{pair.other.header.modality}_{pair.other.uid}"


class DICOMFusedSeriesWriterOperator(Operator):
    """Write one derived MR series per fused pair (and its optional RGB series) under the output folder.

    Named input ``fused`` (from the ``FusionOperator``); named output ``written`` (the
    :class:`~hkafusion_monai.deploy.fused.FusedPair` list with the written files). Every target is checked before
    anything is written: an existing folder is an error unless ``overwrite``. Each series is written to a
    temporary folder and renamed (a watcher never sees half a series), then read back and checked
    (:func:`~hkafusion_monai.io.dicom_series.check_written_series`). If a later series fails, the ones written by
    this run are removed.

    Args:
        fragment: the application.
        output_folder: where series folders are created.
        model_version: recorded in the series (``DerivationDescription``, ``SoftwareVersions``).
        overwrite: replace existing series folders.
    """

    def __init__(
        self,
        fragment: Fragment,
        *args,
        output_folder: str | Path,
        model_version: str = "unknown",
        overwrite: bool = False,
        **kwargs,
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
        targets = self.check_targets([f.pair for f in fused])
        done: list[Path] = []
        try:
            for f, target in zip(fused, targets, strict=True):
                files = write_fused_series(
                    f.volume,
                    f.mri,
                    f.other,
                    target,
                    model_version=self.model_version,
                    colour=f.colour,
                    series_number=SERIES_NUMBER + 2 * f.pair.index,
                    overwrite=self.overwrite,
                    **hot_spot_notes(f),
                )
                done.append(target)
                check_written_series(files["mr"], f.mri)
                f.written = files["mr"] + files["sc"]
                ds = pydicom.dcmread(files["mr"][0], stop_before_pixels=True)
                logger.info(
                    "wrote %s series %s, %d instance(s)%s, to %s",
                    ds.SeriesDescription,
                    ds.SeriesInstanceUID,
                    len(files["mr"]),
                    f" and {len(files['sc'])} colour instance(s)" if files["sc"] else "",
                    target,
                )
        except BaseException:
            if not self.overwrite:  # nothing half-written: remove what this run wrote
                for target in done:
                    shutil.rmtree(target, ignore_errors=True)
            raise
        self.written = fused
        return fused


def remove_partial_output(output_folder: Path, before: set[str]) -> None:
    """Remove the writer's temporary folders (``.HKAFusion_*.tmp``) that appeared in ``output_folder`` since
    ``before`` (its entries at start): what an interrupted run leaves behind."""
    if not output_folder.is_dir():
        return
    for entry in os.scandir(output_folder):
        if entry.name not in before and entry.name.startswith(".HKAFusion_") and entry.name.endswith(".tmp"):
            shutil.rmtree(entry.path, ignore_errors=True)
