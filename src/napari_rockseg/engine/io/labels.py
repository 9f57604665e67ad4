"""Reading label masks through a class scheme (TIFF, PNG or BMP; never JPEG, whose
compression changes painted colours and values).

Colour entries decode colour overlays (RGB or palette colours); value entries
decode integer masks of any width (palette indices included), so grey 0/255
masks, 16-bit masks and masks where 0 is a class all read through a scheme.
A plain integer mask with values 0..K needs no scheme form at all."""

from __future__ import annotations

import numpy as np
import tifffile

from ..classes import ClassScheme
from ..errors import InputError, SchemeError
from .images import _check_file, _is_tiff, _open_tiff, _page_array, _read_pillow


def _read_mask(path, by_value: bool) -> np.ndarray:
    """Raw mask pixels: palette images as indices (value schemes) or colours."""
    if _is_tiff(path):
        with _open_tiff(path) as tif:
            page, data = _page_array(path, tif)
            if (
                page.photometric == tifffile.PHOTOMETRIC.RGB
                and data.ndim == 3
                and data.shape[0] in (3, 4)
                and data.shape[-1] not in (3, 4)
            ):
                data = np.moveaxis(data, 0, -1)  # RGB stored as separate planes
            palette = page.photometric == tifffile.PHOTOMETRIC.PALETTE and page.colormap is not None
            if palette and not by_value and data.ndim == 2:
                data = (page.colormap >> 8).astype(np.uint8).T[data]  # colours, decoded below
        return data
    data, lossy = _read_pillow(path, indices=by_value)
    if lossy:
        raise InputError(
            f"{path} is a JPEG: its compression changes the painted colours and values, so it "
            "cannot hold labels; save the labels as TIFF or PNG"
        )
    return data


def decode_mask(data: np.ndarray, scheme: ClassScheme, what: str = "the mask") -> np.ndarray:
    """Mask pixels (colours or integers) -> labels 0..K (uint8) through ``scheme``."""
    if data.ndim == 3 and data.shape[-1] in (3, 4) and data.dtype == np.uint8:
        return scheme.decode_colors(data[..., :3], what)
    if data.ndim != 2 or data.dtype.kind not in "iubf":
        raise InputError(
            f"{what} has shape {data.shape} and type {data.dtype}; labels must be a colour "
            "overlay (palette or RGB) or a 2-D integer image"
        )
    if scheme.values is not None:
        return scheme.decode_values(data, what)
    if data.dtype.kind == "f" and (not np.isfinite(data).all() or (data != np.round(data)).any()):
        raise SchemeError(
            f"{what} holds fractional or non-finite values; labels are whole "
            "numbers (one per class)"
        )
    top = data.max(initial=0)
    if top > scheme.n_classes and _all_grey_colours(data, scheme):
        # an 8-bit grey mask whose levels are the scheme's grey colours
        return scheme.decode_colors(np.repeat(data[..., None], 3, -1).astype(np.uint8), what)
    scheme.check_labels(data, what=what)
    return data.astype(np.uint8)


def _all_grey_colours(data: np.ndarray, scheme: ClassScheme) -> bool:
    if data.dtype != np.uint8:
        return False
    greys = {c[0] for c in scheme.colors if c[0] == c[1] == c[2]}
    return bool(greys) and set(np.unique(data).tolist()) <= greys


def read_labels(path, scheme: ClassScheme, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a label mask as labels 0..K: a colour overlay (palette or RGB TIFF / PNG /
    BMP) through a scheme's colours, an integer mask through its values, or an
    integer image with values 0..K used as it is."""
    path = _check_file(path)
    labels = decode_mask(_read_mask(path, scheme.values is not None), scheme, str(path))
    if shape is not None and labels.shape != tuple(shape):
        raise InputError(
            f"{path} is {labels.shape[1]} x {labels.shape[0]} pixels but its image is "
            f"{shape[1]} x {shape[0]}; labels and image must have the same size"
        )
    return labels
