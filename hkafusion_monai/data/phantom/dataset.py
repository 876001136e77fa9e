"""The phantom data set: subjects and their split, every subject's DICOM, NIfTI and PNG files, the datalists and
the ``phantom.json`` manifest, published into the output folder at once."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from hkafusion_monai.data.datalist_file import DATALIST_SPLITS, write_datalist
from hkafusion_monai.data.folder_datalist import datalist_from_folders
from hkafusion_monai.io.atomic import atomic_write_dir

from .anatomy import MODALITIES, PROFILES, VERSION, Grid, Subject, make_subject
from .dicom import DICOM_MODALITY, dicom_values, patient_id, phantom_uid, write_dicom_series, write_nm_series
from .images import PNG_RANGE, PNG_SPLIT_FOLDER, write_nifti, write_png_pairs
from .volumes import PNG_PIXEL_MM, PNG_SIZE, TISSUE_VALUES, make_volume

__all__ = ["ensure_phantom", "split_of", "write_phantom"]


def split_of(index: int, n: int) -> str:
    """The split of subject ``index`` of ``n``: the last ``max(1, round(n/5))`` are test, the
    ``max(1, round(n/10))`` before them validation (from 3 subjects on; 2 subjects: training and test)."""
    if n == 1:
        return "training"
    n_test = max(1, round(n / 5))
    n_val = max(1, round(n / 10)) if n >= 3 else 0
    if index >= n - n_test:
        return "test"
    return "validation" if index >= n - n_test - n_val else "training"


def _write_subject(
    root: Path, subject: Subject, split: str, grids: dict[str, Grid], seed: int, png_slices: int
) -> None:
    """One subject's DICOM series, NIfTI volumes and PNG pairs."""
    name = f"sub-{subject.index:03d}"
    for modality in MODALITIES:
        grid = grids[modality]
        volume = make_volume(subject, modality, grid, seed)
        folder = root / "dicom" / name / DICOM_MODALITY[modality]
        if modality == "SPECT":
            write_nm_series(folder, subject, grid, volume, seed)
        else:
            write_dicom_series(folder, subject, modality, grid, volume, seed)
        nifti = root / "nifti" / name / f"{'mri' if modality == 'MRI' else modality.lower()}.nii.gz"
        write_nifti(nifti, modality, grid, dicom_values(modality, volume))  # exactly what the DICOM series holds
    write_png_pairs(root / "png", subject, split, seed, png_slices)


def _nifti_item(name: str, other: str) -> dict:
    return {"mri": f"nifti/{name}/mri.nii.gz", "other": f"nifti/{name}/{other.lower()}.nii.gz", "modality": other}


def _dicom_item(name: str, other: str, seed: int) -> dict:
    i = int(name.split("-")[1])
    return {
        "mri": f"dicom/{name}/MR",
        "other": f"dicom/{name}/{DICOM_MODALITY[other]}",
        "modality": other,
        "mri_series_uid": str(phantom_uid(seed, i, "MRI", "series")),
        "other_series_uid": str(phantom_uid(seed, i, other, "series")),
        "study_uid": str(phantom_uid(seed, i, "study")),
        "patient_id": patient_id(seed, i),
    }


