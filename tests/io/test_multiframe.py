"""Multi-frame DICOM in: NM SPECT reconstructions and enhanced (legacy converted) MR, CT and PET images.

Geometry is checked against SimpleITK (GDCM) and against the phantom's NIfTI of the same volume; intensity
against the NIfTI (the real-world value mapping applied). The MRI-SPECT phantom runs from DICOM through
``load_fuser(...).fuse_volumes`` and the bundle's ``inference.json``, with the NIfTI path's geometry; the
Deploy application's run is in ``tests/integration/test_deploy.py``.
"""

from __future__ import annotations

import copy
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from monai.transforms import Orientationd

from hkafusion_monai.inference import load_fuser
from hkafusion_monai.io.dicom import (
    multiframe_geometry,
    order_series,
    scan_dicom,
)
from hkafusion_monai.transforms.volume import LoadFusionVolumed
from hkafusion_monai.utils import FusionInputError
from tests.helpers import BUNDLE, INFERENCE_JSON, random_checkpoint


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_checkpoint(tmp_path_factory)


def _nm(phantom: Path, subject: str = "sub-000") -> Path:
    (path,) = (phantom / "dicom" / subject / "NM").iterdir()
    return path


def _load(**paths) -> dict:
    return LoadFusionVolumed(list(paths))({k: str(v) for k, v in paths.items()})


def _oblique(ds: pydicom.Dataset, spacing_sign: float) -> pydicom.Dataset:
    """The NM object turned 20 and 10 degrees, its frames running with (+1) or against (-1) the normal."""
    d = copy.deepcopy(ds)
    a, b = np.deg2rad(20.0), np.deg2rad(10.0)
    row = [np.cos(a), np.sin(a), 0.0]
    col = [-np.sin(a) * np.cos(b), np.cos(a) * np.cos(b), np.sin(b)]
    d.DetectorInformationSequence[0].ImageOrientationPatient = [f"{v:.8f}" for v in (*row, *col)]
    d.SpacingBetweenSlices = f"{spacing_sign * float(ds.SpacingBetweenSlices):g}"
    return d


@pytest.mark.parametrize("spacing_sign", [1.0, -1.0], ids=["frames-along-normal", "frames-against-normal"])
def test_nm_geometry_equals_simpleitk(phantom, tmp_path, spacing_sign):
    """Every voxel centre of an oblique NM reconstruction lies where GDCM puts it (frames in either
    direction along the normal; the reader stacks them in spatial order)."""
    import SimpleITK as sitk

    path = tmp_path / "NM" / "nm.dcm"
    path.parent.mkdir()
    _oblique(pydicom.dcmread(_nm(phantom)), spacing_sign).save_as(path)
    image = sitk.ReadImage(str(path))
    vol = _load(v=path.parent)["v"]
    ras_to_lps = np.diag([-1.0, -1.0, 1.0, 1.0])
    affine = ras_to_lps @ vol.affine.numpy()  # voxel (column, row, k) -> LPS
    geometry = multiframe_geometry(pydicom.dcmread(path, stop_before_pixels=True))
    n_cols, n_rows, n_frames = image.GetSize()
    assert tuple(vol.shape[1:]) == (n_cols, n_rows, n_frames)
    for k, frame in enumerate(geometry.order):
        for i, j in ((0, 0), (n_cols - 1, 0), (0, n_rows - 1), (n_cols - 1, n_rows - 1)):
            ours = affine @ np.array([i, j, k, 1.0])
            theirs = image.TransformIndexToPhysicalPoint((i, j, int(frame)))
            np.testing.assert_allclose(ours[:3], theirs, atol=1e-3)
    # and the voxels: GDCM gives the stored values in file order; ours are rescaled, in spatial order
    stored = sitk.GetArrayFromImage(image)  # (frames, rows, columns)
    slope = float(pydicom.dcmread(path).RealWorldValueMappingSequence[0].RealWorldValueSlope)
    expected = stored[geometry.order].transpose(2, 1, 0) * slope
    np.testing.assert_allclose(vol.as_tensor().numpy()[0], expected, rtol=1e-5, atol=1e-4)


