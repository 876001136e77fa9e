"""The Harvard pairs: this project's de-leaked split of them, kept in the repository, and the folder built from
a copy of the public images.

The images come from the Harvard Whole Brain Atlas (AANLIB), as redistributed by two GitHub repositories with
no licence file (``bundle/docs/data_license.txt``), so they are not part of this repository. What is here is
:data:`SPLITS_FILE`, ``harvard_splits.json``: per task the ``training``, ``validation`` and ``test`` lists
(``training`` and ``validation`` leave out every slice that is a near-duplicate of a test pair), and per image
its SHA-256 and where it is published (``sources``).

Command line::

    python -m hkafusion_monai.data.harvard prepare --from ~/Downloads/harvard [--to data/harvard]

``--from`` is any folder holding the public images, in any layout (the two repositories' clones side by side,
or a Harvard folder of this project): every image under it is identified by its SHA-256, so names and folders
do not matter. ``--to`` (default ``data/harvard``) receives ``<task>/<split folder>/<MRI|CT|PET|SPECT>/<name>``
and ``splits.json`` (a copy of :data:`SPLITS_FILE`), the layout the workflows read; each file is copied
atomically, and files already there with the right checksum are kept. Every listed image that is missing, or
present under its own name with other bytes, is named on one line, and the command then fails.

Why our own code: no kept library checks a folder against a list of checksums.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from hkafusion_monai.io.atomic import atomic_write
from hkafusion_monai.io.formats import IMAGE_SUFFIXES

__all__ = ["DEFAULT_FOLDER", "SPLITS_FILE", "listed_files", "main", "prepare"]

#: the de-leaked split with every image's SHA-256, in the repository (and in the installed package)
SPLITS_FILE = Path(__file__).with_name("harvard_splits.json")
#: where ``prepare`` builds the Harvard folder, relative to the working directory
DEFAULT_FOLDER = Path("data") / "harvard"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _copy(source: Path, tmp: str) -> None:
    shutil.copyfile(source, tmp)


def listed_files(spec: Mapping) -> dict[str, Mapping[str, str]]:
    """``{"mri_pet/train/PET/25016.png": {"sha256": ..., "source": ...}, ...}``: every image the split lists."""
    return dict(spec["files"])


def prepare(
    source: str | Path, dest: str | Path = DEFAULT_FOLDER, spec_file: str | Path | None = None
) -> tuple[int, int, list[str]]:
    """Build the Harvard folder ``dest`` from the images found anywhere under ``source``.

    Args:
        source: a folder holding a copy of the public images (read only; never modified).
        dest: the Harvard folder to build (created; files already there with the right SHA-256 are kept).
        spec_file: the split with the checksums (default: the repository's :data:`SPLITS_FILE`).

    Returns:
        ``(copied, kept, problems)``: files copied, files already in place, and one line per listed image that
        is missing or differs (under its own name, with other bytes), naming it and where it is published.

    Raises:
        NotADirectoryError: ``source`` is not a folder (nothing is written).
    """
    source, dest, spec_file = Path(source), Path(dest), Path(spec_file or SPLITS_FILE)
    if not source.is_dir():
        raise NotADirectoryError(f"--from {source}: not a folder")
    spec = json.loads(spec_file.read_text())
    wanted = listed_files(spec)
    by_hash: dict[str, Path] = {}
    by_name: dict[str, list[Path]] = {}
    for path in sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
        by_hash.setdefault(_sha256(path), path)
        by_name.setdefault(path.name, []).append(path)
    copied = kept = 0
    problems = []
    for key, entry in sorted(wanted.items()):
        target = dest / key
        if target.is_file() and _sha256(target) == entry["sha256"]:
            kept += 1
            continue
        found = by_hash.get(entry["sha256"])
        if found is None:
            # a file of this name in the same modality folder is the user's copy of it, with other bytes
            folder = Path(key).parent.name.upper()
            same = [p for p in by_name.get(Path(key).name, []) if folder in p.parent.name.upper()]
            if same:
                problems.append(
                    f"differs: {key}: {same[0]} has other bytes (sha256 {_sha256(same[0])[:12]}…, "
                    f"expected {entry['sha256'][:12]}…; published as {entry['source']})"
                )
            else:
                problems.append(f"missing: {key} (published as {entry['source']})")
            continue
        atomic_write(target, functools.partial(_copy, found), overwrite=True)  # makes the folders too
        copied += 1
    atomic_write(dest / "splits.json", functools.partial(_copy, spec_file), overwrite=True)
    return copied, kept, problems


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (0 every listed image in place, 1 otherwise)."""
    parser = argparse.ArgumentParser(
        prog="python -m hkafusion_monai.data.harvard",
        description="Build the Harvard folder from a copy of the public images, checked against the split.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="copy the images the split lists from --from into --to, checking each")
    p.add_argument("--from", dest="source", required=True, help="a folder holding the public images (any layout)")
    p.add_argument("--to", dest="dest", default=str(DEFAULT_FOLDER), help=f"the folder to build ({DEFAULT_FOLDER})")
    args = parser.parse_args(argv)
    try:
        copied, kept, problems = prepare(args.source, args.dest)
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    total = copied + kept + len(problems)
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        print(
            f"error: {args.dest}: {len(problems)} of {total} listed images missing or differing (above); the sources "
            "are in bundle/docs/data_license.txt: add them under --from and run again",
            file=sys.stderr,
        )
        return 1
    print(f"{args.dest}: {total} images in place ({copied} copied, {kept} already there), and splits.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
