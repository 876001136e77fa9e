"""The self-contained HTML evaluation report: the metric table against the baselines with paired confidence
intervals, an image grid (MRI | CT/PET/SPECT | average | max | laplacian | the model, PET/SPECT in colour), and
per-pair metric distributions. Images are embedded as PNG data URIs, so the one file can be mailed or archived.

A small script in the page writes each image's ``naturalWidth`` into its ``data-natural-width`` attribute and
counts the decoded images in ``#decode-status``; a headless browser's ``--dump-dom`` shows whether every image
decoded (tests/reports/test_report.py).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hkafusion_monai.metrics import CHECK_NAMES, LOWER_IS_BETTER, METRIC_NAMES, paired_comparison
from hkafusion_monai.utils.colour import recolour
from hkafusion_monai.utils.quantisation import to_uint8

__all__ = ["GRID_COLUMNS", "colourise", "load_display_image", "png_data_uri", "render_report"]

#: the image grid's columns: the two sources, then the methods (``"ours"``: the evaluated model)
GRID_COLUMNS = ("MRI", "other", "average", "max", "laplacian", "ours")

#: what the table's names mean, shown under it
_NOTES = {
    "SSIM": "SSIM is SSIM(F, MRI) + SSIM(F, other), the reference convention, hence up to 2.",
    "MI": "MI is MI(F, MRI) + MI(F, other) in nats.",
    "VIF": "VIF is VIF(MRI, F) + VIF(other, F).",
    "Lesion": "Lesion: the contrast kept (fused / source, core minus surround, on luminance) of a hot spot "
    "painted into each pair's PET/SPECT; 1 = fully kept.",
    "Bone": "Bone: the fused luminance over CT > 200 divided by the CT's there; 1 = fully kept.",
}

_SCRIPT = """
window.addEventListener('load', function () {
  var images = document.querySelectorAll('img');
  var decoded = 0;
  images.forEach(function (img) {
    img.setAttribute('data-natural-width', String(img.naturalWidth));
    if (img.complete && img.naturalWidth > 0) { decoded += 1; }
  });
  var status = document.getElementById('decode-status');
  status.setAttribute('data-decoded', String(decoded));
  status.setAttribute('data-total', String(images.length));
});
"""

_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.3em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
td.better { background: #e3f4e3; } td.worse { background: #f8e1e1; }
.grid img { width: 160px; height: 160px; image-rendering: pixelated; }
.grid td { text-align: center; }
.note { color: #555; font-size: 0.85em; }
"""


def png_data_uri(image: np.ndarray) -> str:
    """A uint8 ``(H, W)`` or ``(H, W, 3)`` image as a ``data:image/png;base64,...`` URI."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def colourise(y: np.ndarray, source_rgb: np.ndarray | None) -> np.ndarray:
    """A fused luminance ``y`` in [0, 1] ``(H, W)`` as uint8 for display: grey, or, given the colour source
    (uint8 ``(H, W, 3)`` pseudo-colour PET/SPECT), RGB with the source's chroma re-attached."""
    y = np.clip(np.asarray(y, dtype=np.float32), 0.0, 1.0)
    if source_rgb is None or source_rgb.shape[:2] != y.shape:
        return to_uint8(y)
    return to_uint8(recolour(y, source_rgb.astype(np.float32) / 255.0, channel_dim=-1))


def _fmt(x: float) -> str:
    return f"{x:.4g}" if abs(x) < 1000 else f"{x:.1f}"


