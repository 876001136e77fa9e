"""Write ``hkafusion_monai/data/harvard_splits.json``: the de-leaked split of the Harvard pairs with every listed
image's SHA-256 and where it is published, from a complete Harvard folder (its ``splits.json`` and images).

    python tools/harvard_split_checksums.py ../shared/data/harvard

Run it when the split changes; ``python -m hkafusion_monai.data.harvard prepare`` checks a user's copy against it.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "hkafusion_monai" / "data" / "harvard_splits.json"
SPLITS = ("training", "validation", "test")
SOURCES = {
    "xianming-gu": {
        "repository": "https://github.com/xianming-gu/Havard-Medical-Image-Fusion-Datasets",
        "commit": "984d169e8abd01baa130db3c5b9be3ba80191c1f",
        "folders": "train/ and test/: MyDatasets/<CT|PET|SPECT>-MRI/<train|test>/<modality>/<name>",
    },
    "cddfuse": {
        "repository": "https://github.com/Zhaozixiang1228/MMIF-CDDFuse",
        "commit": "fd8da1f39d8d403b7343e577bd5a30cba38c7b7b",
        "folders": "test_cddfuse/: test_img/MRI_<CT|PET|SPECT>/<modality>/<name>",
    },
}


def source_of(task: str, folder: str, modality: str, name: str) -> str:
    other = task.split("_")[1].upper()
    if folder == "test_cddfuse":
        return f"cddfuse:test_img/MRI_{other}/{modality}/{name}"
    return f"xianming-gu:MyDatasets/{other}-MRI/{folder}/{modality}/{name}"


def main(harvard: Path) -> None:
    spec = json.loads((harvard / "splits.json").read_text())
    files = {}
    for task, entry in spec["tasks"].items():
        for split in SPLITS:
            for listed in entry[split]:
                folder, name = listed.split("/")
                for modality in entry["modalities"]:
                    key = f"{task}/{folder}/{modality}/{name}"
                    digest = hashlib.sha256((harvard / key).read_bytes()).hexdigest()
                    files[key] = {"sha256": digest, "source": source_of(task, folder, modality, name)}
    out = {
        "description": spec["description"],
        "images": "not part of this repository (no licence stated: bundle/docs/data_license.txt); "
        "python -m hkafusion_monai.data.harvard prepare --from <folder> builds the Harvard folder from a copy",
        "sources": SOURCES,
        "tasks": spec["tasks"],
        "files": files,
    }
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {OUT}: {len(files)} images")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
