"""napari reader: SEM images (with their physical scale) and label TIFFs (with class colours)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from .engine import io
from .engine.classes import SHALE
from .engine.errors import RockSegError


def looks_like_labels(path) -> bool:
    """Not a microscope image (no SEM metadata) and either a palette TIFF with
    colour entries (an annotation overlay) or a small integer image holding
    only a few values (an integer label mask)."""
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            if tif.is_sem or page.photometric == tifffile.PHOTOMETRIC.RGB:
                return False
            if page.photometric == tifffile.PHOTOMETRIC.PALETTE and page.colormap is not None:
                cm = page.colormap
                return not ((cm[0] == cm[1]).all() and (cm[1] == cm[2]).all())
            if page.dtype is None or page.dtype.kind not in "iu" or len(page.shape) != 2:
                return False
            data = page.asarray()
            return int(data.max()) <= 64 and np.unique(data[:: 4, :: 4]).size <= 32
    except Exception:
        return False


def get_reader(path):
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    if Path(path).suffix.lower() not in (".tif", ".tiff"):
        return None
    return read


def read(path):
    from ._layers import image_kwargs, labels_kwargs

    paths = path if isinstance(path, list) else [path]
    layers = []
    for p in paths:
        try:
            if looks_like_labels(p):
                labels = io.read_labels(p, SHALE)
                layers.append((labels, labels_kwargs(SHALE, Path(p).stem), "labels"))
            else:
                image = io.read_image(p)
                layers.append((image.data, image_kwargs(image, Path(p).stem), "image"))
        except RockSegError as exc:
            raise ValueError(str(exc)) from None
    return layers
