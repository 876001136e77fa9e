"""The sender: C-STORE of the written series to a DICOM destination (:func:`hkafusion_monai.io.pacs.send_files`)."""

from __future__ import annotations

import logging
from typing import Any

from monai.deploy.core import Fragment, Operator, OperatorSpec

from hkafusion_monai.io.pacs import send_files

__all__ = ["DICOMSendOperator"]

logger = logging.getLogger("hkafusion_monai.deploy")


class DICOMSendOperator(Operator):
    """Send every written series to a DICOM destination by C-STORE (:func:`hkafusion_monai.io.pacs.send_files`).

    Named input ``written`` (from the ``DICOMFusedSeriesWriterOperator``).

    Args:
        fragment: the application.
        destination: ``"AE@host:port"`` or a :class:`~hkafusion_monai.io.pacs.DicomDestination`.
        calling_ae: this application's AE title.
        timeout: seconds for the connection, the association and each answer.

    Raises (at run time):
        HKAFusionError: the destination refused or could not be reached (named); the written series stay.
    """

    def __init__(
        self, fragment: Fragment, *args, destination: Any, calling_ae: str, timeout: float = 30.0, **kwargs
    ) -> None:
        self.destination = destination
        self.calling_ae = calling_ae
        self.timeout = timeout
        self.sent = 0
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        spec.input("written")

    def compute(self, op_input, op_output, context) -> None:
        for f in op_input.receive("written"):
            n = send_files(f.written, self.destination, calling_ae=self.calling_ae, timeout=self.timeout)
            self.sent += n
            logger.info("sent %d instance(s) of %s to %s", n, f.written[0].parent.name, self.destination)
