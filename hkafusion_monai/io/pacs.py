"""Sending DICOM files to a PACS or any other DICOM destination by C-STORE (pynetdicom).

>>> destination = DicomDestination.parse("ORTHANC@127.0.0.1:4242")      # doctest: +SKIP
>>> send_files(files, destination, calling_ae="HKAFUSION")             # doctest: +SKIP

Every failure (no connection, an association the destination rejects or aborts, an instance it does not
store) raises one :class:`~hkafusion_monai.utils.errors.HKAFusionError` that names the destination and the
problem; the files are never modified.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hkafusion_monai.utils.errors import HKAFusionError

if TYPE_CHECKING:
    from pydicom import Dataset

__all__ = ["DEFAULT_CALLING_AE", "DicomDestination", "send_files"]

#: the calling AE title of this application unless configured
DEFAULT_CALLING_AE = "HKAFUSION"
_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # 16 printable characters, no backslash


def _check_ae(title: str, what: str) -> str:
    if not _AE_TITLE.match(title) or not title.strip():
        raise HKAFusionError(f"{what} {title!r}: an AE title is 1 to 16 printable characters without a backslash")
    return title


@dataclass(frozen=True)
class DicomDestination:
    """A DICOM destination: its AE title, host and port."""

    ae_title: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> DicomDestination:
        """``"AE@host:port"`` (e.g. ``ORTHANC@pacs.example.org:4242``, ``PACS@[::1]:104``)."""
        match = re.fullmatch(r"(?P<ae>[^@]+)@(?P<host>\[[^\]]+\]|[^:@\[\]]+):(?P<port>\d{1,5})", text.strip())
        if match is None:
            raise HKAFusionError(f"--send {text!r}: expected AE@host:port, e.g. ORTHANC@127.0.0.1:4242")
        port = int(match["port"])
        if not 0 < port < 65536:
            raise HKAFusionError(f"--send {text!r}: port {port} is not between 1 and 65535")
        return cls(_check_ae(match["ae"], "--send: called AE title"), match["host"].strip("[]"), port)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.ae_title}@{host}:{self.port}"


def send_files(
    files: Sequence[str | os.PathLike],
    destination: DicomDestination | str,
    calling_ae: str = DEFAULT_CALLING_AE,
    timeout: float = 30.0,
) -> int:
    """Send DICOM files to ``destination`` over one association (C-STORE), in order.

    Args:
        files: DICOM Part 10 files.
        destination: a :class:`DicomDestination` or ``"AE@host:port"``.
        calling_ae: this application's AE title.
        timeout: seconds to wait for the connection, the association and each answer.

    Returns:
        The number of instances the destination stored (warnings count as stored: the standard's
        ``0xB000``-``0xB007`` statuses).

    Raises:
        HKAFusionError: naming the destination: a bad address, no connection, an association rejected or
            aborted, or an instance it refused (with the status), after which the remaining files are not sent.
    """
    import pydicom

    if isinstance(destination, str):
        destination = DicomDestination.parse(destination)
    calling_ae = _check_ae(calling_ae, "calling AE title")
    datasets = [pydicom.dcmread(Path(f)) for f in files]
    if not datasets:
        return 0
    assoc = _associate(datasets, destination, calling_ae, timeout)
    try:
        return _store(assoc, files, datasets, destination)
    finally:
        if assoc.is_established:
            assoc.release()


def _associate(datasets: Sequence[Dataset], destination: DicomDestination, calling_ae: str, timeout: float) -> Any:
    """An association with ``destination`` that offers one presentation context per SOP class and transfer
    syntax of ``datasets``; an :class:`HKAFusionError` when there are too many or it is not established."""
    from pynetdicom import AE

    contexts = sorted({(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)) for ds in datasets})
    if len(contexts) > 128:
        raise HKAFusionError(f"{destination}: {len(contexts)} presentation contexts; at most 128 fit one association")
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.connection_timeout = timeout
    for sop_class, syntax in contexts:
        ae.add_requested_context(sop_class, [syntax])
    assoc = ae.associate(destination.host, destination.port, ae_title=destination.ae_title)
    if not assoc.is_established:
        if assoc.is_rejected:
            problem = f"rejected the association from calling AE {calling_ae!r} (called AE {destination.ae_title!r})"
        else:  # pynetdicom reports a refused or lost connection as an abort too
            problem = (
                f"cannot be reached or aborted the association (connection refused or closed, or no DICOM answer "
                f"within {timeout:g} s)"
            )
        raise HKAFusionError(f"DICOM destination {destination} {problem}; nothing was sent")
    return assoc


def _store(
    assoc: Any, files: Sequence[str | os.PathLike], datasets: Sequence[Dataset], destination: DicomDestination
) -> int:
    """C-STORE each dataset in order; the number stored, or an :class:`HKAFusionError` at the first refusal."""
    stored = 0
    for path, ds in zip(files, datasets, strict=True):
        status = assoc.send_c_store(ds)
        code = int(getattr(status, "Status", -1)) if status else -1
        if code == 0x0000 or 0xB000 <= code <= 0xB007:
            stored += 1
            continue
        shown = f"status 0x{code:04X}" if code >= 0 else "no answer (association lost or timed out)"
        raise HKAFusionError(
            f"DICOM destination {destination} refused {Path(path).name} ({shown}); {stored} of {len(datasets)} "
            "instance(s) were stored"
        )
    return stored
