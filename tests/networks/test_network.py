"""HKAFusion network: shapes, range, gradients, structure, ablations, reproducibility, TorchScript, errors."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

from hkafusion_monai.networks import (
    AFBLK,
    BatchNormConv1x1,
    FusionImageGenerator,
    HKAFusion,
    SKAModule,
    SpatialSelfAttention,
)

ABLATIONS = {
    "no_attention": dict(attention="none"),
    "self_attention": dict(attention="self"),
    "direct_concat": dict(fusion="concat"),
    "no_reconstruction": dict(reconstruction=False),
    "kernels_3337": dict(small_kernels=(3, 3, 3), large_kernel=7),
    "kernels_3577": dict(small_kernels=(3, 5, 7), large_kernel=7),
}


def _image(b: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 2, h, w, generator=torch.Generator().manual_seed(seed))


def _n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.fixture(scope="module")
def net() -> HKAFusion:
    torch.manual_seed(0)
    return HKAFusion()


@pytest.mark.parametrize("size", [(256, 256), (37, 45), (64, 33), (1, 7)])
def test_eval_shape_and_range(net: HKAFusion, size: tuple[int, int]) -> None:
    net.eval()
    with torch.no_grad():
        out = net(_image(2, *size))
    assert out.shape == (2, 1, *size)
    assert torch.isfinite(out).all()
    assert out.min() >= 0.0 and out.max() <= 1.0


@pytest.mark.parametrize("size", [(64, 64), (45, 37)])
def test_train_shape_and_range(net: HKAFusion, size: tuple[int, int]) -> None:
    net.train()
    out = net(_image(2, *size))
    assert out.shape == (2, 3, *size)  # fused, reconstructed MRI, reconstructed other
    assert out.min() >= 0.0 and out.max() <= 1.0
    net.eval()


def test_train_shape_without_reconstruction() -> None:
    out = HKAFusion(reconstruction=False).train()(_image(2, 40, 40))
    assert out.shape == (2, 1, 40, 40)


@pytest.mark.parametrize("kwargs", [{}, *ABLATIONS.values()], ids=["default", *ABLATIONS])
def test_gradient_reaches_every_parameter(kwargs: dict) -> None:
    torch.manual_seed(0)
    model = HKAFusion(**kwargs).train()
    model(_image(2, 64, 64)).square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient reaches: {missing}"


def test_ska_kernels_and_dilations_follow_config() -> None:
    k1, k2, k3, big, d = 3, 5, 9, 15, 3
    model = HKAFusion(small_kernels=(k1, k2, k3), large_kernel=big, dilation=d)
    modules = [m for m in model.modules() if isinstance(m, SKAModule)]
    assert len(modules) == sum((1, 1, 2, 1))
    for m in modules:
        assert [c.kernel_size for c in m.local_convs] == [(k1, k1), (k2, k2), (k3, k3)]
        assert all(c.groups == c.in_channels for c in m.local_convs)  # depthwise
        convs = list(m.attention)
        assert [c.kernel_size for c in convs] == [(1, 2 * d - 1), (2 * d - 1, 1), (1, big // d), (big // d, 1)]
        assert [c.dilation for c in convs] == [(1, 1), (1, 1), (1, d), (d, 1)]
        assert all(c.groups == c.in_channels for c in convs)
        # receptive field of the cascade along one axis: (2d - 1) + (floor(K/d) - 1) d
        assert (2 * d - 1) + (big // d - 1) * d == 17


def test_reparameterised_local_branch_equals_three_branches() -> None:
    torch.manual_seed(0)
    m = SKAModule(8, (3, 5, 7), 11, 2)
    x = torch.randn(2, 8, 20, 24)
    summed = x + sum(conv(x) for conv in m.local_convs)
    weight, bias = m.local_kernel()
    merged = nn.functional.conv2d(x, weight, bias, padding=3, groups=8)
    torch.testing.assert_close(merged, summed, rtol=1e-5, atol=1e-5)


def test_batchnorm_folding_matches_unfolded_in_eval() -> None:
    torch.manual_seed(0)
    m = BatchNormConv1x1(6, 4)
    m.train()
    for _ in range(3):  # give the running statistics non-trivial values
        m(torch.randn(4, 6, 8, 8) * 3 + 1)
    m.eval()
    x = torch.randn(2, 6, 5, 7)
    torch.testing.assert_close(m(x), m.conv(m.norm(x)), rtol=1e-5, atol=1e-5)


def test_stage_outputs_sit_at_quarter_to_thirty_second() -> None:
    model = HKAFusion().eval()
    shapes: list[tuple[int, ...]] = []
    hooks = [s.register_forward_hook(lambda _m, _i, o: shapes.append(tuple(o.shape))) for s in model.encoders[0].stages]
    with torch.no_grad():
        model(_image(1, 128, 192))
    for h in hooks:
        h.remove()
    # the shared encoder runs both modalities as one batch of 2
    assert [s[2:] for s in shapes] == [(32, 48), (16, 24), (8, 12), (4, 6)]
    assert [s[1] for s in shapes] == [32, 48, 64, 96]
    assert all(s[0] == 2 for s in shapes)


def _max_extent(model: nn.Module) -> int:
    """Largest spatial extent, dilation * (k - 1) + 1, of any convolution."""
    return max(
        d * (k - 1) + 1
        for m in model.modules()
        if isinstance(m, nn.Conv2d)
        for k, d in zip(m.kernel_size, m.dilation, strict=True)
    )


def test_no_attention_has_no_large_kernel_convolutions() -> None:
    assert _max_extent(HKAFusion()) == 9  # the dilated floor(K/d) = 5 depthwise pair, d = 2
    model = HKAFusion(attention="none")
    assert _max_extent(model) <= 7  # nothing beyond the small kernels
    assert all(not m.use_attention and len(m.attention) == 0 for m in model.modules() if isinstance(m, SKAModule))


def test_self_attention_replaces_ska_module() -> None:
    model = HKAFusion(attention="self")
    assert not any(isinstance(m, SKAModule) for m in model.modules())
    assert sum(isinstance(m, SpatialSelfAttention) for m in model.modules()) == 5


def test_direct_concatenation_has_no_afblk() -> None:
    assert sum(isinstance(m, AFBLK) for m in HKAFusion().modules()) == 5
    assert not any(isinstance(m, AFBLK) for m in HKAFusion(fusion="concat").modules())


def test_no_reconstruction_has_no_decoders() -> None:
    assert sum(isinstance(m, FusionImageGenerator) for m in HKAFusion().modules()) == 3
    model = HKAFusion(reconstruction=False)
    assert len(model.reconstructors) == 0
    assert sum(isinstance(m, FusionImageGenerator) for m in model.modules()) == 1


def test_each_ablation_changes_parameter_count() -> None:
    default = _n_params(HKAFusion())
    counts = {name: _n_params(HKAFusion(**kw)) for name, kw in ABLATIONS.items()}
    assert all(c != default for c in counts.values()), counts


def test_separate_encoders_option() -> None:
    shared, separate = HKAFusion(), HKAFusion(shared_encoder=False)
    assert len(shared.encoders) == 1 and len(separate.encoders) == 2
    assert _n_params(separate) > _n_params(shared)
    with torch.no_grad():
        assert separate.eval()(_image(1, 40, 40)).shape == (1, 1, 40, 40)


def test_reproducible_from_seed() -> None:
    def build_and_step() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        torch.manual_seed(1234)
        model = HKAFusion()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        model.eval()
        with torch.no_grad():
            out = model(_image(1, 48, 48, seed=5))
        model.train()
        opt.zero_grad()
        model(_image(2, 48, 48, seed=6)).mean().backward()
        opt.step()
        return out, copy.deepcopy(model.state_dict())

    out1, state1 = build_and_step()
    out2, state2 = build_and_step()
    assert torch.equal(out1, out2)
    assert state1.keys() == state2.keys()
    assert all(torch.equal(state1[k], state2[k]) for k in state1)


def test_torchscript_matches_eager_at_odd_size(net: HKAFusion) -> None:
    net.eval()
    scripted = torch.jit.script(net)
    x = _image(2, 37, 51)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), net(x), rtol=1e-5, atol=1e-6)
    net.train()
    scripted.train()
    y = _image(2, 29, 35)
    torch.manual_seed(3)
    eager = net(y)
    torch.manual_seed(3)
    torch.testing.assert_close(scripted(y), eager, rtol=1e-5, atol=1e-6)
    net.eval()


def test_onnx_export_matches_eager(net: HKAFusion, tmp_path) -> None:
    ort = pytest.importorskip("onnxruntime", reason="optional extra: pip install -e '.[onnx]'")
    pytest.importorskip("onnxscript", reason="optional extra: pip install -e '.[onnx]'")
    net.eval()
    path = tmp_path / "hkafusion.onnx"
    x = _image(1, 64, 96)
    # the dynamo exporter: the TorchScript-based one cannot export the re-parameterised depthwise kernel
    torch.onnx.export(net, (x,), str(path), input_names=["image"], output_names=["pred"], dynamo=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(None, {"image": x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(onnx_out), net(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(in_channels=1), "2-channel"),
        (dict(in_channels=3), "2-channel"),
        (dict(out_channels=2), "1-channel"),
        (dict(small_kernels=(3, 4, 7)), "odd"),
        (dict(large_kernel=10), "odd"),
        (dict(large_kernel=9, dilation=2), "must be odd"),
        (dict(shallow_channels=0), "positive"),
        (dict(stage_channels=(32, -48, 64, 96)), "positive"),
        (dict(stage_channels=(32, 48, 64)), "four SKA stages"),
        (dict(stage_depths=(1, 0, 1, 1)), "positive"),
        (dict(attention="lka"), "attention"),
        (dict(fusion="sum"), "fusion"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HKAFusion(**kwargs)


@pytest.mark.parametrize("shape", [(1, 1, 32, 32), (1, 3, 32, 32), (2, 32, 32)])
def test_wrong_input_shape_raises(net: HKAFusion, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"\(B, 2, H, W\)"):
        net(torch.rand(*shape))
