"""Training data from a volume: the 2-D slices, along any axis, that hold painted labels.

Labels painted on a few slices of a 3-D labels layer (0 = unpainted, ignored) become
2-D training pairs with their in-plane pixel size, so the 2-D trainer needs nothing new.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..io import SEMImage, Volume

AXES = ("z", "y", "x")
#: in-plane pixels whose sizes differ by more than this (relative) are resampled square
_SQUARE_TOL = 0.1


def training_slices(volume: Volume, labels_volume, axes=AXES) -> tuple[list, list]:
    """(images, labels): the planes of ``volume`` along ``axes`` that hold painted
    (non-zero) voxels of ``labels_volume`` (a Volume or a (z, y, x) integer array).

    A plane painted in xy also crosses every xz and yz plane in one row; so that those
    rows do not each become a training image, planes are taken greedily, the one with
    the most painted voxels not yet in a taken plane first, until every painted voxel
    is in one.  Each image carries its in-plane pixel size (nm); a plane with
    anisotropic pixels (e.g. xz of a FIB-SEM stack) is resampled to square pixels at the
    finer size (grey linear, labels nearest) so the model sees one scale."""
    lab = labels_volume.data if isinstance(labels_volume, Volume) else labels_volume
    lab = np.asarray(lab)
    if lab.shape != volume.shape:
        raise InputError(
            f"the labels volume has shape {lab.shape} but the image volume "
            f"{volume.shape}; paint labels on the volume itself"
        )
    unknown = [a for a in axes if a not in AXES]
    if unknown or not axes:
        raise InputError(f"axes must be a selection of {AXES}, not {tuple(axes)!r}")
    if lab.dtype.kind not in "iub":
        raise InputError(f"labels must be integers (0 = unpainted), not {lab.dtype}")
    left = lab > 0
    if not left.any():
        raise InputError("the labels volume has no painted voxel; paint a few slices first")
    images, labels = [], []
    for axis, index in _painted_planes(left, [AXES.index(a) for a in axes]):
        where = (slice(None),) * axis + (index,)
        grey = np.asarray(volume.data[where])
        plane_labels = lab[where].astype(np.uint8, copy=False)
        sizes = [s for ax, s in enumerate(volume.voxel_size_nm) if ax != axis]
        grey, plane_labels, pixel = _square(grey, plane_labels, sizes)
        meta = {
            "volume": str(volume.path) if volume.path else None,
            "axis": AXES[axis],
            "index": int(index),
        }
        images.append(SEMImage(grey, pixel, volume.path, meta))
        labels.append(plane_labels)
    return images, labels


def _painted_planes(painted: np.ndarray, axes: list[int]) -> list[tuple[int, int]]:
    """Greedy cover of the painted voxels by planes (axis, index) of the given axes."""
    left = painted.copy()
    taken = []
    while left.any():
        best = None
        for axis in axes:
            others = tuple(a for a in range(3) if a != axis)
            counts = left.sum(axis=others)
            i = int(np.argmax(counts))
            if counts[i] and (best is None or counts[i] > best[2]):
                best = (axis, i, int(counts[i]))
        if best is None:  # painted voxels left only in planes of axes not asked for
            break
        axis, i, _ = best
        left[(slice(None),) * axis + (i,)] = False
        taken.append((axis, i))
    return sorted(taken)


def _square(grey, labels, sizes):
    """Resample a plane with non-square pixels (sizes (rows, cols) nm) to square ones."""
    if None in sizes:
        known = [s for s in sizes if s is not None]
        return grey, labels, known[0] if known else None
    fine = min(sizes)
    if max(sizes) / fine - 1.0 <= _SQUARE_TOL:
        return grey, labels, float(np.mean(sizes))
    from skimage.transform import resize

    shape = tuple(max(1, int(round(n * s / fine))) for n, s in zip(grey.shape, sizes))
    grey = resize(
        grey.astype(np.float32), shape, order=1, preserve_range=True, anti_aliasing=False
    ).astype(grey.dtype)
    labels = resize(labels, shape, order=0, preserve_range=True, anti_aliasing=False).astype(
        np.uint8
    )
    return grey, labels, float(fine)


def load_pairs(
    image_paths,
    label_paths,
    scheme,
    pixel_size_nm: float | None = None,
    voxel_depth_nm: float | None = None,
) -> tuple[list, list]:
    """Matching image and label files -> (images, labels); a pair whose image is a volume
    (``io.is_volume``) gives its painted slices (:func:`training_slices`), a 2-D pair
    itself (``data.load_training_pairs``)."""
    from ..io import is_volume, read_label_volume, read_volume
    from .data import load_training_pairs

    if len(image_paths) != len(label_paths):
        raise InputError(f"{len(image_paths)} images but {len(label_paths)} label files")
    images, labels = [], []
    for ip, lp in zip(image_paths, label_paths):
        if is_volume(ip):
            vol = read_volume(ip, pixel_size_nm, voxel_depth_nm, lazy=False)
            lab = read_label_volume(lp, scheme).data  # 0/255 or 16-bit masks decoded
            more = training_slices(vol, lab)
        else:
            more = load_training_pairs([ip], [lp], scheme)
        images += more[0]
        labels += more[1]
    return images, labels
