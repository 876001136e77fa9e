"""Write a benchmark's figures into its own section of a markdown file in ``docs/``.

Each benchmark owns one section, delimited by HTML comments, so several benchmarks can
share ``docs/performance.md`` without overwriting each other.
"""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

import torch

from hkafusion_monai.utils.provenance import git_commit as _git_commit

DOCS = Path(__file__).resolve().parents[1] / "docs"


def machine_summary() -> str:
    """CPU model, core count, 1-minute load, torch version and threads: the context of a timing."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    threads = torch.get_num_threads()
    return (
        f"{cpu}, {os.cpu_count()} logical cores, 1-min load {load:.2f} at start, "
        f"torch {torch.__version__}, {threads} thread{'' if threads == 1 else 's'}"
    )


def git_commit() -> str:
    """The short commit of this checkout (``+dirty`` if modified): the code a benchmark's figures came from."""
    return _git_commit(DOCS.parent, short=True)


def write_section(filename: str, section: str, body: str, title: str = "# Performance") -> Path:
    """Replace (or append) the section ``section`` of ``docs/<filename>`` with ``body``."""
    path = DOCS / filename
    start, end = f"<!-- {section}:start -->", f"<!-- {section}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    text = path.read_text() if path.exists() else f"{title}\n\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path
