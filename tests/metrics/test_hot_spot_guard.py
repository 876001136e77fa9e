"""The hot-spot guard (:func:`hkafusion_monai.metrics.hot_spot_guard`, docs/failure_behaviour.md): it finds a
PET/SPECT image's hot spots and says which ones a fusion lost. It fires on a fusion that drops a hot spot (the
MRI alone as "fused"), and stays quiet on one that keeps it (pixel max, the PET itself); on synthetic heads,
on the phantom's lesions, and on bright spots painted into real Harvard pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hkafusion_monai.metrics import HOT_SPOT_MIN_KEPT, HOT_SPOT_MRI_DARKER, hot_spot_guard
from hkafusion_monai.transforms.hot_spots import paint_hot_spot


def _head(size: int = 128, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A disc-shaped 'head': an MRI with texture and a smooth, dim PET."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - size / 2, xx - size / 2)
    inside = r < size * 0.42
    mri = np.where(inside, 90 + 30 * np.sin(xx / 4.0) + rng.normal(0, 5, (size, size)), 0)
    pet = np.where(inside, 60 + 30 * np.exp(-((r / (size * 0.3)) ** 2)), 0)
    return np.clip(mri, 0, 255).astype(np.uint8), np.clip(pet, 0, 255).astype(np.uint8)


def _near(spots, centre, tolerance: float = 4.0):
    return [s for s in spots if np.hypot(*(np.asarray(s.position[:2]) - centre[:2])) <= tolerance]


def _painted(mri: np.ndarray, other: np.ndarray, seed: int):
    """A clearly hot spot (luminance 255, at least 80 grey levels over its surround) painted into ``other``'s
    luminance; returns the painted luminance and the spot's centre."""
    spot = paint_hot_spot(mri, other, seed=seed, level=255.0, min_contrast=80.0)
    return spot.painted.astype(np.float64), np.argwhere(spot.core).mean(axis=0)


def test_the_guard_fires_on_a_dropped_painted_hot_spot_and_not_on_pixel_max() -> None:
    mri, pet = _head()
    painted, centre = _painted(mri, pet, seed=0)
    lost = _near(hot_spot_guard(mri, painted), centre)  # the MRI alone drops it
    assert len(lost) == 1 and lost[0].lost and lost[0].kept < 0.2 and lost[0].contrast >= 80
    kept = _near(hot_spot_guard(np.maximum(mri, painted), painted), centre)
    assert len(kept) == 1 and not kept[0].lost and kept[0].kept > 0.7
    # the same pixels on the [0, 1] scale, as inference passes them
    scaled = _near(hot_spot_guard(mri / 255.0, painted / 255.0, max_value=1.0), centre)
    assert [s.position for s in scaled] == [lost[0].position] and scaled[0].kept == pytest.approx(lost[0].kept)
    # the fraction is a setting: nothing is lost when nothing need be kept
    assert not any(s.lost for s in hot_spot_guard(mri, painted, min_kept=-1.0))
    assert HOT_SPOT_MIN_KEPT == 0.5


def test_with_the_mri_only_a_hot_spot_over_darker_mri_is_lost() -> None:
    """The same hot spot, fused so that it keeps under half its contrast: lost where the MRI is dark under it (a
    lesion's pattern), not where the MRI is as bright there as around it (normal focal uptake)."""
    mri, pet = _head()
    painted, centre = _painted(mri, pet, seed=0)
    spot = hot_spot_guard(mri, painted)
    (found,) = _near(spot, centre)
    core = np.hypot(*(np.mgrid[:128, :128] - centre[:, None, None])) <= found.radius
    dark = np.where(core, 0.2 * mri, mri)  # hypointense under the hot spot
    fused = 0.75 * dark + 0.25 * painted  # under half the contrast kept
    (lesion,) = _near(hot_spot_guard(fused, painted, mri=dark), centre)
    assert lesion.kept < HOT_SPOT_MIN_KEPT and lesion.mri_ratio < 1 - HOT_SPOT_MRI_DARKER
    assert lesion.lost
    fused = 0.75 * mri + 0.25 * painted  # the same loss over the MRI's own texture
    (uptake,) = _near(hot_spot_guard(fused, painted, mri=mri), centre)
    assert uptake.kept < HOT_SPOT_MIN_KEPT and uptake.mri_ratio > 1 - HOT_SPOT_MRI_DARKER and not uptake.lost
    assert _near(hot_spot_guard(fused, painted), centre)[0].lost  # without the MRI: every hot spot is guarded
    assert _near(hot_spot_guard(fused, painted, mri=mri, mri_darker=-1.0), centre)[0].lost
    # over a black MRI surround nothing is darker
    assert not _near(hot_spot_guard(fused, painted, mri=np.zeros_like(mri)), centre)[0].lost
    with pytest.raises(ValueError, match="mri"):
        hot_spot_guard(fused, painted, mri=mri[:64])


