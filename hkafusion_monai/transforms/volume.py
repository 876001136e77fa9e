"""Loading volumes for fusion: NIfTI files and DICOM series, with their affines and input validation.

Every volume comes out as a float32 ``MetaTensor`` of shape ``(1, X, Y, Z)`` whose ``affine`` maps voxel
indices to world coordinates in millimetres, RAS (MONAI's convention: DICOM's LPS is converted), so a
DICOM series and a NIfTI file of the same scan line up. DICOM values are rescaled (``RescaleSlope`` /
``RescaleIntercept``): HU for CT, activity (e.g. Bq/ml) for PET. A single 2-D slice (one DICOM file, a
2-D NIfTI) is a volume of one slice, ``Z == 1``.

Bad inputs raise :class:`~hkafusion_monai.utils.errors.FusionInputError` (``FileNotFoundError`` for a
missing path) naming the path and the problem: a DICOM folder with no series or several, a series that
is not one regular volume (missing slice, uneven spacing, mixed orientations), a truncated or corrupt
file, NaN or inf voxels, a 4-D volume, a blank volume, and a DICOM slice that its rescale makes constant (or
a blank slice between two that are not). Two contradictions are warnings, not refusals, naming both values: a
``PixelSpacing`` against the ``ReconstructionDiameter`` (:func:`~hkafusion_monai.io.dicom.spacing_contradiction`),
and a NIfTI file whose qform and sform place it differently (the sform is used, as nibabel and MONAI do).
"""

from __future__ import annotations

import logging
import os
import zlib
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pydicom
import torch
from monai.config import KeysCollection, PathLike
from monai.data import ImageReader, MetaTensor, NibabelReader
from monai.data.utils import orientation_ras_lps
from monai.transforms import LoadImaged
from monai.utils import MetaKeys, SpaceKeys, ensure_tuple
from pydicom.errors import InvalidDicomError

from hkafusion_monai.io.dicom import (
    DicomSeries,
    lps_affine,
    multiframe_geometry,
    order_series,
    pick_series,
    read_dicom,
    scan_dicom,
    spacing_contradiction,
)
from hkafusion_monai.io.formats import DICOM_SUFFIXES, NIFTI_SUFFIXES, is_nifti
from hkafusion_monai.utils.errors import FusionInputError

from .reader import quiet_default_readers

__all__ = [
    "NIFTI_SUFFIXES",
    "DICOM_SUFFIXES",
    "SOURCE_META_KEYS",
    "FusionDicomReader",
    "FusionNibabelReader",
    "LoadFusionVolumed",
]

logger = logging.getLogger(__name__)

#: a NIfTI's qform and sform that move a corner of the volume further apart than this (mm) get a warning
QFORM_SFORM_TOLERANCE_MM = 0.5

# metadata every loaded volume carries (empty strings for NIfTI), so that batches of both formats collate
SOURCE_META_KEYS = (
    "source_format",
    "source_modality",
    "patient_id",
    "study_instance_uid",
    "series_instance_uid",
    "frame_of_reference_uid",
    "series_description",
    "source_units",
)


