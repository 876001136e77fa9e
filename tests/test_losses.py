"""FusionLoss (paper III-D, eq. 7-12): every term against values worked out by hand on 3 x 3 images."""

from __future__ import annotations

import pytest
import torch

from hkafusion_monai.losses import PER_SAMPLE_KEYS, TERM_KEYS, FusionLoss

C1, C2 = 0.01**2, 0.03**2  # SSIM constants for data_range 1


def tiny_case() -> tuple[torch.Tensor, torch.Tensor]:
    """One 3 x 3 sample: I_A a left-to-right ramp, I_B = 0.25, I_f = 0.5, I_A^pre = I_A, I_B^pre = 0."""
    ramp = torch.tensor([0.0, 0.5, 1.0]).expand(3, 3)
    image = torch.stack([ramp, torch.full((3, 3), 0.25)])[None]  # (1, 2, 3, 3)
    pred = torch.stack([torch.full((3, 3), 0.5), ramp, torch.zeros(3, 3)])[None]  # (1, 3, 3, 3)
    return pred, image


# By hand, with one 3 x 3 uniform SSIM window (population variances, as MONAI):
#   I_A: mean 1/2, E[x^2] = (0 + 1/4 + 1) / 3 = 5/12, var 5/12 - 1/4 = 1/6; I_f: mean 1/2, var 0, cov 0
#   SSIM(I_f, I_A) = (2/4 + C1) / (1/4 + 1/4 + C1) * C2 / (1/6 + C2) = C2 / (1/6 + C2)
#   SSIM(I_f, I_B) = (2 * 0.5 * 0.25 + C1) / (0.25 + 0.0625 + C1) * C2 / C2
#   Sobel with reflect padding: every row of I_A is [0, .5, 1]; [1, 2, 1] down the column makes it [0, 2, 4];
#   [-1, 0, 1] across the reflect-padded row [2 | 0 2 4 | 2] gives [0, 4, 0]; Gy = 0. I_f, I_B are flat.
#   L_grad = mean |0 - max([0, 4, 0], 0)| = 4 / 3
#   max(I_A, I_B) rows [.25, .5, 1]; L_inten = mean |.5 - [.25, .5, 1]| = (.25 + 0 + .5) / 3 = 1 / 4
#   L_r^A = 0 + 1 - SSIM(I_A, I_A) = 0
#   L_r^B = mean |.25 - 0| + 1 - (0 + C1) / (0 + 0.0625 + C1) * C2 / C2
L_SSIM_A = 1 - C2 / (1 / 6 + C2)
L_SSIM_B = 1 - (0.25 + C1) / (0.3125 + C1)
L_GRAD = 4 / 3
L_INTEN = 0.25
L_REC_A = 0.0
L_REC_B = 0.25 + 1 - C1 / (0.0625 + C1)


def tiny_loss(**kwargs) -> FusionLoss:
    return FusionLoss(kernel_type="uniform", win_size=3, **kwargs)


def test_each_term_by_hand():
    pred, image = tiny_case()
    out = tiny_loss(mu=1.0).forward_terms(pred, image)
    assert set(out) == set(TERM_KEYS) | set(PER_SAMPLE_KEYS)
    expected = {
        "l_ssim_a": L_SSIM_A,
        "l_ssim_b": L_SSIM_B,
        "l_s": L_SSIM_A + L_SSIM_B,
        "l_grad": L_GRAD,
        "l_inten": L_INTEN,
        "l_rec_a": L_REC_A,
        "l_rec_b": L_REC_B,
    }
    for key, value in expected.items():
        assert out[key].item() == pytest.approx(value, rel=1e-5, abs=1e-6), key
    assert out["l_ssim_a_per_sample"].tolist() == pytest.approx([L_SSIM_A], rel=1e-5)
    assert out["l_ssim_b_per_sample"].tolist() == pytest.approx([L_SSIM_B], rel=1e-5)


@pytest.mark.parametrize("lambdas, mu", [((1.0, 1.0, 0.5), 1.0), ((1.0, 1.0, 0.5), 2.5), ((2.0, 0.5, 3.0), 0.25)])
def test_total_by_hand(lambdas, mu):
    pred, image = tiny_case()
    loss = tiny_loss(lambda_s=lambdas[0], lambda_grad=lambdas[1], lambda_inten=lambdas[2], mu=mu)
    out = loss.forward_terms(pred, image)
    l_s = L_SSIM_A + mu * L_SSIM_B
    total = lambdas[0] * l_s + lambdas[1] * L_GRAD + lambdas[2] * L_INTEN + L_REC_A + L_REC_B
    assert out["l_s"].item() == pytest.approx(l_s, rel=1e-5)
    assert out["loss"].item() == pytest.approx(total, rel=1e-5)


