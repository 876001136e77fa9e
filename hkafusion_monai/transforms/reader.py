"""Reading 2-D image files (PNG, JPEG, TIFF, BMP) for fusion, with errors that name the file and the problem.

Spatial convention: arrays keep PIL's row-major layout, ``(H, W)`` for grey and ``(H, W, 3)`` for RGB,
i.e. ``(C, H, W)`` after ``ensure_channel_first``: row 0 is the top of the picture as PIL shows it, and
nothing is transposed (MONAI's ``PILReader`` swaps the two axes by default; here ``reverse_indexing`` is
``False``). ``spatial_shape`` in the metadata is ``(H, W)`` to match the array.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from monai.config import KeysCollection, PathLike
from monai.data import ImageReader, PILReader
from monai.transforms import LoadImaged
from monai.utils import MetaKeys, ensure_tuple
from PIL import Image, UnidentifiedImageError

from hkafusion_monai.io.formats import IMAGE_SUFFIXES
from hkafusion_monai.utils.errors import FusionInputError

__all__ = ["FusionPILReader", "LoadFusionImaged", "SUPPORTED_2D_SUFFIXES"]

#: the 2-D file types the reader takes, without the dot (:data:`hkafusion_monai.io.formats.IMAGE_SUFFIXES`)
SUPPORTED_2D_SUFFIXES = tuple(s[1:] for s in IMAGE_SUFFIXES)

# bit depth maximum of each PIL mode; "I" and "F" are decided per file (see ``_bit_depth_max``)
_MODE_MAX = {"1": 255.0, "L": 255.0, "P": 255.0, "RGB": 255.0}
_MODE_MAX.update({m: 65535.0 for m in ("I;16", "I;16L", "I;16B", "I;16N")})
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_INFO_KEY = "hkafusion"  # where read() leaves its findings for get_data(), inside PIL's ``info`` dict


def _fail(path: PathLike, problem: str) -> FusionInputError:
    return FusionInputError(f"{path}: {problem}")


def _bit_depth_max(img: Image.Image, path: PathLike) -> float:
    """The value that full white has in this file: 255 (8-bit), 65535 (16-bit), 1.0 (float)."""
    if img.mode in _MODE_MAX:
        return _MODE_MAX[img.mode]
    if img.mode == "F":  # float TIFF: taken to be in [0, 1] already (checked in get_data)
        return 1.0
    if img.mode == "I":  # 32-bit int: a 16-bit PNG in older Pillow, or an int TIFF with its own tags
        if img.format == "PNG":
            return 65535.0
        tags = getattr(img, "tag_v2", {})
        bits = ensure_tuple(tags.get(258, (32,)))[0]
        signed = ensure_tuple(tags.get(339, (1,)))[0] == 2
        return float(2 ** (int(bits) - (1 if signed else 0)) - 1)
    raise _fail(path, f"unsupported image mode {img.mode!r} (use greyscale or RGB, 8 or 16 bit, or float32 TIFF)")


class FusionPILReader(PILReader):
    """``PILReader`` for fusion inputs: no transposition, full bit depth, and input validation.

    Compared with MONAI's ``PILReader``:

    - ``reverse_indexing`` defaults to ``False`` (see the module docstring) and ``spatial_shape`` is
      ``(H, W)``; TIFF is accepted as well as PNG, JPEG and BMP.
    - 8-bit, 16-bit (``I;16``) and 32-bit integer data, and float32 TIFF (``F``), are returned at full
      depth; the metadata key ``bit_depth_max`` holds full white (255, 65535, ...; 1.0 for float), which
      :class:`~hkafusion_monai.transforms.ScaleByBitDepthd` divides by. Palette images become RGB, 1-bit
      images 8-bit grey. Pillow reads 16-bit *colour* PNGs as 8-bit RGB; a warning says so.
    - Each of these raises :class:`FusionInputError` (``FileNotFoundError`` for a missing file) with the
      file name and the problem: a missing file, an empty (0-byte) file or an image with no pixels, a
      corrupt, truncated or non-image file, an image with an alpha channel (RGBA, LA, transparent palette),
      an unsupported mode (CMYK, ...), several frames, a NaN or inf pixel, a negative pixel, float data
      outside [0, 1], and a blank image (every pixel equal) unless ``allow_blank``.

    Args:
        converter: optional function applied to each PIL image after validation.
        reverse_indexing: swap the two spatial axes like MONAI's default; ``False`` keeps ``(H, W)``.
        allow_blank: accept images whose pixels all have one value.
        kwargs: passed to ``PIL.Image.open``.
    """

    def __init__(
        self,
        converter: Callable | None = None,
        reverse_indexing: bool = False,
        allow_blank: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(converter=converter, reverse_indexing=reverse_indexing, **kwargs)
        self.allow_blank = allow_blank

    def verify_suffix(self, filename: Sequence[PathLike] | PathLike) -> bool:
        names = ensure_tuple(filename)
        return bool(names) and all(str(n).lower().rsplit(".", 1)[-1] in SUPPORTED_2D_SUFFIXES for n in names)

    def read(self, data: Sequence[PathLike] | PathLike | np.ndarray, **kwargs) -> Image.Image | list[Image.Image]:
        """Open, validate and decode each file; returns a PIL image (a list for several files)."""
        kwargs_ = {**self.kwargs, **kwargs}
        images = [self._read_one(name, kwargs_) for name in ensure_tuple(data)]
        return images if len(images) > 1 else images[0]

    def _read_one(self, name: PathLike, open_kwargs: dict) -> Image.Image:
        path = Path(name)
        if not path.exists():
            raise FileNotFoundError(f"{name}: missing file (no such file or directory)")
        if path.is_dir():
            raise _fail(name, "is a folder, not a 2-D image file")
        if path.stat().st_size == 0:
            raise _fail(name, "empty file (0 bytes)")
        try:
            img: Image.Image = Image.open(path, **open_kwargs)
        except UnidentifiedImageError as e:
            raise _fail(name, "not an image file, or a corrupt one (PIL cannot identify it)") from e
        except OSError as e:
            raise _fail(name, f"cannot be opened as an image ({e})") from e
        if img.width == 0 or img.height == 0:
            raise _fail(name, f"empty image ({img.width}x{img.height} pixels)")
        n_frames = getattr(img, "n_frames", 1)
        if n_frames > 1:
            raise _fail(name, f"has {n_frames} frames; a 2-D pair needs single-frame images")
        mode = img.mode
        if mode in _ALPHA_MODES or (mode == "P" and "transparency" in img.info):
            raise _fail(
                name,
                f"{'RGBA' if mode.startswith('RGB') else mode} image with an alpha channel is not supported; "
                "save it as RGB or greyscale (e.g. PIL's Image.convert('RGB'))",
            )
        if mode == "RGB" and any("16" in str(getattr(t, "args", "")) for t in getattr(img, "tile", [])):
            warnings.warn(f"{name}: 16-bit colour image; Pillow reads it as 8-bit RGB", stacklevel=2)
        try:
            img.load()  # decode now, so that truncated data fails here, with the file's name
        except (OSError, SyntaxError, ValueError) as e:
            raise _fail(name, f"corrupt or truncated image data ({e})") from e
        if mode == "P":
            img = img.convert("RGB")
        elif mode == "1":
            img = img.convert("L")
        bit_max = _bit_depth_max(img, name)
        if callable(self.converter):
            img = self.converter(img)
        img.info[_INFO_KEY] = {"filename": str(name), "bit_depth_max": bit_max, "source_mode": mode}
        return img

    def get_data(self, img: Image.Image | Sequence[Image.Image]) -> tuple[np.ndarray, dict]:
        """Array and metadata of the image(s) from :meth:`read`.

        Returns:
            ``(H, W)`` or ``(H, W, 3)`` array in the file's dtype (several files, which must share their size,
            stack as MONAI's readers stack them: grey on a new first axis, colour along the colour axis), and
            the first file's dict with ``format``, ``mode``, ``source_mode``, ``width``, ``height``,
            ``spatial_shape`` (``(H, W)``), ``original_channel_dim`` and ``bit_depth_max``.
        """
        arrays: list[np.ndarray] = []
        headers: list[dict] = []
        for i in ensure_tuple(img):
            info = i.info.get(_INFO_KEY, {})
            name = info.get("filename", getattr(i, "filename", "<image>"))
            data = np.asarray(i)
            if not data.flags.writeable:  # torch would share PIL's read-only buffer
                data = data.copy()
            self._check_values(data, name, float(info.get("bit_depth_max", 1.0)))
            if self.reverse_indexing:
                data = np.moveaxis(data, 0, 1)
            header = {"format": i.format, "mode": i.mode, "width": i.width, "height": i.height}
            header["source_mode"] = info.get("source_mode", i.mode)
            header["bit_depth_max"] = float(info.get("bit_depth_max", _bit_depth_max(i, name)))
            header[MetaKeys.SPATIAL_SHAPE] = np.asarray(data.shape[:2])
            header[MetaKeys.ORIGINAL_CHANNEL_DIM] = float("nan") if data.ndim == 2 else -1
            arrays.append(data)
            headers.append(header)
        meta = headers[0]
        if len(arrays) == 1:
            return arrays[0], meta
        for header in headers[1:]:
            if tuple(header[MetaKeys.SPATIAL_SHAPE]) != tuple(meta[MetaKeys.SPATIAL_SHAPE]):
                raise FusionInputError(
                    f"images of sizes {tuple(meta[MetaKeys.SPATIAL_SHAPE])} and "
                    f"{tuple(header[MetaKeys.SPATIAL_SHAPE])} cannot be stacked (H, W)"
                )
        if arrays[0].ndim == 3:  # colour: along the colour axis
            return np.concatenate(arrays, axis=-1), meta
        meta[MetaKeys.ORIGINAL_CHANNEL_DIM] = 0  # grey: on a new first (channel) axis
        return np.stack(arrays, axis=0), meta

    def _check_values(self, data: np.ndarray, name: str, bit_max: float) -> None:
        if data.size == 0:
            raise _fail(name, f"empty image (array shape {data.shape})")
        if data.dtype.kind == "f":
            finite = np.isfinite(data)
            if not finite.all():
                first = tuple(int(v) for v in np.argwhere(~finite)[0][:2])
                n_nan, n_inf = int(np.isnan(data).sum()), int(np.isinf(data).sum())
                raise _fail(name, f"{n_nan} NaN and {n_inf} inf pixel(s), the first at (row, col) {first}")
        lo, hi = float(data.min()), float(data.max())
        if lo < 0:
            raise _fail(name, f"negative pixel values (min {lo:g}); 2-D inputs must be >= 0")
        if data.dtype.kind == "f" and hi > bit_max:
            raise _fail(name, f"float pixel values up to {hi:g}; float images must lie in [0, 1]")
        if lo == hi and not self.allow_blank:
            raise _fail(name, f"blank image (every pixel is {lo:g}); pass allow_blank=True to accept it")


@contextmanager
def quiet_default_readers() -> Iterator[None]:
    """Silence MONAI's nvImageCodec notice while a ``LoadImage(d)`` is built.

    ``LoadImage`` also instantiates MONAI's default readers, which our loaders never use; the DICOM one
    announces a missing nvImageCodec plugin every time.
    """
    plugin_log = logging.getLogger("monai.data.nvimgcodec_pydicom_plugin")
    level = plugin_log.level
    plugin_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*nvImageCodec.*")
            yield
    finally:
        plugin_log.setLevel(level)


class LoadFusionImaged(LoadImaged):
    """``LoadImaged`` with :class:`FusionPILReader` only, so that a bad file raises that reader's error.

    ``LoadImaged(reader=...)`` would fall back on MONAI's other readers and hide the reason in a generic
    "cannot find a suitable reader" error; this calls the fusion reader directly. Output per key: a
    ``MetaTensor`` of shape ``(C, H, W)`` (C = 1 grey, 3 RGB), float32 holding the file's raw values
    (0..255, 0..65535, ...), with ``bit_depth_max`` and the file name in its ``meta``.

    Args:
        keys: keys of the file paths, e.g. ``["mri", "other"]``.
        reader: a reader instance; default ``FusionPILReader(allow_blank=allow_blank)``.
        allow_blank: see :class:`FusionPILReader`.
        allow_missing_keys: don't raise when a key is absent.
        kwargs: passed to ``LoadImaged`` (``image_only``, ``ensure_channel_first`` and ``dtype`` are fixed).
    """

    def __init__(
        self,
        keys: KeysCollection,
        reader: FusionPILReader | None = None,
        allow_blank: bool = False,
        allow_missing_keys: bool = False,
        **kwargs,
    ) -> None:
        self.fusion_reader = reader if reader is not None else FusionPILReader(allow_blank=allow_blank)
        with quiet_default_readers():
            super().__init__(
                keys,
                reader=self.fusion_reader,  # type: ignore[arg-type]  # MONAI takes a reader instance too
                dtype=np.float32,
                ensure_channel_first=True,
                image_only=True,
                allow_missing_keys=allow_missing_keys,
                **kwargs,
            )

    def __call__(self, data: Mapping[Hashable, object], reader: ImageReader | None = None) -> dict:
        d: dict = super().__call__(data, reader if reader is not None else self.fusion_reader)
        return d
