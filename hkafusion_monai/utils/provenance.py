"""Where a result came from: the git commit of the code that produced it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

__all__ = ["git_commit"]


def git_commit(path: str | os.PathLike = ".", short: bool = False) -> str:
    """The checked-out commit of the repository containing ``path`` (``+dirty`` if modified), or ``"unknown"``
    outside a repository or without git.

    Args:
        path: a file or folder inside the repository.
        short: the abbreviated hash (``git rev-parse --short``), as the benchmark reports print it.
    """
    try:
        cwd = Path(path).resolve()
        cwd = cwd if cwd.is_dir() else cwd.parent
        rev = ["git", "rev-parse", "--short", "HEAD"] if short else ["git", "rev-parse", "HEAD"]
        head = subprocess.run(rev, cwd=cwd, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=cwd, capture_output=True, text=True, check=True)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