def _check_constant_slices(
    planes: Sequence[np.ndarray], stored_vary: Sequence[bool], names: Sequence[str], rescales: Sequence[tuple]
) -> None:
    """Refuse a slice (in spatial order) that is constant after its rescale while a neighbour is not: either
    its stored pixels vary and its rescale flattened them (e.g. ``RescaleSlope`` 0), or it is blank between
    two slices that are not. A blank slab at either end (outside the field of view) passes.

    Args:
        planes: the rescaled slices, in spatial order.
        stored_vary: whether each slice's stored pixels vary.
        names: each slice's file (and frame), for the message.
        rescales: each slice's ``(slope, intercept)``.

    Raises:
        FusionInputError: naming the file, the slice and its rescale.
    """
    n = len(planes)
    constant = [float(p.min()) == float(p.max()) for p in planes]
    if n < 2 or all(constant):
        return  # a blank volume is the caller's check
    for k in np.flatnonzero(constant).tolist():
        varying = [j for j in (k - 1, k + 1) if 0 <= j < n and not constant[j]]
        between = 0 < k < n - 1 and len(varying) == 2
        if not varying or not (stored_vary[k] or between):
            continue
        slope, intercept = rescales[k]
        why = (
            f"its stored pixels vary, but RescaleSlope {slope:g} (RescaleIntercept {intercept:g}) makes every pixel "
            f"{float(planes[k].flat[0]):g}"
            if stored_vary[k]
            else f"every pixel is {float(planes[k].flat[0]):g}"
        )
        raise FusionInputError(
            f"{names[k]}: slice {k + 1} of {n} (in spatial order) is blank while its neighbouring slices are not: "
            f"{why}; a corrupt slice would be fused as a blank band (fix or remove the file)"
        )


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing file or folder (no such file or directory)")
    if path.is_file() and path.stat().st_size == 0:
        raise FusionInputError(f"{path}: empty file (0 bytes)")