def _write_datalists(root: Path, names: dict[str, list[str]], seed: int) -> dict[str, str]:
    """Write the datalists of every kind; the DICOM ones are what ``datalist dicom`` finds (tested), made
    here from the known UIDs so that the generator needs no MONAI import."""
    written = {}
    lists = root / "datalists"
    for other in ("CT", "PET", "SPECT"):
        task, low = f"mri_{other.lower()}", other.lower()
        folders = {
            s: [f"png/{task}/{PNG_SPLIT_FOLDER[s]}"]
            for s in DATALIST_SPLITS
            if (root / "png" / task / PNG_SPLIT_FOLDER[s]).is_dir()
        }
        if folders:
            written[f"png_{low}"] = write_datalist(
                datalist_from_folders(folders, base_dir=root), lists / f"png_{low}.json"
            ).name
        nifti: dict = {"base_dir": str(root.resolve()), "modality": other}
        dicom: dict = {"base_dir": str(root.resolve()), "modality": other, "source": "dicom"}
        for s in DATALIST_SPLITS:
            nifti[s] = [_nifti_item(n, other) for n in names.get(s, [])]
            dicom[s] = [_dicom_item(n, other, seed) for n in names.get(s, [])]
        written[f"nifti_{low}"] = write_datalist(nifti, lists / f"nifti_{low}.json").name
        written[f"dicom_{low}"] = write_datalist(dicom, lists / f"dicom_{low}.json").name
    return written


def _manifest(seed: int, size: str, names: dict[str, list[str]], png_slices: int, datalists: dict[str, str]) -> dict:
    """The content of ``phantom.json``."""
    return {
        "generator": "hkafusion_monai.data.phantom",
        "version": VERSION,
        "seed": seed,
        "size": size,
        "subjects": names,
        "png_slices_per_subject": png_slices,
        "png": {"size": [PNG_SIZE, PNG_SIZE], "pixel_mm": PNG_PIXEL_MM, "value_ranges": PNG_RANGE},
        "grids": {m: asdict(g) for m, g in PROFILES[size].items()},
        "tissue_values": TISSUE_VALUES,
        "datalists": sorted(f"datalists/{n}" for n in datalists.values()),
    }


def write_phantom(
    out: str | Path,
    subjects: int = 4,
    seed: int = 0,
    size: str = "standard",
    png_slices: int = 8,
    overwrite: bool = False,
) -> Path:
    """Write the phantom data set to ``out`` (see the package docstring); returns ``out``.

    Args:
        out: output folder; it must not exist, or be empty, unless ``overwrite``.
        subjects: number of subjects (split into training, validation and test by :func:`split_of`).
        seed: the seed of every random choice; the same arguments give the same files.
        size: a key of :data:`PROFILES` (``"standard"``, or ``"small"`` for tests).
        png_slices: PNG pairs per subject and task.
        overwrite: replace an existing non-empty ``out``.

    Raises:
        FileExistsError: ``out`` exists, is not empty (or is a file) and ``overwrite`` is not set.
    """
    out = Path(out)
    if subjects < 1 or png_slices < 0:
        raise ValueError(f"subjects must be >= 1 and png_slices >= 0, got {subjects} and {png_slices}")
    if size not in PROFILES:
        raise ValueError(f"size must be one of {sorted(PROFILES)}, got {size!r}")
    if out.exists() and not overwrite and (out.is_file() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not empty; pass --overwrite to replace it")

    def write(folder: str) -> None:
        tmp = Path(folder)
        names: dict[str, list[str]] = {"training": [], "validation": [], "test": []}
        for i in range(subjects):
            split = split_of(i, subjects)
            names[split].append(f"sub-{i:03d}")
            _write_subject(tmp, make_subject(seed, i), split, PROFILES[size], seed, png_slices)
        datalists = _write_datalists(tmp, names, seed)
        manifest = _manifest(seed, size, names, png_slices, datalists)
        (tmp / "phantom.json").write_text(json.dumps(manifest, indent=2) + "\n")

    # the whole data set appears at once, or nothing (an empty folder is replaced as if it were absent)
    return atomic_write_dir(out, write, overwrite=overwrite or out.exists())


def ensure_phantom(out: str | Path, subjects: int = 4, seed: int = 0) -> str:
    """The phantom folder ``out``, generated first when it holds no ``phantom.json`` (the demo overlay's data).

    An existing phantom is used as it is, whatever arguments made it; delete the folder to regenerate.
    """
    out = Path(out)
    if not (out / "phantom.json").is_file():
        write_phantom(out, subjects=subjects, seed=seed)
    return str(out)
