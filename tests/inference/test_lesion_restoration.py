"""The restoration after the network: a PET/SPECT hot spot over a darker MRI that the fusion let fade is raised
back to its target contrast, bounded, and nothing else changes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hkafusion_monai.inference import FusionInferer, RestoreLesionContrast
from hkafusion_monai.metrics import hot_spot_contrast
from hkafusion_monai.metrics.hot_spots import find_hot_spots

SIZE = 96
CENTRE = (48, 40)
RADIUS = 5.0


def _disc(radius: float, centre: tuple[int, int] = CENTRE) -> np.ndarray:
    yy, xx = np.mgrid[:SIZE, :SIZE]
    return np.hypot(yy - centre[0], xx - centre[1])


def _pair(mri_inside: float = 0.2) -> tuple[torch.Tensor, torch.Tensor, np.ndarray, np.ndarray]:
    """A head-sized grey MRI (0.6) with a spot of ``mri_inside`` and a PET (0.3) with a blurred hot spot (0.9)
    at the same place; the fused image is the MRI (the spot faded to the MRI's dark disc)."""
    d = _disc(RADIUS)
    mri = np.full((SIZE, SIZE), 0.6)
    mri[d <= RADIUS] = mri_inside
    pet = 0.3 + 0.6 * np.exp(-0.5 * (d / (RADIUS * 0.8)) ** 2)
    image = torch.from_numpy(np.stack([mri, pet])).float()
    fused = torch.from_numpy(mri[None]).float()
    core, ring = d <= 0.7 * RADIUS, (d >= 2 * RADIUS) & (d <= 3 * RADIUS)
    return fused, image, core, ring


def _kept(fused: torch.Tensor, image: torch.Tensor, core: np.ndarray, ring: np.ndarray) -> float:
    return float(hot_spot_contrast(fused[0].double(), core, ring) / hot_spot_contrast(image[1].double(), core, ring))


def test_a_faded_hypointense_hot_lesion_is_raised_to_the_target():
    fused, image, core, ring = _pair()
    assert _kept(fused, image, core, ring) < 0  # the fusion shows the MRI's dark spot: the lesion inverted
    restore = RestoreLesionContrast(target=0.9)
    out = restore(fused, image, "PET")
    assert out.shape == fused.shape and out.dtype == fused.dtype
    assert 0.8 <= _kept(out, image, core, ring) <= 1.05
    assert len(restore.last) == 1 and restore.last[0].before < 0 < restore.last[0].after
    # only the lesion's neighbourhood changes: nothing beyond the inner edge of the widest surround
    far = torch.from_numpy(_disc(RADIUS) > 3 * 8.0 + 1)
    assert torch.equal(out[0][far], fused[0][far])
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_ct_unknown_modality_and_a_switched_off_restoration_change_nothing():
    fused, image, _, _ = _pair()
    assert torch.equal(RestoreLesionContrast()(fused, image, "CT"), fused)
    assert torch.equal(RestoreLesionContrast()(fused, image, None), fused)
    assert torch.equal(RestoreLesionContrast(enabled=False)(fused, image, "SPECT"), fused)


def test_a_hot_spot_over_brighter_mri_is_left_to_the_fusion_unless_asked():
    fused, image, core, ring = _pair(mri_inside=0.9)  # the MRI is brighter there: not the lesion case
    fused = torch.full_like(fused, 0.6)  # a fusion that lost the spot altogether
    assert torch.equal(RestoreLesionContrast()(fused, image, "PET"), fused)
    assert _kept(RestoreLesionContrast(darker_mri=False)(fused, image, "PET"), image, core, ring) > 0.8


def test_a_kept_lesion_is_not_touched_and_the_raise_is_bounded():
    fused, image, core, ring = _pair()
    as_pet = image[1:2].clone()  # a fusion that kept the PET's hot spot fully
    assert torch.equal(RestoreLesionContrast(target=0.9)(as_pet, image, "PET"), as_pet)
    restore = RestoreLesionContrast(target=1.0)
    out = restore(fused, image, "PET")
    # never above the PET's own excess over the restoration's surround (3 r .. 4.5 r of the detected core radius)
    # shown on the fused surround's level, never below the fusion
    r = restore.last[0].radius
    far = torch.from_numpy((_disc(r) >= 3 * r) & (_disc(r) <= 4.5 * r))
    surround = float(fused[0][far].mean())
    excess = image[1] - float(image[1][far].mean())
    assert bool((out[0] <= torch.maximum(fused[0], surround + excess) + 1e-6).all())
    assert bool((out >= fused).all())
    assert len(find_hot_spots(image[1], max_value=1.0)) == 1


def test_volumes_are_restored_slice_by_slice():
    fused, image, core, ring = _pair()
    depth = 3
    vol_fused = fused[..., None].repeat(1, 1, 1, depth)
    vol_image = image[..., None].repeat(1, 1, 1, depth)
    vol_image[1, ..., 0] = 0.3  # no hot spot in the first slice
    out = RestoreLesionContrast(target=0.9)(vol_fused, vol_image, "SPECT")
    assert out.shape == vol_fused.shape
    assert torch.equal(out[..., 0], vol_fused[..., 0])
    assert _kept(out[..., 1], vol_image[..., 1], core, ring) >= 0.8


def test_the_inferer_restores_by_each_items_modality():
    fused, image, core, ring = _pair()

    def network(x: torch.Tensor) -> torch.Tensor:  # a "fusion" that shows the MRI
        return x[:, :1]

    inferer = FusionInferer(restoration=RestoreLesionContrast(target=0.9), modality="PET")
    out = inferer(image[None], network)
    assert _kept(out[0], image, core, ring) >= 0.8
    inferer.modality = "CT"
    assert torch.equal(inferer(image[None], network), image[None, :1])


@pytest.mark.parametrize(
    "bad", [{"target": 0.0}, {"target": 1.5}, {"footprint": 1.0}, {"surround": (3.0, 2.0)}, {"surround": (1.0, 2.0)}]
)
def test_settings_out_of_range_are_refused(bad):
    with pytest.raises(ValueError, match="RestoreLesionContrast"):
        RestoreLesionContrast(**bad)


def test_the_bundle_declares_it_off_and_load_fuser_switches_it_on():
    from hkafusion_monai.inference import load_fuser
    from tests.helpers import BUNDLE

    declared = load_fuser(BUNDLE, task="mri_pet", device="cpu").pipeline.inferer.restoration
    assert isinstance(declared, RestoreLesionContrast) and not declared.enabled
    assert load_fuser(BUNDLE, task="mri_pet", device="cpu", restoration=True).pipeline.inferer.restoration.enabled
    own = RestoreLesionContrast(target=0.8)
    assert load_fuser(BUNDLE, task="mri_pet", device="cpu", restoration=own).pipeline.inferer.restoration is own