def test_call_returns_the_total_and_keeps_the_terms():
    # as MONAI's losses: a tensor to back-propagate; the terms of the call beside it, detached
    pred, image = tiny_case()
    loss = tiny_loss(mu=1.0)
    total = loss(pred, image)
    assert isinstance(total, torch.Tensor) and total.ndim == 0
    assert total.item() == pytest.approx(L_SSIM_A + L_SSIM_B + L_GRAD + 0.5 * L_INTEN + L_REC_A + L_REC_B, rel=1e-5)
    assert set(loss.terms) == set(TERM_KEYS) | set(PER_SAMPLE_KEYS)
    assert loss.terms["l_grad"].item() == pytest.approx(L_GRAD, rel=1e-5)
    assert not any(t.requires_grad for t in loss.terms.values())


def test_mu_is_settable_and_validated():
    pred, image = tiny_case()
    loss = tiny_loss()
    assert loss.mu == 1.0
    loss.mu = 3.0
    assert loss.forward_terms(pred, image)["l_s"].item() == pytest.approx(L_SSIM_A + 3.0 * L_SSIM_B, rel=1e-5)
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            loss.mu = bad


def test_fused_only_output_has_no_reconstruction_terms():
    pred, image = tiny_case()
    out = tiny_loss(mu=2.0).forward_terms(pred[:, :1], image)
    assert out["l_rec_a"].item() == 0.0 and out["l_rec_b"].item() == 0.0
    expected = (L_SSIM_A + 2.0 * L_SSIM_B) + L_GRAD + 0.5 * L_INTEN
    assert out["loss"].item() == pytest.approx(expected, rel=1e-5)


def test_reductions_and_batch():
    torch.manual_seed(0)
    pred, image = torch.rand(3, 3, 16, 16), torch.rand(3, 2, 16, 16)
    per_sample = FusionLoss(win_size=7, reduction="none").forward_terms(pred, image)
    mean = FusionLoss(win_size=7).forward_terms(pred, image)
    total = FusionLoss(win_size=7, reduction="sum").forward_terms(pred, image)
    for key in TERM_KEYS:
        assert per_sample[key].shape == (3,)
        assert mean[key].item() == pytest.approx(per_sample[key].mean().item(), rel=1e-6)
        assert total[key].item() == pytest.approx(per_sample[key].sum().item(), rel=1e-6)
    torch.testing.assert_close(per_sample["l_ssim_a"], per_sample["l_ssim_a_per_sample"])


def test_gradients_flow_to_all_outputs():
    torch.manual_seed(0)
    pred = torch.rand(2, 3, 24, 24, requires_grad=True)
    image = torch.rand(2, 2, 24, 24)
    out = FusionLoss().forward_terms(pred, image)
    out["loss"].backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()
    for channel in range(3):
        assert pred.grad[:, channel].abs().sum() > 0, f"no gradient reaches channel {channel}"
    assert not out["l_ssim_a_per_sample"].requires_grad


def test_default_configuration():
    loss = FusionLoss()
    assert (loss.lambda_s, loss.lambda_grad, loss.lambda_inten, loss.mu) == (1.0, 1.0, 0.5, 1.0)
    assert (loss.gradient_target, loss.lambda_contrast) == ("magnitude", 0.0)  # the paper's eq. 9, no floor
    assert loss.win_size == 11 and loss.c1 == pytest.approx(0.01**2) and loss.c2 == pytest.approx(0.03**2)


@pytest.mark.parametrize("kernel_type, win_size", [("gaussian", 11), ("uniform", 7)])
def test_ssim_is_monais(kernel_type, win_size):
    """The banded-matrix window gives MONAI's SSIMLoss values (the loss computes them faster, not otherwise)."""
    from monai.losses import SSIMLoss

    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(3, 1, 40, 33, generator=g), torch.rand(3, 1, 40, 33, generator=g)
    y[1] = x[1] * 0.7 + 0.1  # one well-correlated pair
    ours = FusionLoss(kernel_type=kernel_type, win_size=win_size).one_minus_ssim(x, y)
    monai = SSIMLoss(spatial_dims=2, data_range=1.0, kernel_type=kernel_type, win_size=win_size, reduction="none")
    torch.testing.assert_close(ours, monai(x, y).view(-1), atol=1e-5, rtol=0)


def _edge_case() -> tuple[torch.Tensor, torch.Tensor]:
    """I_A: a vertical step up (0.2 | 0.8); I_B: flat 0.1; both 1 x 2 x 16 x 16."""
    a = torch.full((16, 16), 0.2)
    a[:, 8:] = 0.8
    return a, torch.stack([a, torch.full((16, 16), 0.1)])[None]


