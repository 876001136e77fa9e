"""Listing the files of a study folder safely: symbolic links are followed inside the folder, each folder is
read once, and a link that leads back to a folder already read (a loop) is skipped and reported, instead of
being walked until the path or the memory runs out. A link that leads out of the folder is never followed:
an input folder is a trust boundary (a hospital's export folder beside other patients' studies), so such a link
is skipped and reported too.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["outside_link", "study_files"]


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def outside_link(path: str | os.PathLike, root: str | os.PathLike) -> str | None:
    """The warning for ``path`` when it is a symbolic link that leads out of the folder ``root`` (or to nothing
    there), or None: a plain file or folder, or a link whose target lies inside ``root``."""
    if not os.path.islink(path):
        return None
    target = os.path.realpath(path)
    if _inside(target, os.path.realpath(root)):
        return None
    return f"skipped {path}: a symbolic link to {target}, outside the input folder {root} (not followed)"


def study_files(root: str | os.PathLike) -> tuple[list[Path], list[str]]:
    """Every non-hidden file below ``root`` (files and folders starting with ``.`` are left out), in sorted
    order, following symbolic links to folders and files inside ``root``; each real folder and file is listed
    once.

    Returns:
        ``(files, skipped)``: the files, and one line per symbolic link that was not followed because it
        leads out of ``root`` (:func:`outside_link`), or to a folder already read (a loop, or a second path to
        the same folder), naming the link and its target.

    Raises:
        FileNotFoundError: ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder (no such directory)")
    walk = _Walk(root)
    stack = [root]
    while stack:
        entries = walk.entries(stack.pop())
        if entries is not None:
            stack.extend(reversed(walk.subfolders(entries)))  # depth first, in name order
    return walk.files, walk.skipped


class _Walk:
    """One :func:`study_files` walk: the files found, the skipped lines, and the real folders and files seen
    (by device and inode)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: list[Path] = []
        self.skipped: list[str] = []
        self.seen_dirs: set[tuple[int, int]] = set()
        self.seen_files: set[tuple[int, int]] = set()

    def entries(self, folder: Path) -> list[os.DirEntry[str]] | None:
        """The entries of ``folder`` in name order; None, with a skipped line, when it cannot be read or listed,
        or is a folder already read."""
        try:
            info = folder.stat()
        except OSError as e:  # a dangling link, or too many levels of links
            self.skipped.append(f"skipped {folder}: cannot be read ({e.strerror or e})")
            return None
        key = (info.st_dev, info.st_ino)
        if key in self.seen_dirs:
            target = os.path.realpath(folder)
            self.skipped.append(
                f"skipped {folder}: a symbolic link to {target}, a folder already read (a link loop or a second "
                "path to the same series)"
            )
            return None
        self.seen_dirs.add(key)
        try:
            return sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as e:
            self.skipped.append(f"skipped {folder}: cannot be listed ({e.strerror or e})")
            return None

    def subfolders(self, entries: list[os.DirEntry[str]]) -> list[Path]:
        """The folders among ``entries`` to walk; the files among them are listed, each real file once. Hidden
        entries are left out, links out of the root skipped."""
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            outside = outside_link(path, self.root) if entry.is_symlink() else None
            if outside is not None:
                self.skipped.append(outside)
                continue
            try:
                if entry.is_dir(follow_symlinks=True):
                    subfolders.append(path)
                elif entry.is_file(follow_symlinks=True):
                    st = entry.stat(follow_symlinks=True)
                    if (st.st_dev, st.st_ino) not in self.seen_files:
                        self.seen_files.add((st.st_dev, st.st_ino))
                        self.files.append(path)
            except OSError as e:
                self.skipped.append(f"skipped {path}: cannot be read ({e.strerror or e})")
        return subfolders
