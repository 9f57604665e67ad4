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
    from .engine.classes import scheme_path

    side = scheme_path(path)
    return ClassScheme.from_json(side) if side.exists() else STORE.scheme


def get_reader(path):
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(path)
    if p.suffix.lower() in (".tif", ".tiff") or (p.is_dir() and _volume_folder(p)):
        return read
    return None


def _volume_folder(path: Path) -> bool:
    """A zarr store or a folder of two or more image files: ours to read, so that one
    that cannot be read as a volume (slices of mixed sizes, a channel axis) gets our
    message that says what to do rather than another reader's failure."""
    from .engine.io.volume_sources import _is_zarr, _slice_files

    try:
        return _is_zarr(path) or len(_slice_files(path)) >= 2
    except OSError:
        return False


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


def _display_scale(voxel) -> tuple[tuple, bool]:
    """napari's scale for a voxel size (z, y, x) nm with unknown entries, and whether it
    is in nm: an unknown slice spacing shows as the pixel size (cubic voxels), since a
    scale of 1 beside pixels of e.g. 2000 nm would flatten the 3-D view to a sheet."""
    z, y, x = voxel
    if y is None or x is None:
        return (1.0, 1.0, 1.0), False
    return (z if z is not None else x, y, x), True


def _looks_like_label_volume(data) -> bool:
    """Integer voxels holding only a few small values (the 2-D rule of looks_like_labels)."""
    if data.dtype.kind not in "iu" or not isinstance(data, np.ndarray):
        return False
    sample = data[:, ::4, ::4]
    return int(sample.max()) <= 64 and np.unique(sample).size <= 32


def _volume_layer(path, scheme):
    vol = io.read_volume(path)
    scale, in_nm = _display_scale(vol.voxel_size_nm)
    metadata = {
        "pixel_size_nm": vol.voxel_size_nm[-1],
        "voxel_size_nm": vol.voxel_size_nm,
        "source": str(path),
    }
    units = ("nm",) * 3 if in_nm else None
    if _looks_like_label_volume(vol.data):
        from ._layers import labels_kwargs
        from .engine.io.volume import read_label_volume

        try:
            labels = read_label_volume(vol, scheme)
        except RockSegError:
            pass  # integer grey values outside the scheme: shown as an image
        else:
            metadata["rockseg_painted"] = True
            kw = labels_kwargs(scheme, vol.stem, scale=scale, units=units, metadata=metadata)
            return labels.data, kw, "labels"
    kw = {"name": vol.stem, "scale": scale, "metadata": metadata}
    if units:
        kw["units"] = units
    return vol.data, kw, "image"


def read(path):
    from ._layers import image_kwargs

    paths = path if isinstance(path, list) else [path]
    layers = []
    for p in paths:
        try:
            scheme = scheme_for(p)
            if Path(p).is_dir() or io.is_volume(p):
                layers.append(_volume_layer(p, scheme))
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