class FusionDicomReader(ImageReader):
    """MONAI ``ImageReader`` for one DICOM series (a folder or a file), checked and ordered in space.

    MONAI's ``PydicomReader`` stacks every file of a folder, whatever its series, in ``InstanceNumber``
    order, and only warns about mixed sizes; this reader first groups the folder's files by
    ``SeriesInstanceUID`` and requires one series (or the one named by ``series_uid``), checks that it is
    one regular volume and orders the slices by position along the slice normal
    (:func:`~hkafusion_monai.io.dicom.order_series`); then it decodes and rescales the pixels as
    ``PydicomReader`` does (``RescaleSlope``/``RescaleIntercept`` in float32) and places them with
    :func:`~hkafusion_monai.io.dicom.lps_affine`, ``PydicomReader``'s affine (first position and orientation,
    pixel spacing, the last position for the slice axis). A single file is a one-slice volume whose third axis
    is the slice normal times ``SliceThickness``.

    One multi-frame image (an NM SPECT reconstruction, an enhanced MR, CT or PET image) is placed by
    :func:`~hkafusion_monai.io.dicom.multiframe_geometry`, which gives its frames' positions and rescale (NM: the
    real-world value mapping); the frames are stacked in spatial order.

    ``data`` may also be a list of the files of one series (as the Deploy application gives them).

    Output (through ``LoadImage``): ``(X, Y, Z)`` = (columns, rows, slices), ``PydicomReader``'s default axes
    (``swap_ij=True``), with an RAS affine; the metadata holds ``affine``, ``original_affine``, ``spacing``,
    ``Modality``, ``SOPClassUID`` and :data:`SOURCE_META_KEYS` from the DICOM header (``source_units``: the
    NM/PET ``Units`` or real-world units, else the CT ``RescaleType``).

    Args:
        series_uid: the ``SeriesInstanceUID`` to read when the folder holds several series.
        recursive: also look for the series' files in sub-folders.
        kwargs: passed to ``pydicom.dcmread``.
    """

    def __init__(self, series_uid: str | None = None, recursive: bool = False, **kwargs) -> None:
        super().__init__()
        self.series_uid = series_uid
        self.recursive = recursive
        self.kwargs = kwargs
        self._series: DicomSeries | None = None
        self._files: list[Path] = []
        self._units = ""

    def verify_suffix(self, filename: Sequence[PathLike] | PathLike) -> bool:
        names = ensure_tuple(filename)
        if len(names) != 1:
            return all(Path(n).is_file() and pydicom.misc.is_dicom(n) for n in names)
        path = Path(names[0])
        if path.is_dir() or path.name.lower().endswith(DICOM_SUFFIXES):
            return True
        return path.is_file() and pydicom.misc.is_dicom(path)

    def read(self, data: Sequence[PathLike] | PathLike, **kwargs) -> list[pydicom.Dataset]:
        """Find, check and read the series at ``data`` (one folder or file, or the files of one series);
        returns its pydicom datasets in spatial order."""
        names = ensure_tuple(data)
        if len(names) > 1:  # the files of one series
            for name in names:
                _check_exists(Path(name))
            path = Path(os.path.commonpath([str(Path(n).parent) for n in names]))
            candidates = scan_dicom([Path(n) for n in names])
        elif len(names) == 1:
            path = Path(names[0])
            _check_exists(path)
            candidates = scan_dicom(path, recursive=self.recursive)
        else:
            raise FusionInputError("FusionDicomReader: no file or folder given")
        if not candidates and path.is_dir() and not self.recursive and any(p.is_dir() for p in path.iterdir()):
            raise FusionInputError(
                f"{path}: no DICOM image files in this folder (its sub-folders are not searched: name the "
                "series folder itself, or pass recursive=True)"
            )
        series = pick_series(candidates, path, self.series_uid)
        files, _ = order_series(series)
        kwargs_ = {**self.kwargs, **kwargs}
        datasets: list[pydicom.Dataset] = []
        for f in files:
            try:
                ds = read_dicom(f, **kwargs_)
                if ds is None:  # scanned as DICOM a moment ago: changed since
                    raise InvalidDicomError("no longer a DICOM file")
                datasets.append(ds)
            except (InvalidDicomError, OSError, EOFError, ValueError) as e:
                raise FusionInputError(f"{f}: truncated or corrupt DICOM file ({e})") from e
        self._series, self._files = series, list(files)
        return datasets

    @staticmethod
    def _pixels(ds: pydicom.Dataset, filename: PathLike) -> np.ndarray:
        """The decoded pixel data, or an error naming the file."""
        try:
            return np.asarray(ds.pixel_array)
        except (ValueError, AttributeError, EOFError, OSError, NotImplementedError, RuntimeError) as e:
            raise FusionInputError(f"{filename}: truncated or corrupt pixel data ({e})") from e

    def _multiframe_volume(self, ds: pydicom.Dataset, filename: PathLike) -> tuple[np.ndarray, np.ndarray]:
        """The frames of one multi-frame image as ``(X, Y, Z)`` (columns, rows, frames in spatial order),
        rescaled per frame, and its LPS affine (:func:`multiframe_geometry`)."""
        geometry = multiframe_geometry(ds, str(filename))
        frames = self._pixels(ds, filename)
        n = len(geometry.order)
        if frames.ndim == 2 and n == 1:
            frames = frames[None]
        if frames.ndim != 3 or frames.shape[0] != n:
            raise FusionInputError(
                f"{filename}: pixel data of shape {frames.shape}; expected {n} grey frames (frames, rows, columns)"
            )
        values = frames.astype(np.float64) * geometry.slopes[:, None, None] + geometry.intercepts[:, None, None]
        _check_constant_slices(
            [values[f] for f in geometry.order],
            [bool(frames[f].min() != frames[f].max()) for f in geometry.order],
            [f"{filename} (frame {f + 1})" for f in geometry.order],
            [(float(geometry.slopes[f]), float(geometry.intercepts[f])) for f in geometry.order],
        )
        self._units = geometry.units
        return np.ascontiguousarray(values[geometry.order].transpose(2, 1, 0), dtype=np.float32), geometry.affine

    def _series_volume(self, datasets: Sequence[pydicom.Dataset]) -> tuple[np.ndarray, np.ndarray]:
        """Single-frame slices in spatial order as ``(X, Y, Z)`` (columns, rows, slices), rescaled as MONAI's
        ``PydicomReader`` rescales, and their LPS affine (:func:`lps_affine`)."""
        planes, stored_vary, rescales = [], [], []
        for ds, filename in zip(datasets, self._files, strict=True):
            data = self._pixels(ds, filename)
            stored_vary.append(bool(data.min() != data.max()))
            rescales.append((float(ds.get("RescaleSlope", 1.0)), float(ds.get("RescaleIntercept", 0.0))))
            if "RescaleSlope" in ds or "RescaleIntercept" in ds:
                data = data.astype(np.float32) * ds.get("RescaleSlope", 1.0) + ds.get("RescaleIntercept", 0.0)
            planes.append(data)
        _check_constant_slices(planes, stored_vary, [str(f) for f in self._files], rescales)
        first = datasets[0]
        self._units = str(first.get("Units", "") or first.get("RescaleType", "") or "")
        return np.ascontiguousarray(np.stack(planes, axis=-1).transpose(1, 0, 2)), lps_affine(datasets)

    def get_data(self, img: Sequence[pydicom.Dataset]) -> tuple[np.ndarray, dict]:
        """Array ``(X, Y, Z)`` and metadata (affine, spacing, source UIDs) of the series from :meth:`read`."""
        datasets = list(img)
        first, s = datasets[0], self._series
        assert s is not None, "get_data() takes the datasets of read(), which picks the series"
        if s.slices[0].multiframe:
            array, lps = self._multiframe_volume(first, self._files[0])
        else:
            array, lps = self._series_volume(datasets)
        contradiction = spacing_contradiction(first, self._files[0])
        if contradiction:
            logger.warning(contradiction)
        affine = orientation_ras_lps(lps)  # LPS -> RAS
        meta = {
            MetaKeys.AFFINE: affine.copy(),
            MetaKeys.ORIGINAL_AFFINE: affine,
            MetaKeys.SPATIAL_SHAPE: np.asarray(array.shape),
            MetaKeys.ORIGINAL_CHANNEL_DIM: float("nan"),
            MetaKeys.SPACE: SpaceKeys.RAS,
            "spacing": np.sqrt((lps[:3, :3] ** 2).sum(axis=0)),
            "Modality": str(first.get("Modality", "")),
            "SOPClassUID": str(first.get("SOPClassUID", "")),
            "source_format": "dicom",
            "source_modality": s.modality,
            "patient_id": s.patient_id,
            "study_instance_uid": s.study_uid,
            "series_instance_uid": s.series_uid,
            "frame_of_reference_uid": s.frame_of_reference_uid,
            "series_description": s.description,
            "source_units": self._units,
        }
        if s.slices[0].multiframe:
            meta["NumberOfFrames"] = int(array.shape[-1])
        return array, meta


