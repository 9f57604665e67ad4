"""Reading label masks through a class scheme (TIFF, PNG or BMP; never JPEG, whose compression changes painted colours)."""

from __future__ import annotations

import numpy as np
import tifffile

from ..classes import ClassScheme
from ..errors import InputError
from .images import _check_file, _is_tiff, _open_tiff, _page_array, _read_pillow


def read_labels(path, scheme: ClassScheme, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a label mask: a colour overlay (palette or RGB TIFF / PNG / BMP, decoded
    through ``scheme``) or an integer image with values 0..K used as they are."""
    path = _check_file(path)
    if _is_tiff(path):
        with _open_tiff(path) as tif:
            page, data = _page_array(path, tif)
            if page.photometric == tifffile.PHOTOMETRIC.PALETTE and page.colormap is not None:
                data = (page.colormap >> 8).astype(np.uint8).T[data]  # colours, decoded below
    else:
        data, lossy = _read_pillow(path)
        if lossy:
            raise InputError(
                f"{path} is a JPEG: its compression changes the painted colours and values, so it "
                "cannot hold labels; save the labels as TIFF or PNG"
            )
    if data.ndim == 3 and data.shape[-1] in (3, 4) and data.dtype == np.uint8:
        labels = scheme.decode_colors(data[..., :3])
    elif data.ndim == 2 and data.dtype.kind in "iub":
        scheme.check_labels(data, what=str(path))
        labels = data.astype(np.uint8)
    else:
        raise InputError(
            f"{path} has shape {data.shape} and type {data.dtype}; labels must be a colour "
            "overlay (palette or RGB) or a 2-D integer image with values 0..K"
        )
    if shape is not None and labels.shape != tuple(shape):
        raise InputError(
            f"{path} is {labels.shape[1]} x {labels.shape[0]} pixels but its image is "
            f"{shape[1]} x {shape[0]}; labels and image must have the same size"
        )
    return labels
