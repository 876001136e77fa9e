"""Writing fusion results (and, with the deploy issue, the DICOM derived series)."""

from .writers import FusedImageWriterd, atomic_write, as_bool, output_name, write_nifti, write_png

__all__ = ["FusedImageWriterd", "as_bool", "atomic_write", "output_name", "write_nifti", "write_png"]