def _warn_qform_sform(img, path: Path) -> None:
    """Warn when a NIfTI's qform and sform are both set and place the volume differently (by more than
    :data:`QFORM_SFORM_TOLERANCE_MM` at a corner), naming both: nibabel, MONAI and this reader use the sform,
    other tools the qform."""
    header = getattr(img, "header", None)
    if header is None or not hasattr(header, "get_qform"):
        return
    qform, q_code = header.get_qform(coded=True)
    sform, s_code = header.get_sform(coded=True)
    if not q_code or not s_code or qform is None or sform is None:
        return
    shape = [max(int(v), 1) for v in header.get_data_shape()[:3]]
    shape += [1] * (3 - len(shape))
    corners = np.array(np.meshgrid(*[[0, n - 1] for n in shape], indexing="ij")).reshape(3, -1)
    corners = np.vstack([corners, np.ones(corners.shape[1])])
    apart = float(np.linalg.norm((qform - sform)[:3] @ corners, axis=0).max())
    if apart <= QFORM_SFORM_TOLERANCE_MM:
        return

    def rows(m: np.ndarray) -> str:
        return "[" + "; ".join(" ".join(f"{v:.4g}" for v in row) for row in m[:3]) + "]"

    logger.warning(
        "%s: the qform (code %d) and the sform (code %d) place the volume up to %.1f mm apart; the sform is used "
        "(as nibabel and MONAI do), other tools may use the qform: qform %s, sform %s",
        path,
        int(q_code),
        int(s_code),
        apart,
        rows(qform),
        rows(sform),
    )