def test_no_hot_spot_no_alarm_and_bad_shapes_are_refused() -> None:
    mri, pet = _head()
    assert hot_spot_guard(mri, pet) == []  # a smooth uptake has no hot spot
    assert hot_spot_guard(np.zeros((64, 64)), np.zeros((64, 64))) == []
    with pytest.raises(ValueError, match="must be equal"):
        hot_spot_guard(np.zeros((64, 64)), np.zeros((64, 65)))
    with pytest.raises(ValueError, match="must be equal"):
        hot_spot_guard(np.zeros((2, 64, 64, 3)), np.zeros((2, 64, 64, 3)))


def test_a_volume_is_searched_in_3d_and_measured_in_the_hot_spots_slice() -> None:
    """A blob spanning five slices is one hot spot, at its middle slice; a one-slice volume finds what the
    2-D image finds."""
    mri, pet = _head(96)
    painted, centre = _painted(mri, pet, seed=2)
    weights = np.array([0.0, 0.5, 0.8, 1.0, 0.8, 0.5, 0.0])
    source = np.stack([pet + w * (painted - pet) for w in weights], axis=-1)
    fused = np.repeat(mri[..., None].astype(np.float64), len(weights), axis=-1)
    spots = _near(hot_spot_guard(fused, source), centre)
    assert len(spots) == 1 and spots[0].position[2] == 3 and spots[0].lost
    flat = hot_spot_guard(mri[..., None], painted[..., None])
    assert [s.position[:2] for s in flat] == [s.position for s in hot_spot_guard(mri, painted)]


def test_the_guard_finds_the_phantoms_lesions(phantom, one_thread) -> None:
    """The phantom's PET and SPECT lesions (known centres and radii), through the volume chain onto the MRI
    grid: each is found; the MRI alone loses it, the secondary itself keeps it whole."""
    from hkafusion_monai.data import phantom as ph
    from hkafusion_monai.inference import bundle_pipeline

    for modality in ("PET", "SPECT"):
        data = {
            "mri": phantom / "nifti" / "sub-000" / "mri.nii.gz",
            "other": phantom / "nifti" / "sub-000" / f"{modality.lower()}.nii.gz",
            "modality": modality,
        }
        data = bundle_pipeline().preprocessing.volume(data)
        image = data["image"]
        affine = np.asarray(image.affine)
        subject = ph.make_subject(0, 0)
        inverse = np.linalg.inv(subject.rotation / subject.scale)
        mri, other = image[0].numpy(), image[1].numpy()
        spots = hot_spot_guard(mri, other, max_value=1.0)
        kept = hot_spot_guard(other, other, max_value=1.0)
        assert not any(s.lost for s in kept) and all(s.kept == pytest.approx(1.0) for s in kept)
        for lesion in subject.lesions:
            ras = (lesion[:3] @ inverse + subject.translation) * np.array([-1.0, -1.0, 1.0])  # LPS -> RAS
            ijk = np.linalg.solve(affine[:3, :3], ras - affine[:3, 3])
            found = [s for s in spots if np.linalg.norm(np.asarray(s.position) - ijk) <= 3.0]
            assert len(found) == 1, (modality, ijk, [s.position for s in spots])
            assert found[0].lost and found[0].kept < 0.3, (modality, found)


def test_the_guard_on_bright_spots_painted_into_harvard_pairs(harvard_dir) -> None:
    """Real PET and SPECT slices of the test sets, each with one clearly hot spot painted in: the guard finds
    it, fires when the MRI alone is the "fusion", and stays quiet for it under pixel max."""
    from PIL import Image

    from hkafusion_monai.data.datalist import datalist_from_splits
    from hkafusion_monai.utils.colour import rgb_to_grey

    for task in ("mri_pet", "mri_spect"):
        datalist = datalist_from_splits(harvard_dir / "splits.json", task)
        base = Path(datalist["base_dir"])
        for k, item in enumerate(datalist["test"][:3]):
            mri = np.asarray(Image.open(base / item["mri"]).convert("L"))
            other = rgb_to_grey(np.asarray(Image.open(base / item["other"]).convert("RGB")), channel_dim=-1).numpy()
            painted, centre = _painted(mri, other, seed=k)
            dropped = _near(hot_spot_guard(mri, painted), centre)
            assert len(dropped) == 1 and dropped[0].lost, (task, item["mri"], dropped)
            kept = _near(hot_spot_guard(np.maximum(mri, painted), painted), centre)
            assert len(kept) == 1 and not kept[0].lost, (task, item["mri"], kept)


def test_the_guard_takes_tensors(one_thread) -> None:
    mri, pet = _head()
    painted, centre = _painted(mri, pet, seed=1)
    spots = hot_spot_guard(torch.from_numpy(mri), torch.from_numpy(painted))
    assert _near(spots, centre) and spots == hot_spot_guard(mri, painted)


