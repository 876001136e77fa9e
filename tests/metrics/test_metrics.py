"""Fusion metrics: helpers, closed-form values, edge-case conventions, input errors, batching, devices."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hkafusion_monai.metrics import (
    FUSION_METRIC_CLASSES,
    METRIC_FUNCTIONS,
    METRIC_NAMES,
    compute_fusion_metrics,
    fusion_metrics_batch,
)
from hkafusion_monai.utils import quantise
from hkafusion_monai.utils.colour import rgb_to_grey

SIZE = 48


def textured(seed: int, size: int = SIZE) -> torch.Tensor:
    """A smooth random 0..255 integer image (blurred noise), like an anatomy slice."""
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.avg_pool2d(torch.rand(1, 1, size + 4, size + 4, generator=g), 5, stride=1)
    x = (x - x.min()) / (x.max() - x.min())
    return torch.round(x[0, 0] * 255).double()


# --- quantise and rgb_to_grey -------------------------------------------------------------------------------


def test_quantise():
    x = torch.tensor([-0.5, 0.0, 0.5 / 255, 1.5 / 255, 0.2, 1.0, 7.0])
    assert quantise(x).tolist() == [0.0, 0.0, 0.0, 2.0, 51.0, 255.0, 255.0]  # round half to even, clipped
    levels = torch.arange(256, dtype=torch.float32)
    assert torch.equal(quantise(levels / 255), levels)  # a uint8 image / 255 comes back exactly
    with pytest.raises(ValueError, match="NaN or inf"):
        quantise(torch.tensor([0.1, float("nan")]))


def test_rgb_to_grey():
    grey = torch.arange(256, dtype=torch.float32)
    assert torch.equal(rgb_to_grey(grey.expand(3, 1, 256)), grey[None])  # equal channels map to themselves
    # 0.299 R + 0.587 G + 0.114 B; OpenCV's float32 evaluation puts these at 200.50002 and 223.49998
    rgb = torch.tensor([[255, 0, 0], [0, 255, 0], [0, 0, 255], [207, 227, 47], [252, 252, 2]]).T.reshape(3, 1, 5)
    assert rgb_to_grey(rgb).flatten().tolist() == [76.0, 150.0, 29.0, 201.0, 223.0]
    hwc = rgb.permute(1, 2, 0).numpy()
    assert torch.equal(rgb_to_grey(hwc, channel_dim=-1), rgb_to_grey(rgb))
    with pytest.raises(ValueError, match="3 colour channels"):
        rgb_to_grey(torch.zeros(4, 8, 8))


# --- closed-form values -------------------------------------------------------------------------------------


def test_two_level_image_closed_forms():
    """A half-black, half-white image fused with itself: every metric by hand."""
    a = torch.zeros(SIZE, SIZE, dtype=torch.float64)
    a[:, SIZE // 2 :] = 255
    m = compute_fusion_metrics(a, a, a)
    assert m["MI"] == pytest.approx(2 * math.log(2), rel=1e-12)  # 2 H(A), H = ln 2 nats
    assert m["SF"] == pytest.approx(math.sqrt(255**2 / (SIZE - 1)), rel=1e-12)  # one jump per row
    # np.gradient: the two columns at the edge see (255 - 0) / 2 in x, nothing in y
    assert m["AG"] == pytest.approx(2 * SIZE * (127.5 / math.sqrt(2)) / SIZE**2, rel=1e-12)
    assert m["CC"] == pytest.approx(1.0, rel=1e-12)
    assert m["SSIM"] == pytest.approx(2.0, rel=1e-12)
    assert m["VIF"] == pytest.approx(2.0, rel=1e-6)  # g = 1, sv^2 = eps
    assert m["Qcv"] == 0.0  # no difference to filter
    assert 0.9 < m["Qabf"] < 1.0


def test_mutual_information_counts_every_level_in_nats():
    f = torch.arange(SIZE * SIZE, dtype=torch.float64).reshape(SIZE, SIZE) % 256
    m = compute_fusion_metrics(f, f, torch.zeros_like(f))
    assert m["MI"] == pytest.approx(math.log(256), rel=1e-12)  # H(F) with 256 equiprobable levels; MI(F, 0) = 0


def test_batch_equals_single_and_float32_is_accepted():
    fused = torch.stack([textured(s) for s in (1, 2, 3)])[:, None]
    sources = torch.stack([torch.stack([textured(s + 10), textured(s + 20)]) for s in (1, 2, 3)])
    batch = fusion_metrics_batch(fused.float(), sources.float())
    for i in range(3):
        single = compute_fusion_metrics(fused[i, 0], sources[i, 0], sources[i, 1])
        for name in METRIC_NAMES:
            assert batch[name].dtype == torch.float64
            assert batch[name][i].item() == pytest.approx(single[name], rel=1e-12), name


def test_public_functions_validate_and_agree_with_batch():
    fused, sources = textured(1)[None, None], torch.stack([textured(2), textured(3)])[None]
    batch = fusion_metrics_batch(fused, sources)
    for name, fn in METRIC_FUNCTIONS.items():
        assert fn(fused, sources).item() == pytest.approx(batch[name].item(), rel=1e-12)
        with pytest.raises(ValueError):
            fn(fused, sources[:, :1])


# --- edge cases: constant and all-zero images ---------------------------------------------------------------

# documented values: MI 0 (no entropy), SF = AG = 0, VIF 1 per constant source (the 0/0 of the
# definition, as the reference), Qabf 0 without source edges, Qcv 0 with nothing to filter, CC 0 for a
# zero variance, SSIM 1 per pair of equal constant images.
CONSTANT_EXPECTED = {"MI": 0.0, "SF": 0.0, "VIF": 2.0, "AG": 0.0, "Qabf": 0.0, "Qcv": 0.0, "CC": 0.0, "SSIM": 2.0}


@pytest.mark.parametrize("value", [0.0, 100.0, 255.0])
def test_constant_images(value):
    c = torch.full((SIZE, SIZE), value, dtype=torch.float64)
    m = compute_fusion_metrics(c, c, c)
    expected = dict(CONSTANT_EXPECTED)
    if value:
        # the zero padding of the reference's Sobel filters gives a non-zero constant image edges at its
        # border, so Qabf is defined: F = A = B there, and the gA == gF quirk scores each edge pixel
        # Tg * sigmoid(15 (gF - 0.5)) * Ta * sigmoid(22 (1 - 0.8)), with gF >= 100 and equal orientations
        expected["Qabf"] = 0.9994 * 0.9879 / (1 + math.exp(-22 * 0.2))
    assert m == pytest.approx(expected, abs=1e-12)


def test_constant_fused_with_textured_sources():
    f = torch.zeros(SIZE, SIZE, dtype=torch.float64)
    m = compute_fusion_metrics(f, textured(1), textured(2))
    assert all(math.isfinite(v) for v in m.values())
    assert m["MI"] == 0.0 and m["SF"] == 0.0 and m["AG"] == 0.0 and m["CC"] == 0.0
    assert m["VIF"] == pytest.approx(0.0, abs=1e-12)  # no information of the sources in F
    assert 0.0 <= m["Qabf"] < 0.1 and m["Qcv"] > 0


def test_constant_sources_with_textured_fused():
    a, b = torch.zeros(SIZE, SIZE, dtype=torch.float64), torch.full((SIZE, SIZE), 80.0, dtype=torch.float64)
    f = textured(3)
    m = compute_fusion_metrics(f, a, b)
    assert all(math.isfinite(v) for v in m.values())
    assert m["VIF"] == 2.0 and m["CC"] == 0.0 and m["MI"] == 0.0
    assert 0.0 <= m["Qabf"] <= 1.0  # B = 80 has zero-padding edges at its border
    # both sources normalise to 0 (no saliency anywhere): every block weighs the same,
    # Qcv = mean over blocks of (D_A + D_B) / 2 > 0
    assert m["Qcv"] > 0
    assert compute_fusion_metrics(f, a, a)["Qabf"] == 0.0  # no source edge at all


# --- wrong input ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fused, a, b, match",
    [
        (torch.zeros(SIZE, SIZE), torch.zeros(SIZE, SIZE), torch.zeros(SIZE, SIZE + 1), "shapes differ"),
        (torch.zeros(1, SIZE, SIZE), torch.zeros(SIZE, SIZE), torch.zeros(SIZE, SIZE), "2-D"),
        (torch.full((SIZE, SIZE), float("nan")), torch.zeros(SIZE, SIZE), torch.zeros(SIZE, SIZE), "NaN or inf"),
        (torch.zeros(SIZE, SIZE), torch.full((SIZE, SIZE), float("inf")), torch.zeros(SIZE, SIZE), "NaN or inf"),
        (torch.full((SIZE, SIZE), 0.5), torch.zeros(SIZE, SIZE), torch.zeros(SIZE, SIZE), "integer grey values"),
        (torch.zeros(SIZE, SIZE), torch.full((SIZE, SIZE), 256.0), torch.zeros(SIZE, SIZE), "integer grey values"),
        (torch.zeros(SIZE, SIZE), torch.zeros(SIZE, SIZE), torch.full((SIZE, SIZE), -1.0), "integer grey values"),
        (torch.zeros(32, 32), torch.zeros(32, 32), torch.zeros(32, 32), "H, W >= 41"),
    ],
)
def test_compute_fusion_metrics_rejects(fused, a, b, match):
    with pytest.raises(ValueError, match=match):
        compute_fusion_metrics(fused, a, b)


def test_compute_fusion_metrics_accepts_numpy_uint8():
    a, b = textured(1).numpy().astype(np.uint8), textured(2).numpy().astype(np.uint8)
    m = compute_fusion_metrics(np.maximum(a, b), a, b)
    assert list(m) == list(METRIC_NAMES) and all(isinstance(v, float) for v in m.values())


@pytest.mark.parametrize(
    "y_pred_shape, y_shape",
    [
        ((2, 2, SIZE, SIZE), (2, 2, SIZE, SIZE)),
        ((2, 1, SIZE, SIZE), (2, 3, SIZE, SIZE)),
        ((2, 1, SIZE, SIZE), (1, 2, SIZE, SIZE)),
        ((2, 1, SIZE, SIZE), (2, 2, SIZE, 50)),
        ((1, SIZE, SIZE), (2, SIZE, SIZE)),
    ],
)
def test_metric_classes_reject_bad_shapes(y_pred_shape, y_shape):
    with pytest.raises(ValueError):
        FUSION_METRIC_CLASSES["Qabf"]()(torch.rand(y_pred_shape), torch.rand(y_shape))


def test_metric_classes_reject_non_finite():
    y_pred = torch.rand(1, 1, SIZE, SIZE)
    y_pred[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        FUSION_METRIC_CLASSES["MI"]()(y_pred, torch.rand(1, 2, SIZE, SIZE))


# --- MONAI metric classes -------------------------------------------------------------------------------------


def test_metric_classes_quantise_and_accumulate():
    torch.manual_seed(0)
    batches = [(torch.rand(2, 1, SIZE, SIZE), torch.rand(2, 2, SIZE, SIZE)) for _ in range(2)]
    expected = {name: [] for name in METRIC_NAMES}
    for fused, sources in batches:
        for i in range(2):
            m = compute_fusion_metrics(quantise(fused[i, 0]), quantise(sources[i, 0]), quantise(sources[i, 1]))
            for name in METRIC_NAMES:
                expected[name].append(m[name])
    for name, cls in FUSION_METRIC_CLASSES.items():
        metric = cls()
        fused, sources = batches[0]
        per_sample = metric(y_pred=fused, y=sources)
        assert per_sample.shape == (2, 1)
        fused, sources = batches[1]
        metric(y_pred=list(fused), y=list(sources))  # lists of channel-first tensors, as MONAI allows
        # MONAI's do_metric_reduction averages in float32
        assert metric.aggregate().item() == pytest.approx(float(np.mean(expected[name])), rel=1e-6), name
        assert metric.aggregate("none").flatten().tolist() == pytest.approx(expected[name], rel=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    fused = torch.stack([textured(s) for s in (1, 2)])[:, None]
    sources = torch.stack([torch.stack([textured(s + 10), textured(s + 20)]) for s in (1, 2)])
    cpu = fusion_metrics_batch(fused, sources)
    gpu = fusion_metrics_batch(fused.cuda().float(), sources.cuda().float())
    for name in METRIC_NAMES:
        assert gpu[name].device.type == "cuda"
        torch.testing.assert_close(gpu[name].cpu(), cpu[name], rtol=1e-9, atol=1e-9)


def test_paired_bootstrap_interval_and_verdicts() -> None:
    from hkafusion_monai.metrics import paired_bootstrap_ci, paired_comparison

    rng = np.random.default_rng(0)
    base = rng.normal(10.0, 3.0, 60)  # large between-pair spread, small paired shift: only pairing resolves it
    shifted = base + 0.2 + rng.normal(0.0, 0.05, 60)
    d, lo, hi = paired_bootstrap_ci(shifted, base)
    assert lo < d < hi and lo > 0.15 and hi < 0.25
    assert paired_bootstrap_ci(shifted, base) == (d, lo, hi)  # seeded: repeatable
    assert paired_comparison(shifted, base, "Qabf")[3] == 1
    assert paired_comparison(shifted, base, "Qcv")[3] == -1  # lower is better for Qcv
    assert paired_comparison(base + rng.normal(0, 0.05, 60), base, "MI")[3] == 0
    with pytest.raises(ValueError, match="must match"):
        paired_bootstrap_ci(base, base[:-1])