def test_gradient_targets_and_polarity():
    """ "orientation" takes the stronger source's edge in either polarity, "stronger" only in its own, "max"
    the signed gradient of max(I_A, I_B); "magnitude" is eq. 9."""
    a, image = _edge_case()
    same, inverted = a[None, None].clone(), (1.0 - a)[None, None].clone()  # the edge, and the edge flipped
    losses = {target: FusionLoss(gradient_target=target) for target in ("magnitude", "orientation", "stronger", "max")}
    for target, loss in losses.items():
        assert loss.gradient_term(same, image).item() == pytest.approx(0.0, abs=1e-6), target
    assert losses["magnitude"].gradient_term(inverted, image).item() == pytest.approx(0.0, abs=1e-6)
    assert losses["orientation"].gradient_term(inverted, image).item() == pytest.approx(0.0, abs=1e-6)
    assert losses["stronger"].gradient_term(inverted, image).item() > 0.1
    assert losses["max"].gradient_term(inverted, image).item() > 0.1
    flat = torch.full((1, 1, 16, 16), 0.5)  # an edge lost is a loss for every target
    assert all(loss.gradient_term(flat, image).item() > 0.1 for loss in losses.values())
    with pytest.raises(ValueError, match="gradient_target"):
        FusionLoss(gradient_target="sign")


def test_contrast_floor_only_where_the_secondary_is_hot():
    """l_contrast is zero when the fusion stands as far above its surround as I_B does, positive when a hot
    spot of I_B fades in the fusion, and blind to where I_B is not hot."""
    yy, xx = torch.meshgrid(torch.arange(48.0), torch.arange(48.0), indexing="ij")
    spot = (torch.hypot(yy - 24, xx - 24) <= 4).float()
    mri = torch.full((48, 48), 0.6) - 0.4 * spot  # dark on the MRI
    pet = 0.2 + 0.7 * spot  # hot on the PET
    image = torch.stack([mri, pet])[None]
    loss = FusionLoss(lambda_contrast=1.0)
    assert loss.contrast_term(pet[None, None], pet[None, None]).item() == pytest.approx(0.0, abs=1e-7)
    faded = torch.maximum(mri, pet) * (1 - spot) + 0.5 * spot  # the hot spot at half its height
    assert loss.contrast_term(faded[None, None], pet[None, None]).item() > 1e-3
    dark_spot = (torch.full((48, 48), 0.5) - 0.3 * spot)[None, None]  # where I_B is dark there is no floor:
    darker = dark_spot - 0.2 * spot  # a fusion darker still there costs nothing
    assert loss.contrast_term(darker, dark_spot).item() == pytest.approx(0.0, abs=1e-7)
    out = loss.forward_terms(faded[None, None], image)
    assert out["l_contrast"].item() > 0
    assert out["loss"].item() == pytest.approx(
        (out["l_s"] + out["l_grad"] + 0.5 * out["l_inten"] + out["l_contrast"]).item(), rel=1e-6
    )
    assert FusionLoss().forward_terms(faded[None, None], image)["l_contrast"].item() == 0.0  # off by default


def test_contrast_floor_over_darker_mri_acts_on_the_lesion_case_only():
    """With ``contrast_region="hot_over_darker_mri"`` the floor acts where I_B is hot *and* the MRI is below
    its surround (a hypointense-hot lesion), not on a hot spot over flat MRI tissue, where ``"hot"`` acts."""
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    lesion = (torch.hypot(yy - 20, xx - 20) <= 4).float()
    uptake = (torch.hypot(yy - 44, xx - 44) <= 4).float()  # normal focal uptake, the MRI flat there
    mri = torch.full((64, 64), 0.6) - 0.4 * lesion
    pet = 0.2 + 0.7 * (lesion + uptake)
    flat = torch.full((1, 1, 64, 64), 0.5)  # a fusion that keeps neither hot spot
    local = FusionLoss(lambda_contrast=1.0, contrast_region="hot_over_darker_mri")
    anywhere = FusionLoss(lambda_contrast=1.0)
    both = local.contrast_term(flat, pet[None, None], mri[None, None]).item()
    no_lesion = local.contrast_term(flat, (0.2 + 0.7 * uptake)[None, None], mri[None, None]).item()
    assert both > 1e-3
    assert no_lesion < 0.05 * both  # the uptake over flat MRI is (nearly) outside the region
    assert anywhere.contrast_term(flat, (0.2 + 0.7 * uptake)[None, None]).item() > 0.5 * both
    out = local.forward_terms(flat, torch.stack([mri, pet])[None])
    assert out["l_contrast"].item() == pytest.approx(both, rel=1e-5)
    with pytest.raises(ValueError, match="needs src_a"):
        local.contrast_term(flat, pet[None, None])
    with pytest.raises(ValueError, match="contrast_region"):
        FusionLoss(contrast_region="everywhere")


@pytest.mark.parametrize(
    "pred_shape, image_shape",
    [
        ((1, 2, 16, 16), (1, 2, 16, 16)),
        ((1, 3, 16, 16), (1, 3, 16, 16)),
        ((1, 3, 16, 16), (2, 2, 16, 16)),
        ((1, 3, 16, 16), (1, 2, 16, 12)),
        ((3, 16, 16), (2, 16, 16)),
        ((1, 1, 8, 8), (1, 2, 8, 8)),
    ],
)
def test_wrong_shapes_raise(pred_shape, image_shape):
    with pytest.raises(ValueError):
        FusionLoss()(torch.rand(pred_shape), torch.rand(image_shape))