def test_nm_equals_the_nifti_of_the_same_phantom(phantom):
    d = _load(dicom=phantom / "dicom" / "sub-001" / "NM", nifti=phantom / "nifti" / "sub-001" / "spect.nii.gz")
    meta = d["dicom"].meta
    assert meta["source_modality"] == "NM" and meta["source_units"] == "{counts}"
    assert meta["patient_id"] and meta["frame_of_reference_uid"]
    np.testing.assert_allclose(d["dicom"].affine.numpy(), d["nifti"].affine.numpy(), atol=1e-4)
    scale = float(d["nifti"].max())
    torch.testing.assert_close(d["dicom"].as_tensor(), d["nifti"].as_tensor(), rtol=0, atol=scale * 1e-4)


def test_nm_rescale_variants_and_refusals(phantom, tmp_path):
    ds = pydicom.dcmread(_nm(phantom))
    reference = _load(v=_nm(phantom).parent)["v"].as_tensor()
    folder = tmp_path / "NM"
    folder.mkdir()

    def read(d: pydicom.Dataset) -> torch.Tensor:
        d.save_as(folder / "nm.dcm")
        return _load(v=folder)["v"].as_tensor()

    # a Rescale Slope instead of the real-world value mapping (what some systems write)
    vendor = copy.deepcopy(ds)
    slope = vendor.RealWorldValueMappingSequence[0].RealWorldValueSlope
    del vendor.RealWorldValueMappingSequence
    vendor.RescaleSlope, vendor.RescaleIntercept = f"{slope:.10g}", "0"
    torch.testing.assert_close(read(vendor), reference, rtol=1e-6, atol=1e-5)
    # no mapping at all: the stored counts
    raw = copy.deepcopy(ds)
    del raw.RealWorldValueMappingSequence
    torch.testing.assert_close(read(raw), torch.as_tensor(ds.pixel_array, dtype=torch.float32).permute(2, 1, 0)[None])

    planar = copy.deepcopy(ds)
    planar.ImageType = ["ORIGINAL", "PRIMARY", "STATIC", "EMISSION"]
    with pytest.raises(FusionInputError, match=r"nm.dcm: NM image of ImageType .*STATIC.* RECON TOMO"):
        read(planar)
    windows = copy.deepcopy(ds)
    windows.EnergyWindowVector = [1, 2] * (ds.NumberOfFrames // 2)
    with pytest.raises(FusionInputError, match="2 energy windows"):
        read(windows)
    no_place = copy.deepcopy(ds)
    del no_place.DetectorInformationSequence[0].ImagePositionPatient
    with pytest.raises(FusionInputError, match="no valid ImagePositionPatient"):
        read(no_place)


@pytest.mark.parametrize("folder", ["MR", "CT", "PT"])
def test_enhanced_multiframe_equals_the_single_frame_series(phantom, tmp_path, folder):
    """The legacy converted enhanced MR, CT and PET images (highdicom) of a phantom series read as the series
    itself: the functional groups' geometry and rescale."""
    import highdicom

    converters = {
        "MR": highdicom.legacy.LegacyConvertedEnhancedMRImage,
        "CT": highdicom.legacy.LegacyConvertedEnhancedCTImage,
        "PT": highdicom.legacy.LegacyConvertedEnhancedPETImage,
    }
    source = phantom / "dicom" / "sub-000" / folder
    frames = [pydicom.dcmread(f) for f in sorted(source.glob("*.dcm"))]
    enhanced = converters[folder](
        frames,
        series_instance_uid=highdicom.UID(),
        series_number=20,
        sop_instance_uid=highdicom.UID(),
        instance_number=1,
    )
    out = tmp_path / "enhanced"
    out.mkdir()
    enhanced.save_as(out / "E0001.dcm")
    (series,) = scan_dicom(out)
    files, step = order_series(series)
    assert files == [out / "E0001.dcm"] and np.linalg.norm(step) > 0
    d = Orientationd(["a", "b"], axcodes="PLS", labels=None)(_load(a=out, b=source))
    assert d["a"].shape == d["b"].shape
    np.testing.assert_allclose(d["a"].affine.numpy(), d["b"].affine.numpy(), atol=1e-4)
    torch.testing.assert_close(d["a"].as_tensor(), d["b"].as_tensor())


def test_several_multiframe_files_in_one_series_are_refused(phantom, tmp_path):
    ds = pydicom.dcmread(_nm(phantom))
    for i in (1, 2):
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
        ds.save_as(tmp_path / f"nm{i}.dcm")
    with pytest.raises(FusionInputError, match="2 multi-frame image"):
        _load(v=tmp_path)


def test_mri_spect_from_dicom_equals_the_nifti_path(phantom, ckpt):
    """``load_fuser(...).fuse_volumes`` on the DICOM MR and NM gives the NIfTI pair's result, on one grid."""
    fuser = load_fuser(weights=ckpt, task="mri_spect", device="cpu")
    subject = "sub-002"
    dicom = _load(mri=phantom / "dicom" / subject / "MR", other=phantom / "dicom" / subject / "NM")
    nifti = _load(mri=phantom / "nifti" / subject / "mri.nii.gz", other=phantom / "nifti" / subject / "spect.nii.gz")
    a = fuser.fuse_volumes(dicom["mri"], dicom["other"], modality="SPECT")
    b = fuser.fuse_volumes(nifti["mri"], nifti["other"], modality="SPECT")
    # the DICOM MR and the NIfTI store their voxels in different orders: compare on one orientation
    d = Orientationd(["a", "b"], axcodes="RAS", labels=None)({"a": a, "b": b})
    np.testing.assert_allclose(d["a"].affine.numpy(), d["b"].affine.numpy(), atol=1e-4)
    assert float((d["a"].as_tensor() - d["b"].as_tensor()).abs().max()) < 2e-3  # the NIfTI's int16 SPECT
    assert float(a.max() - a.min()) > 0.01


def test_mri_spect_from_dicom_through_inference_json(phantom, ckpt, tmp_path):
    """The bundle's inference workflow on the DICOM MR and NM series writes a derived series on the MRI grid
    that references the NM object, with the pixels of the NIfTI pair's output."""
    from monai.bundle import run

    subject = "sub-000"
    dicom = (phantom / "dicom" / subject / "MR", phantom / "dicom" / subject / "NM")
    nifti = (phantom / "nifti" / subject / "mri.nii.gz", phantom / "nifti" / subject / "spect.nii.gz")
    for (mri, other), fmt in ((dicom, "dicom"), (nifti, "auto")):
        run(
            "inference",
            config_file=str(INFERENCE_JSON),
            bundle_root=str(BUNDLE),
            output_dir=str(tmp_path / fmt),
            ckpt_path=str(ckpt),
            device="$torch.device('cpu')",
            progress=False,
            task="mri_spect",
            mri=str(mri),
            other=str(other),
            output_format=fmt,
        )
    (series,) = [
        p for p in (tmp_path / "dicom").iterdir() if p.is_dir() and p.name != "mlruns"
    ]  # not the run's artifacts
    ds = pydicom.dcmread(sorted(series.glob("MR_*.dcm"))[0], stop_before_pixels=True)
    nm = pydicom.dcmread(_nm(phantom), stop_before_pixels=True)
    assert "MR+NM" in ds.SeriesDescription
    assert nm.SeriesInstanceUID in {item.SeriesInstanceUID for item in ds.ReferencedSeriesSequence}
    fused, mri = _load(v=series)["v"], _load(v=dicom[0])["v"]
    np.testing.assert_allclose(fused.affine.numpy(), mri.affine.numpy(), atol=1e-4)
    (written,) = (tmp_path / "auto").glob("*_fused.nii.gz")
    a = Orientationd("v", axcodes="RAS", labels=None)({"v": fused})["v"]
    b = nib.as_closest_canonical(nib.load(written))
    np.testing.assert_allclose(a.affine.numpy(), b.affine, atol=1e-4)
    assert np.abs(a.as_tensor().numpy()[0] / 65535.0 - b.get_fdata()).max() < 2e-3  # the NIfTI's int16 SPECT
