"""Training data: image/label pairs from files or folders, conditioned for the model (normalised, resampled to the run's pixel size)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io import IMAGE_SUFFIXES, SEMImage, resolve_data_bar
from ..models.info import ModelInfo
from .sampler import TrainImage


def prepare_items(images: list[SEMImage], labels: list[np.ndarray], info: ModelInfo,
                  data_bar: int | None = None) -> list[TrainImage]:
    """Normalise, drop the data bar and resample to ``info.pixel_size_nm``."""
    from ..condition import resize

    rows_above_bar = [img.data.shape[0] - resolve_data_bar(img.data, data_bar) for img in images]
    if info.normalization == "median" and info.contrast is None and images:
        from ..models.info import contrast_of

        info.contrast = float(np.mean([contrast_of(img.data[:rows]) for img, rows in zip(images, rows_above_bar)]))
    items = []
    for img, lab, rows in zip(images, labels, rows_above_bar):
        if img.data.shape != lab.shape:
            raise InputError(f"{img.path}: image {img.data.shape} and labels {lab.shape} differ in size")
        info.scheme.check_labels(lab, what=f"labels of {img.stem}")
        x = info.normalize(img.data[:rows]).astype(np.float32)
        y = lab[:rows].astype(np.uint8)
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
