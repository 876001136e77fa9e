"""The evaluation workflow's HTML report, made from phantom PNG pairs and rendered by headless Chromium."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from monai.bundle import ConfigWorkflow
from PIL import Image

from tests.helpers import BUNDLE, CHROMIUM_FLAGS, SHARED, random_checkpoint, require_tool

TRAIN_JSON = str(BUNDLE / "configs" / "train.json")
EVALUATE_JSON = str(BUNDLE / "configs" / "evaluate.json")


@pytest.fixture(scope="module")
def report(phantom: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("evaluate")
    workflow = ConfigWorkflow(
        config_file=[TRAIN_JSON, EVALUATE_JSON],
        workflow_type="eval",
        logging_file=False,
        run_id="evaluating",
        bundle_root=str(BUNDLE),
        datalist=str(phantom / "datalists" / "png_pet.json"),
        output_dir=str(out),
        tracking_uri=f"sqlite:///{out}/mlruns.db",
        task="mri_pet",
        ckpt_path=str(random_checkpoint(tmp_path_factory)),
        peer_results=str(SHARED / "reference" / "peer_results.json"),
        run_name="report",
        num_workers=0,
        device="$torch.device('cpu')",
    )
    workflow.initialize()
    workflow.run()
    workflow.finalize()
    path = out / "evaluation" / "report" / "report.html"
    assert path.is_file()
    return path


def test_report_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    chromium = require_tool("chromium", "chromium")
    profile = tmp_path / "profile"
    base = [chromium, *CHROMIUM_FLAGS, "--virtual-time-budget=10000", f"--user-data-dir={profile}"]
    dom = subprocess.run([*base, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = dom.stdout

    # every image decoded: the page's script wrote each naturalWidth into the DOM
    widths = [int(w) for w in re.findall(r'data-natural-width="(\d+)"', page)]
    n_images = len(re.findall(r"<img ", page))
    assert n_images >= 1 + 6 * 2, "the grid (6 columns x pairs) and the distribution plot"
    assert len(widths) == n_images and min(widths) > 0, widths
    status = re.search(r'id="decode-status"[^>]*data-decoded="(\d+)"[^>]*data-total="(\d+)"', page)
    assert status and status.group(1) == status.group(2) == str(n_images), status

    # the metric table: one row per method (and the published peer when shared/ is there)
    methods = re.findall(r"<tr class=\"method[^\"]*\" data-method=\"([^\"]+)\"", page)
    assert methods[:4] == ["hkafusion", "average", "max", "laplacian"]
    if (SHARED / "reference" / "peer_results.json").is_file():
        assert methods[4:] == ["CDDFuse_MIF (published)"]
    assert len(re.findall(r'<tr class="interval">', page)) == 3  # ours - average, - max, - laplacian
    header = re.search(r'<table id="metrics">.*?</thead>', page, re.S).group(0)
    for name in ("MI", "SF", "VIF", "AG", "Qabf", "Qcv", "CC", "SSIM", "Lesion"):
        assert f"<th>{name}" in header
    assert "SSIM(F, MRI) + SSIM(F, other)" in page  # why SSIM is above 1
    grid_header = re.search(r"<table class=\"grid\">.*?</thead>", page, re.S).group(0)
    assert re.findall(r"<th>([^<]+)</th>", grid_header) == [
        "pair",
        "MRI",
        "PET",
        "average",
        "max",
        "laplacian",
        "hkafusion",
    ]
    assert "images decoded" not in re.sub(r"<script>.*?</script>", "", page, flags=re.S)  # no leftover status text

    shot = tmp_path / "report.png"
    proc = subprocess.run(
        [*base, f"--screenshot={shot}", "--window-size=1400,2400", report.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.std() > 5, "the screenshot is blank"


def test_grid_shows_pet_in_colour(report: Path) -> None:
    """The PET column and the fused columns are RGB images (the pseudo-colour re-attached), the MRI grey."""
    import base64
    import io

    page = report.read_text()
    rows = re.findall(r"<tr><td>[^<]*</td>((?:<td>.*?</td>){6})</tr>", page)
    assert rows
    cells = re.findall(r"alt='(\w+)' src='data:image/png;base64,([^']+)'", rows[0])
    modes = {alt: Image.open(io.BytesIO(base64.b64decode(data))).mode for alt, data in cells}
    assert modes == {"MRI": "L", "other": "RGB", "average": "RGB", "max": "RGB", "laplacian": "RGB", "ours": "RGB"}
