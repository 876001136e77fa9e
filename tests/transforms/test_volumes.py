"""Volumes: loading DICOM series and NIfTI (real pydicom test files and the phantom), bad input, geometry,
intensity, slices, the way to SliceInferer and back, and the whole chain declared in JSON."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor
from monai.inferers import SliceInferer
from monai.transforms import Orientationd, ResampleToMatchd
from monai.utils import set_determinism
from pydicom.data import get_testdata_file

from hkafusion_monai.data.phantom import PROFILES, make_subject, make_volume
from hkafusion_monai.transforms import (
    CheckOverlapd,
    DropEmptySlicesd,
    LoadFusionVolumed,
    RestoreOrientationd,
    ScaleIntensityByModalityd,
    StackPaird,
    world_bounding_box,
)
from hkafusion_monai.utils import FusionInputError

PYDICOM_FILES = Path(get_testdata_file("CT_small.dcm")).parent
DICOMDIR_TESTS = PYDICOM_FILES / "dicomdirtests"


pytestmark = pytest.mark.usefixtures("one_thread")


def load(path, key: str = "img", **item) -> MetaTensor:
    return LoadFusionVolumed([key])({key: str(path), **item})[key]


def world_of(img: MetaTensor, index) -> np.ndarray:
    return (img.affine.numpy() @ np.r_[index, 1.0])[:3]


# ------------------------------------------------------------------------------- real DICOM (pydicom's files)


def test_single_dicom_files_are_one_slice_volumes():
    ct = load(PYDICOM_FILES / "CT_small.dcm")
    ds = pydicom.dcmread(PYDICOM_FILES / "CT_small.dcm")
    assert ct.shape == (1, 128, 128, 1) and ct.dtype == torch.float32
    hu = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_array_equal(ct[0, :, :, 0].numpy(), hu.T)  # X runs along the columns (MONAI's swap_ij)
    lps = np.asarray(ds.ImagePositionPatient, dtype=float)
    np.testing.assert_allclose(world_of(ct, [0, 0, 0]), lps * [-1, -1, 1], atol=1e-4)  # RAS
    np.testing.assert_allclose(ct.affine[:3, 2].numpy(), [0, 0, float(ds.SliceThickness)], atol=1e-6)
    assert ct.meta["source_modality"] == "CT" and ct.meta["series_instance_uid"] == ds.SeriesInstanceUID
    mr = load(PYDICOM_FILES / "MR_small.dcm")
    assert mr.shape == (1, 64, 64, 1) and mr.meta["source_modality"] == "MR"


def test_real_ct_series_is_ordered_by_position():
    folder = DICOMDIR_TESTS / "98892001" / "CT5N"
    ct = load(folder)
    assert ct.shape == (1, 16, 16, 5)
    # slices run along +z whatever the InstanceNumbers say; each lands at its own ImagePositionPatient
    for path in folder.iterdir():
        ds = pydicom.dcmread(path)
        k = int(round((ds.ImagePositionPatient[2] - (-1.2375)) / 2.5))
        np.testing.assert_allclose(
            world_of(ct, [0, 0, k]), np.asarray(ds.ImagePositionPatient) * [-1, -1, 1], atol=1e-3
        )
        hu = ds.pixel_array.astype(np.float32) + float(ds.RescaleIntercept)
        np.testing.assert_array_equal(ct[0, :, :, k].numpy(), hu.T)
    assert ct.meta["spacing"][2] == pytest.approx(2.5)


@pytest.mark.parametrize(
    "path, message",
    [
        (DICOMDIR_TESTS / "98892003" / "MR2", "3 DICOM series found, expected one"),
        (DICOMDIR_TESTS / "98892003" / "MR700", "different orientations"),
        (DICOMDIR_TESTS / "77654033" / "CT2", "uneven slice spacing: 202.5 mm"),
        (PYDICOM_FILES / "MR_truncated.dcm", "truncated or corrupt pixel data"),
        (DICOMDIR_TESTS, "sub-folders are not searched"),
        (PYDICOM_FILES / "rtplan.dcm", "no DICOM image series found"),
    ],
    ids=["several-series", "localizer", "missing-slices", "truncated", "no-series-here", "no-image"],
)
def test_real_dicom_bad_input_is_named(path, message):
    with pytest.raises(FusionInputError, match=message) as info:
        load(path)
    assert str(path) in str(info.value)


def test_several_series_lists_the_candidates_and_one_can_be_named():
    folder = DICOMDIR_TESTS / "98892003" / "MR2"
    with pytest.raises(FusionInputError) as info:
        load(folder)
    uids = {pydicom.dcmread(p).SeriesInstanceUID for p in folder.iterdir()}
    assert all(uid in str(info.value) for uid in uids) and "img_series_uid" not in str(info.value)
    one = pydicom.dcmread(folder / "15970").SeriesInstanceUID  # the series with a single slice
    img = load(folder, img_series_uid=one)
    assert img.shape == (1, 16, 16, 1) and img.meta["series_instance_uid"] == one


# ------------------------------------------------------------------------------- bad input (phantom copies)


def _copy_series(phantom: Path, tmp_path: Path, folder: str = "MR") -> Path:
    dst = tmp_path / folder
    shutil.copytree(phantom / "dicom" / "sub-000" / folder, dst)
    return dst


def test_missing_slice_is_found(phantom, tmp_path):
    series = _copy_series(phantom, tmp_path)
    (series / "IM0010.dcm").unlink()
    with pytest.raises(
        FusionInputError, match=r"uneven slice spacing: 10 mm between IM0009.dcm and IM0011.dcm.*missing"
    ):
        load(series)


def test_duplicate_slice_is_found(phantom, tmp_path):
    series = _copy_series(phantom, tmp_path)
    ds = pydicom.dcmread(series / "IM0005.dcm")
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(series / "IM0005b.dcm")
    with pytest.raises(FusionInputError, match="two slices at the same position"):
        load(series)


def test_truncated_dicom_file_is_named(phantom, tmp_path):
    series = _copy_series(phantom, tmp_path)
    data = (series / "IM0007.dcm").read_bytes()
    (series / "IM0007.dcm").write_bytes(data[: len(data) - 100])
    with pytest.raises(FusionInputError, match="IM0007.dcm: truncated or corrupt"):
        load(series)


def test_folder_without_dicom_files(tmp_path):
    (tmp_path / "notes.txt").write_text("no DICOM here")
    with pytest.raises(FusionInputError, match="no DICOM image series found"):
        load(tmp_path)


def _nifti(path: Path, data: np.ndarray, affine=None) -> Path:
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), path)
    return path


def test_nifti_bad_input_is_named(phantom, tmp_path):
    vol = np.random.default_rng(0).random((8, 9, 10)).astype(np.float32)
    vol[2, 3, 4] = np.nan
    with pytest.raises(
        FusionInputError, match=r"nan.nii.gz: 1 NaN and 0 inf voxel\(s\), the first at \(x, y, z\) \(2, 3, 4\)"
    ):
        load(_nifti(tmp_path / "nan.nii.gz", vol))
    with pytest.raises(FusionInputError, match=r"4d.nii.gz: 4-D \(3 volumes\) image of shape \(8, 9, 10, 3\)"):
        load(_nifti(tmp_path / "4d.nii.gz", np.zeros((8, 9, 10, 3), np.float32)))
    with pytest.raises(FusionInputError, match="blank.nii: blank volume"):
        load(_nifti(tmp_path / "blank.nii", np.zeros((8, 9, 10), np.float32)))
    data = (phantom / "nifti" / "sub-000" / "mri.nii.gz").read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(FusionInputError, match="cut.nii.gz: truncated or corrupt image data"):
        load(tmp_path / "cut.nii.gz")
    (tmp_path / "text.nii").write_text("not a NIfTI")
    with pytest.raises(FusionInputError, match="text.nii: not a NIfTI file"):
        load(tmp_path / "text.nii")
    with pytest.raises(FileNotFoundError, match="nowhere.nii.gz: missing"):
        load(tmp_path / "nowhere.nii.gz")
    (tmp_path / "picture.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(FusionInputError, match="picture.png: not a volume"):
        load(tmp_path / "picture.png")
    # a single trailing volume is fine: (X, Y, Z, 1) is a 3-D volume
    assert load(_nifti(tmp_path / "one.nii.gz", np.nan_to_num(vol)[..., None])).shape == (1, 8, 9, 10)


def test_inputs_are_never_modified(phantom):
    files = sorted((phantom / "dicom" / "sub-000").rglob("*.dcm")) + sorted((phantom / "nifti").rglob("*.nii.gz"))
    before = [hashlib.sha256(p.read_bytes()).hexdigest() for p in files]
    d = LoadFusionVolumed(["mri", "other"])(
        {"mri": phantom / "dicom" / "sub-000" / "MR", "other": phantom / "nifti" / "sub-000" / "ct.nii.gz"}
    )
    d["modality"] = "CT"
    ScaleIntensityByModalityd()(Orientationd(["mri", "other"], axcodes="PLS", labels=None)(d))
    assert before == [hashlib.sha256(p.read_bytes()).hexdigest() for p in files]


# ------------------------------------------------------------------------------- geometry


def test_non_overlapping_volumes_give_both_boxes():
    # pydicom's CT_small and MR_small: two scans that do not overlap in space
    d = LoadFusionVolumed(["mri", "other"])(
        {"mri": PYDICOM_FILES / "MR_small.dcm", "other": PYDICOM_FILES / "CT_small.dcm"}
    )
    with pytest.raises(FusionInputError) as info:
        CheckOverlapd(["mri", "other"])(d)
    text = str(info.value)
    assert "do not overlap" in text and "MR_small.dcm spans x [" in text and "CT_small.dcm spans x [" in text
    assert "different frames of reference" in text and "RigidRegisterd" in text
    box = world_bounding_box(d["other"].affine, d["other"].shape[1:])
    assert f"[{box[0, 0]:.1f}, {box[1, 0]:.1f}]" in text


def test_overlap_check_passes_the_phantom_and_catches_a_shift(phantom):
    d = LoadFusionVolumed(["mri", "other"])(
        {"mri": phantom / "dicom" / "sub-000" / "MR", "other": phantom / "dicom" / "sub-000" / "PT"}
    )
    assert CheckOverlapd()(d) is not None
    far = d["other"].clone()
    far.affine[2, 3] += 500.0
    with pytest.raises(FusionInputError, match="do not overlap"):
        CheckOverlapd()({"mri": d["mri"], "other": far})
    partial = d["other"].clone()
    partial.affine[2, 3] += 120.0
    # by default (not only when asked): most of the MRI would be fused against zeros
    with pytest.raises(FusionInputError, match="overlap on only .* of the mri volume"):
        CheckOverlapd()({"mri": d["mri"], "other": partial})
    assert CheckOverlapd(min_fraction=0.0)({"mri": d["mri"], "other": partial}) is not None


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def test_resampled_secondary_matches_the_phantom_on_the_mri_grid(phantom):
    # CT (own grid, slices stored top-down, read from DICOM) resampled onto the MRI grid in world
    # coordinates must match the same phantom CT computed directly on the MRI grid
    d = LoadFusionVolumed(["mri", "other"])(
        {
            "mri": phantom / "nifti" / "sub-000" / "mri.nii.gz",
            "other": phantom / "dicom" / "sub-000" / "CT",
            "modality": "CT",
        }
    )
    d = Orientationd(["mri", "other"], axcodes="PLS", labels=None)(d)
    d = ScaleIntensityByModalityd()(d)
    d = ResampleToMatchd("other", key_dst="mri", mode="bilinear", padding_mode="zeros")(d)
    assert d["other"].shape == d["mri"].shape
    np.testing.assert_allclose(d["other"].affine.numpy(), d["mri"].affine.numpy())
    direct = make_volume(make_subject(0, 0), "CT", PROFILES["small"]["MRI"], seed=0)  # (x, y, z) LPS-ordered grid
    direct = nib.Nifti1Image(np.clip(direct / 80.0, 0, 1), PROFILES["small"]["MRI"].nifti_affine())
    ref = Orientationd("x", axcodes="PLS", labels=None)(
        {"x": MetaTensor(torch.from_numpy(direct.get_fdata()[None]).float(), affine=torch.as_tensor(direct.affine))}
    )["x"]
    got, want = d["other"].numpy()[0], ref.numpy()[0]
    assert _correlation(got, want) > 0.9
    error = np.abs(got - want).mean()
    for axis in range(3):  # any shift by one voxel, let alone a flip, fits worse
        for step in (-1, 1):
            assert error < np.abs(got - np.roll(want, step, axis=axis)).mean(), (axis, step)
        assert error < np.abs(got - np.flip(want, axis=axis)).mean()


# ------------------------------------------------------------------------------- intensity and slices


def _meta_volume(array: np.ndarray, modality: str = "") -> MetaTensor:
    return MetaTensor(
        torch.as_tensor(array, dtype=torch.float32)[None], meta={"source_modality": modality, "filename_or_obj": "v"}
    )


def _mri() -> MetaTensor:
    return _meta_volume(np.arange(8.0).reshape(2, 2, 2), "MR")


def test_ct_window_and_whole_volume_percentiles():
    ct = _meta_volume(np.array([-1000, -10, 0, 20, 40, 60, 80, 100, 1500], np.float32).reshape(3, 3, 1), "CT")
    out = ScaleIntensityByModalityd()({"mri": _meta_volume(np.arange(27.0).reshape(3, 3, 3), "MR"), "other": ct})
    np.testing.assert_allclose(out["other"].numpy().ravel(), [0, 0, 0, 0.25, 0.5, 0.75, 1, 1, 1])
    assert out["other"].meta["intensity_scaling"] == "CT: window [0, 80] HU" and out["other"].dtype == torch.float32
    out = ScaleIntensityByModalityd(ct_window=(400, 2000))({"mri": _mri(), "other": ct, "modality": "CT"})
    np.testing.assert_allclose(out["other"].numpy().ravel()[[0, 4, 8]], [0.0, 0.32, 1.0], atol=1e-6)
    # percentiles over the whole volume: a dim slice stays dim, it is not stretched on its own
    pet = np.zeros((20, 20, 4), np.float32)
    pet[..., 0], pet[..., 1:] = 1.0, 100.0
    out = ScaleIntensityByModalityd()({"mri": _mri(), "other": _meta_volume(pet), "modality": "PET"})
    assert float(out["other"][0, :, :, 0].max()) < 0.02 and float(out["other"][0, :, :, 1].min()) == 1.0


def test_modality_is_checked():
    ct = _meta_volume(np.arange(8.0).reshape(2, 2, 2), "CT")
    mri = _mri()
    with pytest.raises(FusionInputError, match="declared PET but its DICOM Modality is CT"):
        ScaleIntensityByModalityd()({"mri": mri, "other": ct, "modality": "PET"})
    with pytest.raises(FusionInputError, match="should be MR but its DICOM Modality is CT"):
        ScaleIntensityByModalityd()({"mri": ct, "other": ct})
    with pytest.raises(FusionInputError, match="modality unknown"):
        ScaleIntensityByModalityd()({"mri": mri, "other": _meta_volume(np.arange(8.0).reshape(2, 2, 2))})


def test_nearly_empty_slices_are_dropped():
    image = torch.zeros(2, 10, 10, 6)
    image[0, :5, :5, 1] = 1.0  # MRI content only
    image[1, :5, :5, 3] = 1.0  # other content only
    image[:, 0, 0, 4] = 1.0  # one pixel: nearly empty in both
    out = DropEmptySlicesd("image", threshold=0.1, min_fraction=0.02)({"image": MetaTensor(image)})["image"]
    assert out.shape == (2, 10, 10, 2) and out.meta["kept_slices"].tolist() == [1, 3]
    assert DropEmptySlicesd(min_fraction=0.005)({"image": MetaTensor(image)})["image"].shape[-1] == 3
    with pytest.raises(FusionInputError, match="every one of 6 slices is nearly empty"):
        DropEmptySlicesd(min_fraction=0.5)({"image": MetaTensor(image)})


# ------------------------------------------------------------------------------- the chain, in JSON

VOLUME_JSON = """
{
  "imports": ["$import torch"],
  "datalist": "<set by the test>",
  "keys": ["mri", "other"],
  "axcodes": "PLS",
  "ct_window": [40, 80],
  "register": false,
  "slices_per_volume": 4,
  "items": {"_target_": "hkafusion_monai.data.load_fusion_datalist", "datalist": "@datalist", "split": "training"},
  "volume": {
    "_target_": "Compose",
    "transforms": [
      {"_target_": "hkafusion_monai.transforms.LoadFusionVolumed", "keys": "@keys"},
      {"_target_": "Orientationd", "keys": "@keys", "axcodes": "@axcodes", "labels": null},
      {"_target_": "hkafusion_monai.transforms.ScaleIntensityByModalityd", "keys": "@keys", "ct_window": "@ct_window"},
      {"_target_": "hkafusion_monai.transforms.RigidRegisterd", "keys": "@keys", "enabled": "@register"},
      {"_target_": "hkafusion_monai.transforms.CheckOverlapd", "keys": "@keys"},
      {"_target_": "ResampleToMatchd", "keys": "other", "key_dst": "mri", "mode": "bilinear", "padding_mode": "zeros"},
      {"_target_": "hkafusion_monai.transforms.StackPaird", "keys": "@keys", "name": "image"}
    ]
  },
  "train": {
    "preprocessing": {
      "_target_": "Compose",
      "transforms": [
        "$@volume",
        {"_target_": "hkafusion_monai.transforms.DropEmptySlicesd", "keys": "image", "threshold": 0.1,
         "min_fraction": 0.02},
        {"_target_": "RandSpatialCropSamplesd", "keys": "image", "roi_size": [-1, -1, 1],
         "num_samples": "@slices_per_volume", "random_size": false},
        {"_target_": "SqueezeDimd", "keys": "image", "dim": 3},
        {"_target_": "RandFlipd", "keys": "image", "prob": 0.5, "spatial_axis": 1},
        {"_target_": "EnsureTyped", "keys": "image", "dtype": "$torch.float32"}
      ]
    },
    "dataset": {"_target_": "CacheDataset", "data": "@items", "transform": "@train#preprocessing", "cache_rate": 1.0,
                "num_workers": 0, "progress": false},
    "dataloader": {"_target_": "DataLoader", "dataset": "@train#dataset", "batch_size": 8, "shuffle": true,
                   "num_workers": 0}
  }
}
"""


@pytest.mark.parametrize("kind", ["dicom_pet", "dicom_ct", "nifti_ct", "nifti_spect"])
def test_json_chain_builds_a_batch_of_two_channel_slices(phantom, kind):
    set_determinism(seed=0)
    config = json.loads(VOLUME_JSON)
    config["datalist"] = str(phantom / "datalists" / f"{kind}.json")
    loader = ConfigParser(config).get_parsed_content("train#dataloader")
    batch = next(iter(loader))
    image = batch["image"]
    assert image.shape == (4, 2, 64, 64) and image.dtype == torch.float32  # 1 training subject x 4 slices
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
    assert float(image.amax(dim=(2, 3)).min()) > 0.3  # content in both channels of every slice
    meta = image.meta
    assert meta["modality"][0] == kind.split("_")[1].upper()
    assert "sub-000" in meta["mri_filename"][0] and "sub-000" in meta["other_filename"][0]
    set_determinism(seed=None)


def test_volume_pair_to_slice_inferer_and_back(phantom):
    # inference: the whole (2, H, W, D) volume through SliceInferer, then back to the MRI file's own grid
    config = json.loads(VOLUME_JSON)
    config["datalist"] = str(phantom / "datalists" / "dicom_pet.json")
    parser = ConfigParser(config)
    item = parser.get_parsed_content("items")[0]
    d = parser.get_parsed_content("volume")(item)
    image = d["image"]
    assert image.shape == (2, 64, 64, 32) and image.meta["modality"] == "PET"
    mri = load(item["mri"])  # as stored: (X, Y, Z) in the file's own axes
    inferer = SliceInferer(roi_size=(64, 64), sw_batch_size=8, spatial_dim=2)
    pred = inferer(image[None], lambda x: x[:, :1])[0]  # a "network" that returns the MRI channel
    d["pred"] = pred.as_tensor()  # a network's plain tensor: RestoreOrientationd takes the metadata from image
    out = RestoreOrientationd("pred", ref_key="image")(d)["pred"]
    assert out.shape == mri.shape
    np.testing.assert_allclose(out.affine.numpy(), mri.affine.numpy(), atol=1e-4)
    scaled = ScaleIntensityByModalityd(["mri"])({"mri": mri})["mri"]
    torch.testing.assert_close(out.as_tensor(), scaled.as_tensor(), atol=1e-5, rtol=0)


def test_stack_pair_takes_volumes(phantom):
    d = LoadFusionVolumed(["mri", "other"])(
        {"mri": phantom / "nifti" / "sub-000" / "mri.nii.gz", "other": phantom / "nifti" / "sub-000" / "spect.nii.gz"}
    )
    with pytest.raises(FusionInputError, match="pair size mismatch"):
        StackPaird()(dict(d))
    d = ResampleToMatchd("other", key_dst="mri")(d)
    image = StackPaird()(d)["image"]
    assert image.shape == (2, 64, 64, 32) and "spect.nii.gz" in image.meta["other_filename"]
