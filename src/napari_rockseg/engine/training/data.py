"""Training data: image/label pairs from files or folders, conditioned for the model
(normalised, resampled to the run's pixel size, which :func:`plan_pixel_size` settles)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io import IMAGE_SUFFIXES, SEMImage, resolve_data_bar
from ..models.info import ModelInfo
from .sampler import TrainImage


def prepare_items(
    images: list[SEMImage], labels: list[np.ndarray], info: ModelInfo, data_bar: int | None = None
) -> list[TrainImage]:
    """Normalise, drop the data bar and resample to ``info.pixel_size_nm``.  Pixels outside
    an image's field of view (:func:`..fov.outside_view`: a CT disc's constant corners) are
    left out of its intensity statistics and unlabelled, as prediction does."""
    from ..condition import resize
    from ..fov import in_view, outside_view

    rows_above_bar = [img.data.shape[0] - resolve_data_bar(img.data, data_bar) for img in images]
    for img, lab in zip(images, labels):
        if img.data.shape != lab.shape:
            raise InputError(
                f"{img.path}: image {img.data.shape} and labels {lab.shape} differ in size"
            )
    outside = [outside_view(img.data[:rows]) for img, rows in zip(images, rows_above_bar)]
    views = [
        in_view(img.data[:rows], out) for img, rows, out in zip(images, rows_above_bar, outside)
    ]
    if info.normalization == "median" and info.contrast is None and images:
        from ..models.info import contrast_of

        info.contrast = float(np.mean([contrast_of(view) for view in views]))
    items = []
    for img, lab, rows, out, view in zip(images, labels, rows_above_bar, outside, views):
        info.scheme.check_labels(lab, what=f"labels of {img.stem}")
        stats = None if out is None else info.stats(view)
        x = info.normalize(img.data[:rows], stats).astype(np.float32)
        y = lab[:rows].astype(np.uint8)
        if out is not None:
            y[out] = 0
        if info.pixel_size_nm and img.pixel_size_nm:
            f = img.pixel_size_nm / info.pixel_size_nm
            if abs(f - 1) > 0.02:
                shape = (int(round(rows * f)), int(round(x.shape[1] * f)))
                x, y = resize(x, shape, 1), resize(y, shape, 0)
        items.append(TrainImage(x, y))
    if info.normalization == "median" and info.texture is None and items:
        from ..condition import texture

        info.texture = float(np.mean([texture(it.image) for it in items]))
    return items


#: bytes per pixel of a resampled training image: float32 result, scikit-image's float64
#: intermediate, uint8 labels and their float64 intermediate
RESAMPLE_BYTES = 4 + 8 + 1 + 8
#: training images resampled by more than this (either way) get a note
FAR_FACTOR = 4.0


def plan_pixel_size(
    images: list[SEMImage], requested: float | None
) -> tuple[float | None, list[str]]:
    """The pixel size (nm) a run trains at and records, with notes for the user.

    ``requested`` None: the images' own, their median where they differ; 0: every image as it
    is (the model records a pixel size only where they all share one); a number: that one.
    Images that record no pixel size are used as they are.  Each resampling is checked
    against the memory before anything is allocated (condition.check_resample_memory)."""
    from ..condition import check_resample_memory

    known = [img.pixel_size_nm for img in images if img.pixel_size_nm]
    unknown = [img.stem for img in images if not img.pixel_size_nm]
    same = bool(known) and max(known) / min(known) <= 1.02
    if requested == 0:
        return (float(np.median(known)) if same and not unknown else None), []
    if not known:
        asked = f" to {requested:g} nm" if requested else ""
        return None, [
            f"the training images record no pixel size: they are used as they are (not "
            f"resampled{asked}), and the model records none, so prediction will not "
            f"resample images to it"
        ]
    target = float(requested) if requested else float(np.median(known))
    notes = []
    if requested is None and not same:
        notes.append(
            f"the training images have pixel sizes from {min(known):.4g} to "
            f"{max(known):.4g} nm: they are resampled to their median, {target:.4g} nm, "
            f"which the model records (--pixel-size chooses another)"
        )
    if unknown:
        names = ", ".join(unknown[:3]) + (", ..." if len(unknown) > 3 else "")
        notes.append(
            f"{len(unknown)} training image(s) ({names}) record no pixel size: they are "
            f"used as they are, as if at {target:.4g} nm"
        )
    for img in images:
        if not img.pixel_size_nm:
            continue
        f = img.pixel_size_nm / target
        check_resample_memory(
            img.data.shape,
            f,
            RESAMPLE_BYTES,
            f"training image {img.stem}",
            "train at the images' own pixel size (leave out --pixel-size, or 0: "
            "as they are) or give a pixel size closer to theirs",
        )
        if max(f, 1 / f) > FAR_FACTOR:
            notes.append(
                f"training image {img.stem} is resampled {f:.3g}x "
                f"({img.pixel_size_nm:.4g} -> {target:.4g} nm per pixel)"
            )
    return target, notes


def load_training_pairs(image_paths, label_paths, scheme):
    """Read matching image and label files."""
    from ..io import read_image, read_labels

    if len(image_paths) != len(label_paths):
        raise InputError(f"{len(image_paths)} images but {len(label_paths)} label files")
    images, labels = [], []
    for ip, lp in zip(image_paths, label_paths):
        img = read_image(ip)
        images.append(img)
        labels.append(read_labels(lp, scheme, img.data.shape))
    return images, labels


def pairs_in_dir(data_dir) -> tuple[list[Path], list[Path]]:
    """``DIR/images/*`` and ``DIR/labels/*`` with matching file names."""
    d = Path(data_dir)
    if not d.is_dir():
        raise InputError(f"{d} is not a folder")
    idir, ldir = d / "images", d / "labels"
    if not idir.is_dir() or not ldir.is_dir():
        raise InputError(f"{d} must hold the folders images/ and labels/ with matching file names")
    images = sorted(p for p in idir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise InputError(f"{idir} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    labels = []
    for p in images:
        lp = ldir / p.name
        if not lp.exists():
            cands = [q for q in ldir.iterdir() if q.stem == p.stem]
            if not cands:
                raise InputError(f"no label file for {p.name} in {ldir}")
            lp = cands[0]
        labels.append(lp)
    return images, labels
