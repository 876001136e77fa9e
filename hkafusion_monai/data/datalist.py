"""The datalist tool: datalists of MRI/other image pairs, built from the command line.

Command line (``python -m hkafusion_monai.data.datalist -h``)::

    # from folders in the Harvard layout (<folder>/MRI/<name> pairs with <folder>/<CT|PET|SPECT>/<name>)
    python -m hkafusion_monai.data.datalist folders --base-dir DATA --training mri_pet/train \\
        --validation mri_pet/test --out pet.json

    # from NIfTI volumes, one folder per subject (<subject>/mri.nii.gz pairs with <subject>/pet.nii.gz)
    python -m hkafusion_monai.data.datalist subjects --base-dir DATA --training sub-000 sub-001 \\
        --test sub-002 --modality PET --out pet_nifti.json

    # from the de-leaked split of the shared Harvard pairs
    python -m hkafusion_monai.data.datalist splits --splits ../shared/data/harvard/splits.json \\
        --task mri_pet --out pet.json

    # from folders of DICOM files: per study, the MR series paired with its CT, PET (PT) or SPECT (NM) series
    python -m hkafusion_monai.data.datalist dicom --base-dir DATA --training studies/train \\
        --test studies/test --modality PET --out pet_dicom.json

Each mode has its module: :mod:`~hkafusion_monai.data.folder_datalist` (``folders``, ``subjects``, ``splits``) and
:mod:`~hkafusion_monai.data.dicom_datalist` (``dicom``, whose pairing rule the Deploy application shares); the
file format, writing and loading are in :mod:`~hkafusion_monai.data.datalist_file`. Their names are importable
from here too, as the datalist tool's API.

Unpaired files and duplicate names are reported by name and the command fails (exit status 1) unless
``--skip-unpaired`` is given, in which case they are left out with a warning. The output is written
atomically and an existing file is kept unless ``--overwrite`` is given. A symbolic link that leads out of a
folder given (``--training`` ...) is never followed: it is skipped with one warning
(:func:`hkafusion_monai.io.study.outside_link`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from hkafusion_monai.data.datalist_file import (
    DATALIST_SPLITS,
    DatalistError,
    load_fusion_datalist,
    write_datalist,
)
from hkafusion_monai.data.dicom_datalist import datalist_from_dicom
from hkafusion_monai.data.folder_datalist import (
    JOINT_TASK,
    MODALITIES,
    MRI_FOLDER,
    datalist_from_folders,
    datalist_from_splits,
    datalist_from_subjects,
    harvard_datalist,
    pair_folder,
)

__all__ = [
    "DATALIST_SPLITS",
    "JOINT_TASK",
    "MODALITIES",
    "DatalistError",
    "datalist_from_dicom",
    "datalist_from_folders",
    "datalist_from_splits",
    "datalist_from_subjects",
    "harvard_datalist",
    "load_fusion_datalist",
    "main",
    "pair_folder",
    "write_datalist",
]


def _folder_options(mode: argparse.ArgumentParser, what: str) -> None:
    """``--base-dir`` and one ``--<split> FOLDER ...`` per split: the options of the modes that pair folders."""
    mode.add_argument("--base-dir", required=True, help="directory the datalist's paths are relative to")
    for split in DATALIST_SPLITS:
        mode.add_argument(f"--{split}", nargs="+", default=[], metavar="FOLDER", help=f"{what} for the {split} list")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m hkafusion_monai.data.datalist",
        description="Build a datalist JSON of MRI/other pairs (paths relative to --base-dir).",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", required=True, help="output datalist JSON")
    common.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    common.add_argument(
        "--skip-unpaired",
        action="store_true",
        help="leave out unpaired files and duplicate names (warn) instead of failing",
    )
    sub = parser.add_subparsers(dest="mode", required=True)

    f = sub.add_parser("folders", parents=[common], help="pair <folder>/MRI/<name> with <folder>/<CT|PET|SPECT>/<name>")
    _folder_options(f, "folder(s)")
    f.add_argument("--mri", default=MRI_FOLDER, help="name of the MRI folder (default MRI)")
    f.add_argument("--other", default=None, help="name of the other folder (default: the CT/PET/SPECT one present)")
    f.add_argument("--modality", choices=MODALITIES, default=None, help="modality (default: the other folder's name)")

    v = sub.add_parser(
        "subjects", parents=[common], help="pair <subject>/mri.nii.gz with <subject>/<ct|pet|spect>.nii.gz"
    )
    _folder_options(v, "subject folder(s)")
    v.add_argument("--modality", choices=MODALITIES, required=True, help="the other volume's modality")
    v.add_argument("--mri", default="mri", help="the MRI file's name without .nii(.gz) (default mri)")
    v.add_argument("--other", default=None, help="the other file's name without .nii(.gz) (default: the modality)")

    s = sub.add_parser("splits", parents=[common], help="use the Harvard splits.json (de-leaked split)")
    s.add_argument("--splits", required=True, help="path to splits.json")
    s.add_argument("--task", required=True, help="mri_ct, mri_pet or mri_spect")
    s.add_argument("--base-dir", default=None, help="the Harvard folder (default: the folder of splits.json)")

    d = sub.add_parser(
        "dicom", parents=[common], help="pair, per DICOM study, the MR series with its CT/PT/NM series (tags)"
    )
    _folder_options(d, "DICOM folder(s)")
    d.add_argument("--modality", choices=MODALITIES, default=None, help="pair only this modality")
    d.add_argument("--mri-description", default=None, metavar="REGEX", help="the MR SeriesDescription must match")
    d.add_argument("--other-description", default=None, metavar="REGEX", help="the other SeriesDescription must match")
    d.add_argument("--min-slices", type=int, default=2, help="fewest slices of a candidate series (default 2)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 1 problems found)."""
    args = _parser().parse_args(argv)
    out = Path(args.out)
    try:
        if out.exists() and not args.overwrite:
            raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
        if args.mode in ("folders", "subjects", "dicom"):
            folders = {s: getattr(args, s) for s in DATALIST_SPLITS if getattr(args, s)}
            if not folders:
                raise ValueError("give at least one of --training, --validation, --test")
        if args.mode == "folders":
            datalist = datalist_from_folders(
                folders,
                args.base_dir,
                other=args.other,
                mri=args.mri,
                modality=args.modality,
                skip_unpaired=args.skip_unpaired,
            )
        elif args.mode == "subjects":
            datalist = datalist_from_subjects(
                folders,
                args.base_dir,
                args.modality,
                mri=args.mri,
                other=args.other,
                skip_unpaired=args.skip_unpaired,
            )
        elif args.mode == "dicom":
            datalist = datalist_from_dicom(
                folders,
                args.base_dir,
                modality=args.modality,
                mri_description=args.mri_description,
                other_description=args.other_description,
                min_slices=args.min_slices,
                skip_unpaired=args.skip_unpaired,
            )
        else:
            datalist = datalist_from_splits(args.splits, args.task, args.base_dir, skip_unpaired=args.skip_unpaired)
        write_datalist(datalist, out, overwrite=args.overwrite)
    except (DatalistError, FileExistsError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    counts = ", ".join(f"{s} {len(datalist[s])}" for s in DATALIST_SPLITS)
    print(f"wrote {out}: {datalist['modality']} pairs: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