def test_bundle_inference_guards_the_networks_own_output(phantom, tmp_path, one_thread) -> None:
    """The inference evaluator's handler measures the network's fused luminance against the secondary as the
    network saw it (not the postprocessed uint8 colour image): its records are the guard's own figures; with
    the MRI alone as the "network" it fires."""
    import json

    from monai.data import DataLoader, Dataset
    from monai.engines import SupervisedEvaluator

    from hkafusion_monai.handlers import InferenceChecksHandler
    from hkafusion_monai.inference import FusionInferer, bundle_pipeline

    class MRIAlone(torch.nn.Module):
        def forward(self, image: torch.Tensor) -> torch.Tensor:
            return image[:, :1]

    items = [
        {"mri": str(phantom / item["mri"]), "other": str(phantom / item["other"]), "modality": "PET"}
        for item in json.loads((phantom / "datalists" / "png_pet.json").read_text())["test"]
    ]
    pipeline = bundle_pipeline()
    checks = InferenceChecksHandler(min_kept=0.5)
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=DataLoader(Dataset(items, pipeline.preprocessing), batch_size=1),
        network=MRIAlone(),
        inferer=FusionInferer(),
        postprocessing=pipeline.postprocessing,
        val_handlers=[checks],
    )
    evaluator.run()
    assert [r["pair"] for r in checks.records] == [1, 2]
    for item, record in zip(items, checks.records, strict=True):
        image = pipeline.preprocessing(item)["image"]
        expected = hot_spot_guard(image[0], image[1], max_value=1.0)
        assert expected and any(s.lost for s in expected)
        assert [(tuple(s["position"]), s["kept"]) for s in record["hot_spots"]] == [
            (s.position, pytest.approx(s.kept)) for s in expected
        ]


def test_the_tiled_search_finds_what_one_tile_finds(monkeypatch) -> None:
    """Planes are searched tile by tile, each smoothed and reduced to its peaks on its own with a halo: hot spots
    on and near the tiles' edges (here tiles of 64) are found exactly as in one tile the size of the image."""
    from hkafusion_monai.metrics import hot_spots

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:150, :200]
    mri = 90 + 30 * np.sin(xx / 4.0) + rng.normal(0, 5, yy.shape)
    source = 60 + 30 * np.exp(-(((yy - 75) ** 2 + (xx - 100) ** 2) / 80.0**2))
    for (cy, cx), r in zip([(63, 64), (64, 128), (20, 63), (128, 190), (100, 126)], [2, 3, 5, 3, 12], strict=True):
        source = np.where(np.hypot(yy - cy, xx - cx) <= r, 200.0, source)
    source = source + rng.normal(0, 3, yy.shape)
    fused = 0.5 * (mri + source)
    volume = np.stack([source, 0.8 * source, source], axis=-1)
    args = (255.0, hot_spots.HOT_SPOT_RADII, 0.05, 0.9, 20.0)  # every candidate, before the overlap rule
    whole = hot_spot_guard(fused, source, mri=mri), hot_spots.find_hot_spots(volume)
    candidates = hot_spots._candidates(source, *args), hot_spots._candidates(volume, *args)
    assert len(whole[0]) >= 5 and len(whole[1]) >= 5
    monkeypatch.setattr(hot_spots, "_TILE", 64)
    assert hot_spot_guard(fused, source, mri=mri) == whole[0]
    assert hot_spots.find_hot_spots(volume) == whole[1]
    tiled_candidates = hot_spots._candidates(source, *args), hot_spots._candidates(volume, *args)
    for tiled, one in zip(tiled_candidates, candidates, strict=True):
        # the same peaks; their contrasts within float32 rounding of FFTs of other sizes
        assert [c[1:] for c in tiled] == [c[1:] for c in one]
        assert [c[0] for c in tiled] == pytest.approx([c[0] for c in one], abs=1e-3)


def test_fuse_volumes_returns_the_mri_as_the_network_saw_it(phantom, one_thread) -> None:
    """Deploy guards against the MRI as the network saw it: ``fuse_volumes(return_mri=True)`` returns it on the
    fused volume's grid and axes (an "MRI alone" network gives it back exactly), after the other volume."""
    from hkafusion_monai.inference import load_fuser
    from hkafusion_monai.transforms import LoadFusionVolumed

    class MRIAlone(torch.nn.Module):
        def forward(self, image: torch.Tensor) -> torch.Tensor:
            return image[:, :1]

    load = LoadFusionVolumed(["v"])
    mr, pt = (load({"v": str(phantom / "dicom" / "sub-000" / s)})["v"] for s in ("MR", "PT"))
    fuser = load_fuser(task="mri_pet", device="cpu")
    fuser.network = MRIAlone()
    fused, other, mri = fuser.fuse_volumes(mr, pt, return_other=True, return_mri=True)
    assert fused.shape == other.shape == mri.shape == mr.shape
    assert torch.equal(fused.as_tensor(), mri.as_tensor()) and not torch.equal(mri.as_tensor(), other.as_tensor())
    assert float(mri.min()) >= 0.0 and float(mri.max()) <= 1.0
    only_mri = fuser.fuse_volumes(mr, pt, return_mri=True)
    assert len(only_mri) == 2 and torch.equal(only_mri[1].as_tensor(), mri.as_tensor())
