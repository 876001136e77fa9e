"""Geometry of volume pairs: the physical-overlap check, and the way back to the MRI's own voxel grid.

The volume chain puts both volumes in one orientation with MONAI's ``Orientationd`` and the secondary
volume onto the MRI grid with ``ResampleToMatchd`` (world coordinates, from the two affines); these two
transforms are what MONAI has no equivalent for:

- :class:`CheckOverlapd` refuses a pair whose volumes do not overlap in world coordinates (resampling
  would silently give an empty secondary volume) and gives both bounding boxes.
- :class:`RestoreOrientationd` turns a result on the oriented MRI grid (e.g. the fused volume from
  ``SliceInferer``) back to the axes of the MRI as stored in its file, with its original affine.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable, Mapping

import nibabel as nib
import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import MapTransform, Orientation
from monai.utils import MetaKeys, convert_data_type

from hkafusion_monai.utils import RefusedPairError

__all__ = ["CheckOverlapd", "RestoreOrientationd", "axcodes_affine", "world_bounding_box"]


def _affine(img: NdarrayOrTensor) -> np.ndarray:
    affine = getattr(img, "affine", None)
    if affine is None:
        raise ValueError("a MetaTensor with an affine is needed (load with LoadFusionVolumed)")
    return convert_data_type(affine, np.ndarray, dtype=np.float64)[0]


def axcodes_affine(axcodes: str) -> np.ndarray:
    """The ``(4, 4)`` RAS affine of unit spacing whose voxel axes point along ``axcodes`` (e.g. ``"PLS"``: axis 0
    towards posterior, 1 towards left, 2 towards superior), so that ``Orientation(axcodes)`` leaves a volume
    with this affine as it is."""
    affine = np.zeros((4, 4))
    affine[3, 3] = 1.0
    for voxel_axis, (world_axis, sign) in enumerate(nib.orientations.axcodes2ornt(tuple(axcodes))):
        affine[int(world_axis), voxel_axis] = sign
    return affine


def world_bounding_box(affine: NdarrayOrTensor, spatial_shape: tuple[int, ...]) -> np.ndarray:
    """The axis-aligned world box ``[[x0, y0, z0], [x1, y1, z1]]`` (mm) covered by a voxel grid.

    The box holds the whole voxels (index -0.5 to n - 0.5 on each axis), so a one-slice volume has the
    thickness of one slice. For an oblique grid it is the box around the rotated grid.

    Args:
        affine: ``(4, 4)`` voxel-to-world matrix.
        spatial_shape: ``(X, Y, Z)``.
    """
    affine = convert_data_type(affine, np.ndarray, dtype=np.float64)[0]
    shape = np.asarray(spatial_shape, dtype=np.float64)
    corners = np.array(np.meshgrid(*[[-0.5, n - 0.5] for n in shape], indexing="ij")).reshape(len(shape), -1)
    world = affine[:3, : len(shape)] @ corners + affine[:3, 3:4]
    return np.stack([world.min(axis=1), world.max(axis=1)])


def _box_text(box: np.ndarray, space: str) -> str:
    return (
        ", ".join(f"{a} [{lo:.1f}, {hi:.1f}]" for a, lo, hi in zip("xyz", box[0], box[1], strict=True)) + f" mm {space}"
    )


class CheckOverlapd(MapTransform):
    """Raise an error when two volumes do not overlap in world coordinates; pass the data on unchanged.

    The test compares the axis-aligned world boxes of the two voxel grids (:func:`world_bounding_box`):
    the pair fails when their intersection is empty or covers less than ``min_fraction`` of the *first*
    (MRI) box. The result lies on the MRI grid, so MRI voxels outside the other volume would be fused against
    zeros; by default at least half of the MRI's box must be covered.
    The error gives both boxes, both file names and, when they differ, both ``FrameOfReferenceUID`` s
    (volumes from different frames of reference need registration: :class:`RigidRegisterd`).

    Args:
        keys: exactly two keys, e.g. ``["mri", "other"]``; each a ``(C, X, Y, Z)`` ``MetaTensor``.
        min_fraction: the least overlap, as a fraction of the first (MRI) box's volume (0: any overlap).
    """

    def __init__(self, keys: KeysCollection = ("mri", "other"), min_fraction: float = 0.5) -> None:
        super().__init__(keys, allow_missing_keys=False)
        if len(self.keys) != 2:
            raise ValueError(f"CheckOverlapd needs exactly two keys, got {self.keys}.")
        self.min_fraction = min_fraction

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        (k0, k1), imgs = self.keys, [d[k] for k in self.keys]
        boxes = [world_bounding_box(_affine(img), tuple(img.shape[1:])) for img in imgs]
        low, high = np.maximum(boxes[0][0], boxes[1][0]), np.minimum(boxes[0][1], boxes[1][1])
        inter = float(np.prod(np.clip(high - low, 0, None)))
        first = float(np.prod(boxes[0][1] - boxes[0][0]))
        fraction = inter / first if first > 0 else 0.0
        if inter <= 0 or fraction < self.min_fraction:
            metas = [getattr(img, "meta", None) or {} for img in imgs]
            space = str(metas[0].get(MetaKeys.SPACE, "RAS"))
            what = (
                "do not overlap"
                if inter <= 0
                else f"overlap on only {100 * fraction:.2g}% of the {k0} volume (< {100 * self.min_fraction:g}%; "
                f"the rest of {k0} would be fused against zeros)"
            )
            lines = [
                f"{k}: {m.get('filename_or_obj', '?')} spans {_box_text(b, space)}"
                for k, m, b in zip((k0, k1), metas, boxes, strict=True)
            ]
            frames = [str(m.get("frame_of_reference_uid", "")) for m in metas]
            hint = ""
            if all(frames) and frames[0] != frames[1]:
                hint = (
                    f"\nthey have different frames of reference ({frames[0]} vs {frames[1]}); rigid registration "
                    "(RigidRegisterd, or 'register': true in the datalist item) may align them"
                )
            raise RefusedPairError(
                f"volumes {what} in world coordinates: " + "; ".join(lines) + hint.replace("\n", "; ")
            )
        return d


class RestoreOrientationd(MapTransform):
    """Put a volume on an oriented grid back into the axes of the source file, with its original affine.

    The volume chain reorients the MRI (``Orientationd``, e.g. to ``PLS``) before stacking; a result on
    that grid, such as the fused ``(1, H, W, D)`` volume from ``SliceInferer``, goes back to the MRI's
    stored voxel order with ``Orientation`` and the axis codes of ``meta["original_affine"]``. Flips and
    axis permutations are exact (no interpolation). ``Invertd`` cannot do this here: it needs the very
    transform instances that produced the image, and the stacked ``image`` was not made by them.

    Args:
        keys: keys of the volumes to restore, e.g. ``"pred"``; ``(C, H, W, D)``.
        ref_key: key of a ``MetaTensor`` whose metadata (``affine``, ``original_affine``, ...) is used when
            a volume carries none (a plain tensor from a network), e.g. ``"image"``.
        allow_missing_keys: don't raise when a key is absent.

    Raises:
        ValueError: the volume's grid is not a reorientation of the original one (it was resampled).
    """

    def __init__(self, keys: KeysCollection, ref_key: str | None = "image", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.ref_key = ref_key

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        ref = d.get(self.ref_key) if self.ref_key is not None else None
        for key in self.key_iterator(d):
            img = d[key]
            if not isinstance(img, MetaTensor) or MetaKeys.ORIGINAL_AFFINE not in img.meta:
                if not isinstance(ref, MetaTensor):
                    raise ValueError(f"RestoreOrientationd: {key} has no original_affine and no ref_key image")
                img = MetaTensor(torch.as_tensor(img), meta=copy.deepcopy(ref.meta))
                if img.shape[1:] != ref.shape[1:]:
                    sizes = f"{key} {tuple(img.shape)} and {self.ref_key} {tuple(ref.shape)}"
                    raise ValueError(f"RestoreOrientationd: {sizes} differ in size")
            original = convert_data_type(img.meta[MetaKeys.ORIGINAL_AFFINE], np.ndarray, dtype=np.float64)[0]
            axcodes = "".join(nib.aff2axcodes(original))
            out = Orientation(axcodes=axcodes, labels=None)(img)
            if not np.allclose(_affine(out), original, atol=1e-3):
                name = getattr(out, "meta", {}).get("filename_or_obj", "?")
                raise ValueError(
                    f"RestoreOrientationd: {key} is not on a reoriented copy of its source grid "
                    f"({name}); affine {np.round(_affine(out), 3).tolist()} "
                    f"vs original {np.round(original, 3).tolist()}"
                )
            d[key] = out
        return d
