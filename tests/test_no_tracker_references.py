"""The repository speaks to its users: no doc, docstring, test, benchmark or config refers to an item of a
tracker they cannot see (an item's number, or an item named by its subject); each states the requirement itself."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: a tracker item by number ("<item> 7", "<item> 23 #1") or by subject ("the quality <item>'s", "the deploy <item>");
#: not a longer word that ends in it ("tissue") followed by a number. The examples below spell the word in two
#: halves, so that a plain grep of the repository for tracker references finds none here either.
TRACKER = re.compile(r"\bissue\s+#?[0-9]+|\bissue's|\bthe\s+(?:[a-z-]+\s+)?issue\b", re.IGNORECASE)


def _tracked_text_files() -> list[Path]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the tracked files are unknown")
    names = (
        subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    )
    return [ROOT / n for n in names if n and (ROOT / n).is_file()]


def test_the_pattern_finds_tracker_references_and_nothing_else() -> None:
    item = "iss" + "ue"
    for text in (
        f"see {item} 23",
        f"{item.title()} 14 #10: a text",
        f"the quality {item}'s bars",
        f"comes with the deploy {item}",
        f"The {item} asks for",
        f"({item} #7)",
    ):
        assert TRACKER.search(text), text
    for text in (f"t{item} 190 grey levels brighter", f"an {item}-free run", f"{item}s a warning", f"t{item}'s"):
        assert not TRACKER.search(text), text


def test_no_tracked_file_refers_to_a_tracker_item() -> None:
    found = []
    for path in _tracked_text_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:  # a binary file (weights, images)
            continue
        for number, line in enumerate(text.splitlines(), 1):
            match = TRACKER.search(line)
            if match and path != Path(__file__).resolve():  # this file quotes the pattern's examples
                found.append(f"{path.relative_to(ROOT)}:{number}: {match.group(0)!r} in {line.strip()[:100]}")
    assert not found, "state the requirement instead of a tracker item:\n" + "\n".join(found)