class FusionNibabelReader(NibabelReader):
    """``NibabelReader`` for one NIfTI volume, with errors that name the file and the problem.

    Compared with MONAI's ``NibabelReader``: a 4-D (or higher) image with more than one volume is refused
    (MONAI would make its fourth axis the channel axis), trailing axes of size 1 are dropped, a 2-D image
    becomes a one-slice volume, and a missing, empty, unreadable or truncated file raises an error naming it.

    Args:
        kwargs: passed to ``NibabelReader`` (``squeeze_non_spatial_dims`` is always on).
    """

    def __init__(self, **kwargs) -> None:
        kwargs["squeeze_non_spatial_dims"] = True
        super().__init__(**kwargs)

    def verify_suffix(self, filename: Sequence[PathLike] | PathLike) -> bool:
        names = ensure_tuple(filename)
        return len(names) == 1 and is_nifti(Path(names[0]).name)

    def read(self, data: Sequence[PathLike] | PathLike, **kwargs):
        names = ensure_tuple(data)
        if len(names) != 1:
            raise FusionInputError(f"{names}: FusionNibabelReader reads one file at a time")
        path = Path(names[0])
        _check_exists(path)
        if path.is_dir():
            raise FusionInputError(f"{path}: is a folder, not a NIfTI file")
        try:
            img = super().read(str(path), **kwargs)
            shape = tuple(int(v) for v in img.header.get_data_shape())
        except Exception as e:  # nibabel raises many kinds (ImageFileError, EOFError, gzip/zlib errors)
            raise FusionInputError(f"{path}: not a NIfTI file, or a corrupt one ({e})") from e
        extra = shape[3:]
        if len(shape) < 2 or any(v > 1 for v in extra):
            what = f"{len(shape)}-D" if len(shape) != 4 else f"4-D ({shape[3]} volumes)"
            raise FusionInputError(
                f"{path}: {what} image of shape {shape}; one 3-D volume is expected "
                "(select one time point or channel first)"
            )
        if 0 in shape:
            raise FusionInputError(f"{path}: empty image (shape {shape})")
        _warn_qform_sform(img, path)
        return img

    def get_data(self, img) -> tuple[np.ndarray, dict]:
        """Array ``(X, Y, Z)`` and metadata; a 2-D image gets ``Z == 1``."""
        try:
            array, meta = super().get_data(img)
        except (EOFError, OSError, ValueError, zlib.error) as e:  # the voxels are decoded here
            raise FusionInputError(f"{img.get_filename()}: truncated or corrupt image data ({e})") from e
        if array.ndim == 2:
            array = array[..., None]
            meta[MetaKeys.SPATIAL_SHAPE] = np.asarray((*array.shape[:2], 1))
        meta.update({k: "" for k in SOURCE_META_KEYS})
        meta["source_format"] = "nifti"
        return array, meta


