"""napari reader: SEM images (with their physical scale), label TIFFs (with their scheme and
scale) and colour masks decoded through a class scheme into labels layers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from .engine import io
from .engine.classes import ClassScheme
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
            return int(data.max()) <= 64 and np.unique(data[::4, ::4]).size <= 32
    except Exception:
        return False


def colour_mask(path, scheme: ClassScheme) -> np.ndarray | None:
    """Labels from an RGB TIFF whose every colour is a class of ``scheme`` (a colour mask);
    None for an RGB photograph or micrograph."""
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            if tif.is_sem or page.photometric != tifffile.PHOTOMETRIC.RGB or page.dtype != np.uint8:
                return None
            rgb = page.asarray()[..., :3]
        return scheme.decode_colors(rgb)
    except (RockSegError, ValueError, OSError):
        return None


def scheme_for(path) -> ClassScheme:
    """The scheme saved beside the file, else the session's active scheme."""
    from ._widgets._state import STORE
    from ._writer import scheme_path

    side = scheme_path(path)
    return ClassScheme.from_json(side) if side.exists() else STORE.scheme


def get_reader(path):
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(path)
    if p.suffix.lower() in (".tif", ".tiff") or (p.is_dir() and io.is_volume(p)):
        return read
    return None


def _pixel_size(path) -> float | None:
    try:
        return io.read_image(path).pixel_size_nm
    except RockSegError:
        return None


def _labels_layer(labels, scheme, path):
    from ._layers import labels_kwargs

    px = _pixel_size(path)
    scale = (px, px) if px else None
    kw = labels_kwargs(
        scheme,
        Path(path).stem,
        scale=scale,
        units=("nm", "nm") if px else None,
        metadata={"pixel_size_nm": px, "rockseg_painted": True},
    )
    return labels, kw, "labels"


def _volume_layer(path):
    vol = io.read_volume(path)
    voxel = tuple(v or 1.0 for v in vol.voxel_size_nm)
    kw = {
        "name": vol.stem,
        "scale": voxel,
        "metadata": {
            "pixel_size_nm": vol.voxel_size_nm[-1],
            "voxel_size_nm": vol.voxel_size_nm,
            "source": str(path),
        },
    }
    if any(vol.voxel_size_nm):
        kw["units"] = ("nm",) * 3
    return vol.data, kw, "image"


def read(path):
    from ._layers import image_kwargs

    paths = path if isinstance(path, list) else [path]
    layers = []
    for p in paths:
        try:
            scheme = scheme_for(p)
            if Path(p).is_dir() or io.is_volume(p):
                layers.append(_volume_layer(p))
            elif looks_like_labels(p):
                layers.append(_labels_layer(io.read_labels(p, scheme), scheme, p))
            elif (mask := colour_mask(p, scheme)) is not None:
                layers.append(_labels_layer(mask, scheme, p))
            else:
                image = io.read_image(p)
                layers.append((image.data, image_kwargs(image, Path(p).stem), "image"))
        except RockSegError as exc:
            raise ValueError(str(exc)) from None
    return layers