def _distribution_plot(methods: Mapping[str, Mapping[str, np.ndarray]]) -> str:
    from matplotlib.figure import Figure  # no pyplot: the caller's backend is left alone

    names = [m for m in METRIC_NAMES + CHECK_NAMES if all(m in d for d in methods.values())]
    cols = (len(names) + 1) // 2
    fig = Figure(figsize=(3.5 * cols, 6))
    axes = fig.subplots(2, cols, squeeze=False)
    labels = list(methods)
    for ax, name in zip(axes.ravel(), names, strict=False):  # an odd count leaves one axis spare (hidden below)
        data = [np.asarray(methods[m][name], dtype=float) for m in labels]
        ax.boxplot(data, showfliers=False)
        for i, values in enumerate(data, start=1):  # every pair as a jittered dot
            jitter = np.random.default_rng(i).uniform(-0.15, 0.15, len(values))
            ax.plot(np.full(len(values), i) + jitter, values, ".", alpha=0.4, markersize=3)
        ax.set_xticks(range(1, len(labels) + 1), labels, rotation=30, fontsize=8)
        ax.set_title(name + (" (lower is better)" if name in LOWER_IS_BETTER else ""), fontsize=10)
    for ax in axes.ravel()[len(names) :]:
        ax.axis("off")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _page_head(title: str, n: int, info: Mapping[str, Any] | None) -> list[str]:
    """The page up to the first table: head, title, the note on the pairs and the ``info`` lines."""
    out = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'>", f"<title>{html.escape(title)}</title>"]
    out += [f"<style>{_STYLE}</style>", f"<script>{_SCRIPT}</script>", "</head><body>"]
    out.append(f"<h1>{html.escape(title)}</h1>")
    out.append(
        "<p class='note'>Research use only. Metrics on grey/Y, 0–255, with the reference-validated "
        f"implementations; {n} pairs.</p>"
    )
    if info:
        out.append(
            "<ul>"
            + "".join(f"<li>{html.escape(str(k))}: {html.escape(str(v))}</li>" for k, v in info.items())
            + "</ul>"
        )
    # for the rendering test (a headless browser's --dump-dom); not shown to a reader
    out.append("<p id='decode-status' hidden data-decoded='0' data-total='0'></p>")
    return out


def _metric_table(
    methods: Mapping[str, Mapping[str, np.ndarray]],
    names: Sequence[str],
    peer: Mapping[str, float] | None,
    peer_name: str,
) -> list[str]:
    """The metric table: mean ± std per method, the peer's published means, and what the names mean."""
    out = ["<h2>Metrics</h2><table id='metrics'><thead><tr><th>method</th>"]
    out += [f"<th>{m}{' ↓' if m in LOWER_IS_BETTER else ''}</th>" for m in names]
    out.append("</tr></thead><tbody>")
    for method, per in methods.items():
        cells = "".join(f"<td>{_fmt(float(np.mean(per[m])))} ± {_fmt(float(np.std(per[m])))}</td>" for m in names)
        out.append(f"<tr class='method' data-method='{html.escape(method)}'><td>{html.escape(method)}</td>{cells}</tr>")
    if peer:
        cells = "".join(f"<td>{peer[m]:.2f}</td>" if m in peer else "<td>–</td>" for m in names)
        escaped = html.escape(peer_name)
        out.append(f"<tr class='method peer' data-method='{escaped}'><td>{escaped}</td>{cells}</tr>")
    out.append("</tbody></table>")
    notes = [_NOTES[m] for m in ("SSIM", "MI", "VIF", *CHECK_NAMES) if m in names]
    out.append("<p class='note'>" + " ".join(html.escape(t) for t in notes) + "</p>")
    return out


def _interval_table(methods: Mapping[str, Mapping[str, np.ndarray]], ours: str, names: Sequence[str]) -> list[str]:
    """The paired differences of ``ours`` against each other method, with their bootstrap intervals."""
    out = [f"<h2>Paired differences, {html.escape(ours)} − baseline</h2>"]
    out.append(
        "<p class='note'>Mean difference and 95 % paired bootstrap interval (10,000 resamples, seed 0). "
        "Green: the interval excludes 0 in favour of the first method; red: against it.</p>"
    )
    out.append(
        "<table id='intervals'><thead><tr><th>comparison</th>"
        + "".join(f"<th>{m}</th>" for m in names)
        + "</tr></thead><tbody>"
    )
    for other in (m for m in methods if m != ours):
        intervals = []
        for m in names:
            d, lo, hi, verdict = paired_comparison(methods[ours][m], methods[other][m], m)
            cls = {1: " class='better'", -1: " class='worse'"}.get(verdict, "")
            intervals.append(f"<td{cls}>{_fmt(d)} [{_fmt(lo)}, {_fmt(hi)}]</td>")
        out.append(f"<tr class='interval'><td>{html.escape(ours)} − {html.escape(other)}</td>{''.join(intervals)}</tr>")
    out.append("</tbody></table>")
    return out