class LoadFusionVolumed(LoadImaged):
    """Load each key's volume (NIfTI file, DICOM series folder or DICOM file) as ``(1, X, Y, Z)`` float32.

    ``LoadImaged`` with the reader chosen by the path, so that a bad input raises that reader's own error
    (:class:`FusionNibabelReader` for ``.nii``/``.nii.gz``, :class:`FusionDicomReader` for a folder or a
    DICOM file), then checks of the loaded voxels. When a folder holds several series, the data item can
    name the one to read: ``"<key>_series_uid"`` (e.g. ``mri_series_uid``, as the DICOM-study datalist
    writes it).

    Output per key: a ``MetaTensor`` ``(1, X, Y, Z)`` with an RAS ``affine``, ``original_affine``,
    ``filename_or_obj`` and :data:`SOURCE_META_KEYS` in its ``meta``.

    Args:
        keys: keys of the paths, e.g. ``["mri", "other"]``.
        series_uid_suffix: the item key naming a DICOM series is the image key plus this.
        allow_blank: accept volumes whose voxels all have one value.
        recursive: let DICOM folders hold their series' files in sub-folders.
        allow_missing_keys: don't raise when a key is absent.
        kwargs: passed to ``LoadImaged`` (``image_only``, ``ensure_channel_first`` and ``dtype`` are fixed).

    Raises:
        FileNotFoundError: a missing path.
        FusionInputError: a path that is no volume, the readers' errors, NaN/inf voxels, a blank volume.
    """

    def __init__(
        self,
        keys: KeysCollection,
        series_uid_suffix: str = "_series_uid",
        allow_blank: bool = False,
        recursive: bool = False,
        allow_missing_keys: bool = False,
        **kwargs,
    ) -> None:
        self.nifti_reader = FusionNibabelReader()
        self.dicom_reader = FusionDicomReader(recursive=recursive)
        self.series_uid_suffix = series_uid_suffix
        self.allow_blank = allow_blank
        self.recursive = recursive
        with quiet_default_readers():
            super().__init__(
                keys,
                reader=[self.nifti_reader, self.dicom_reader],  # type: ignore[arg-type]  # MONAI takes a list too
                dtype=np.float32,
                ensure_channel_first=True,
                image_only=True,
                allow_missing_keys=allow_missing_keys,
                **kwargs,
            )

    def _reader_for(self, path: Path, series_uid: str | None) -> FusionNibabelReader | FusionDicomReader:
        if is_nifti(path.name):
            return self.nifti_reader
        _check_exists(path)
        if path.is_dir() or path.name.lower().endswith(DICOM_SUFFIXES) or pydicom.misc.is_dicom(path):
            if series_uid:
                return FusionDicomReader(series_uid=series_uid, recursive=self.recursive)
            return self.dicom_reader
        raise FusionInputError(
            f"{path}: not a volume: expected a NIfTI file (.nii, .nii.gz), a DICOM file or a DICOM series folder"
        )

    def __call__(self, data: Mapping[Hashable, object], reader=None) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            value = d[key]
            uid = d.get(f"{key}{self.series_uid_suffix}")
            if isinstance(value, (list, tuple)):  # the files of one DICOM series
                files = [str(Path(str(v)).expanduser()) for v in value]
                if not files or any(is_nifti(Path(f).name) for f in files):
                    raise FusionInputError(f"{key}: {value}: a list must hold the DICOM files of one series")
                path = Path(os.path.commonpath([str(Path(f).parent) for f in files]))
                dicom = FusionDicomReader(series_uid=str(uid) if uid else None)
                img = self._loader(files, reader or dicom)
                self._check(img, path)
                d[key] = img
                continue
            path = Path(str(value)).expanduser()
            img = self._loader(str(path), reader or self._reader_for(path, str(uid) if uid else None))
            self._check(img, path)
            d[key] = img
        return d

    def _check(self, img: torch.Tensor, path: Path) -> None:
        if img.ndim != 4 or img.shape[0] != 1:
            raise FusionInputError(f"{path}: loaded shape {tuple(img.shape)}; expected one 3-D volume (1, X, Y, Z)")
        finite = torch.isfinite(img)
        if not bool(finite.all()):
            bad = ~finite
            first = tuple(int(v) for v in torch.nonzero(bad[0])[0])
            n_nan, n_inf = int(torch.isnan(img).sum()), int(torch.isinf(img).sum())
            raise FusionInputError(f"{path}: {n_nan} NaN and {n_inf} inf voxel(s), the first at (x, y, z) {first}")
        lo, hi = float(img.min()), float(img.max())
        if lo == hi and not self.allow_blank:
            raise FusionInputError(f"{path}: blank volume (every voxel is {lo:g}); pass allow_blank=True to accept it")
        if isinstance(img, MetaTensor):
            for k in SOURCE_META_KEYS:
                img.meta.setdefault(k, "")
