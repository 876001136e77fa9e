"""Synthetic, co-registered MRI / CT / PET / SPECT head data: the project's demo data.

``python -m hkafusion_monai.data.phantom --out DIR [--subjects N] [--seed S]`` writes, from an analytic
3-D head phantom, a small deterministic set (same arguments, same bytes):

- real DICOM series per subject: MR (T1-like), CT (HU, bright skull) and PET (Bq/ml, hot lesions) as
  single-frame images, SPECT (counts) as one multi-frame NM Image object (``RECON TOMO``), as SPECT systems
  export reconstructions; one study and one frame of reference per subject; PET and SPECT have their own
  in-plane resolution and slice spacing, CT its own grid and superior-to-inferior slice order, so
  resampling and reorientation are exercised;
- the same volumes as NIfTI (holding exactly the values the DICOM objects hold);
- 2-D PNG pairs of axial slices in the Harvard layout and look (256x256; MRI and CT grey, PET and SPECT
  pseudo-colour RGB), rendered from the same phantom at 0.8 mm pixels;
- datalists (the format of :mod:`hkafusion_monai.data.datalist`) for each kind and modality, and a
  ``phantom.json`` manifest.

Layout (``sub-000`` ... and the split of subjects into training, validation and test in ``phantom.json``)::

    DIR/dicom/sub-000/{MR,CT,PT}/IM0001.dcm ..., DIR/dicom/sub-000/NM/NM0001.dcm
    DIR/nifti/sub-000/{mri,ct,pet,spect}.nii.gz
    DIR/png/mri_{ct,pet,spect}/{train,validation,test}/{MRI,CT|PET|SPECT}/sub-000_z+012.png
    DIR/datalists/{png,nifti,dicom}_{ct,pet,spect}.json
    DIR/phantom.json

Everything is written into a temporary folder beside ``DIR`` and renamed into place at the end; an
existing, non-empty ``DIR`` is kept unless ``--overwrite`` is given.

Modules: ``anatomy`` (subjects, tissue labels, grids), ``volumes`` (tissue values, noise and resolution, the
volumes and the rendered slices), ``images`` (the PNG look, PNG pairs, NIfTI), ``dicom`` (the DICOM objects),
``dataset`` (the data set: splits, datalists, manifest), ``cli`` (the command line).
"""

from __future__ import annotations

from .anatomy import (
    AIR,
    CSF,
    DEEP_GM,
    DIPLOE,
    EYE,
    GM,
    LESION,
    MODALITIES,
    PROFILES,
    SCALP,
    SKULL,
    VENTRICLE,
    VERSION,
    WM,
    Grid,
    Subject,
    make_subject,
    tissue_labels,
)
from .cli import main
from .dataset import ensure_phantom, split_of, write_phantom
from .dicom import dicom_values, write_dicom_series, write_nm_series
from .images import COLOUR_MAPS, PNG_RANGE, to_png_array, write_nifti, write_png_pairs
from .volumes import BLUR_MM, PNG_PIXEL_MM, PNG_SIZE, TISSUE_VALUES, make_volume, render_slices

__all__ = [
    "AIR",
    "BLUR_MM",
    "COLOUR_MAPS",
    "CSF",
    "DEEP_GM",
    "DIPLOE",
    "EYE",
    "GM",
    "LESION",
    "MODALITIES",
    "PNG_PIXEL_MM",
    "PNG_RANGE",
    "PNG_SIZE",
    "PROFILES",
    "SCALP",
    "SKULL",
    "TISSUE_VALUES",
    "VENTRICLE",
    "VERSION",
    "WM",
    "Grid",
    "Subject",
    "dicom_values",
    "ensure_phantom",
    "main",
    "make_subject",
    "make_volume",
    "render_slices",
    "split_of",
    "tissue_labels",
    "to_png_array",
    "write_dicom_series",
    "write_nifti",
    "write_nm_series",
    "write_phantom",
    "write_png_pairs",
]