def _image_grid(grid: Sequence[Mapping[str, Any]], titles: Mapping[str, str]) -> list[str]:
    """The image grid: one row per pair, one column per :data:`GRID_COLUMNS` entry any row holds."""
    out = ["<h2>Images</h2><table class='grid'><thead><tr><th>pair</th>"]
    columns = [c for c in GRID_COLUMNS if any(row.get(c) is not None for row in grid)]
    out += [f"<th>{html.escape(titles[c])}</th>" for c in columns]
    out.append("</tr></thead><tbody>")
    for row in grid:
        cells = "".join(
            f"<td><img alt='{c}' src='{png_data_uri(row[c])}'></td>" if row.get(c) is not None else "<td>–</td>"
            for c in columns
        )
        out.append(f"<tr><td>{html.escape(str(row.get('pair', '')))}</td>{cells}</tr>")
    out.append("</tbody></table>")
    return out


def render_report(
    methods: Mapping[str, Mapping[str, np.ndarray]],
    ours: str,
    grid: Sequence[Mapping[str, Any]] = (),
    peer: Mapping[str, float] | None = None,
    peer_name: str = "CDDFuse_MIF (published)",
    info: Mapping[str, Any] | None = None,
    title: str = "HKAFusion evaluation",
    column_titles: Mapping[str, str] | None = None,
) -> str:
    """The report as one HTML string.

    Args:
        methods: method -> metric -> per-pair values (same pairs, same order, for every method).
        ours: the method compared against the others.
        grid: rows of uint8 images keyed by :data:`GRID_COLUMNS` (plus ``"pair"``, the row's name).
        peer: published means of a peer method (no per-pair values: no interval).
        peer_name: its row label.
        info: key/value lines shown under the title (task, split, checkpoint, ...).
        title: the page title.
        column_titles: the grid's column headers by :data:`GRID_COLUMNS` key (default: ``"other"`` is shown as
            "other", ``"ours"`` as ``ours``).
    """
    names = [m for m in METRIC_NAMES + CHECK_NAMES if all(m in d for d in methods.values())]
    titles = {c: c for c in GRID_COLUMNS} | {"ours": ours} | dict(column_titles or {})
    n = len(next(iter(methods.values()))[names[0]]) if methods and names else 0
    out = _page_head(title, n, info) + _metric_table(methods, names, peer, peer_name)
    if ours in methods and any(m != ours for m in methods) and n >= 2:
        out += _interval_table(methods, ours, names)
    if grid:
        out += _image_grid(grid, titles)
    if methods and names:
        out.append("<h2>Per-pair distributions</h2>")
        out.append(f"<img id='distributions' alt='per-pair metric distributions' src='{_distribution_plot(methods)}'>")
    out.append("</body></html>")
    return "\n".join(out)


def load_display_image(path: str | Path) -> np.ndarray | None:
    """A source image file as uint8 for display (``None`` if it is not a readable 2-D image)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            # 16-bit and float images keep their values (scaled below); palettes and the like become RGB
            wide = im.mode.startswith("I") or im.mode == "F"
            arr = np.asarray(im if im.mode in ("L", "RGB") or wide else im.convert("RGB"))
    except (OSError, ValueError):
        return None
    if arr.dtype != np.uint8:
        arr = to_uint8(np.clip(arr.astype(np.float64), 0, None) / max(float(arr.max()), 1.0))
    return arr
