"""Volumes that are folders: a folder of 2-D slices (natural order, one size) and zarr
stores (an array, a group of one array, OME-Zarr / NGFF 0.4 / 0.5 multiscale images,
also under a bioformats2raw group, whose level 0 and axis units give the voxel size)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import tifffile

from ..errors import InputError
from .images import IMAGE_SUFFIXES, _is_tiff, read_image
from .volume_base import _UNIT_NM, Volume, Voxel, _grey_slice, _want_lazy, natural_key


def _slice_files(folder: Path) -> list[Path]:
    files = [
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    ]
    return sorted(files, key=lambda p: natural_key(p.name))


_PILLOW_DTYPES = {
    "I;16": np.uint16,
    "I;16L": np.uint16,
    "I;16B": np.uint16,
    "I": np.int32,
    "F": np.float32,
}


def _slice_header(path: Path) -> tuple[tuple[int, int], np.dtype]:
    """(height, width) and grey dtype of a 2-D image from its header alone."""
    try:
        if _is_tiff(path):
            with tifffile.TiffFile(path) as tif:
                page = tif.pages[0]
                shape = (page.imagelength, page.imagewidth)
                if page.photometric == tifffile.PHOTOMETRIC.PALETTE:
                    return shape, np.dtype(np.uint8)
                sample = np.zeros(
                    (1, 1, page.samplesperpixel) if page.samplesperpixel > 1 else (1, 1), page.dtype
                )
                return shape, _grey_slice(sample).dtype
        from PIL import Image

        with Image.open(path) as im:
            return (im.height, im.width), np.dtype(_PILLOW_DTYPES.get(im.mode, np.uint8))
    except Exception as exc:  # noqa: BLE001 - any reader error: the file is not a usable slice
        raise InputError(
            f"{path} is not a readable image ({exc}); remove it from the folder of slices "
            "or replace it"
        ) from None


def _read_slice(path: Path, shape, dtype) -> np.ndarray:
    grey = read_image(path).data
    if grey.shape != tuple(shape):
        raise InputError(
            f"{path} is {grey.shape[1]} x {grey.shape[0]} pixels, not "
            f"{shape[1]} x {shape[0]}; all slices must have one size"
        )
    return grey.astype(dtype, copy=False)


def _read_folder(folder: Path, lazy: bool | None) -> Volume:
    files = _slice_files(folder)
    if not files:
        raise InputError(
            f"{folder} holds no image files ({', '.join(IMAGE_SUFFIXES)}); give a "
            "folder of 2-D slices"
        )
    headers = [_slice_header(f) for f in files]
    sizes = [shape for shape, _ in headers]
    shape = max(dict.fromkeys(sizes), key=sizes.count)  # the most common size, first on ties
    odd = [f for f, size in zip(files, sizes) if size != shape]
    if odd:
        ref, (h, w) = files[sizes.index(shape)], sizes[files.index(odd[0])]
        names = ", ".join(f.name for f in odd[:3]) + (" ..." if len(odd) > 3 else "")
        raise InputError(
            f"{odd[0].name} is {w} x {h} pixels but {ref.name} is {shape[1]} x {shape[0]}: "
            f"all slices in {folder} must have one size ({len(odd)} of {len(files)} differ: "
            f"{names}); crop or pad them to one size, or move them out of the folder"
        )
    dtype = np.result_type(*{d for _, d in headers})
    first = read_image(files[0])
    voxel = (None, first.pixel_size_nm, first.pixel_size_nm)
    meta = {"format": "folder", "files": [f.name for f in files]}
    if _want_lazy(lazy, len(files) * shape[0] * shape[1] * dtype.itemsize):
        import dask
        import dask.array as da

        slices = [
            da.from_delayed(dask.delayed(_read_slice)(f, shape, dtype), shape, dtype) for f in files
        ]
        return Volume(da.stack(slices), voxel, folder, meta)
    data = np.empty((len(files), *shape), dtype)
    data[0] = first.data
    for i, f in enumerate(files[1:], 1):
        data[i] = _read_slice(f, shape, dtype)
    return Volume(data, voxel, folder, meta)


def _is_zarr(path: Path) -> bool:
    return path.is_dir() and (
        path.suffix.lower() == ".zarr"
        or any((path / name).exists() for name in (".zarray", ".zgroup", "zarr.json"))
    )


def _open_zarr_array(path: Path):
    """The array to read at ``path`` and its axis names (None: unnamed) and voxel size:
    an array; the first (full-resolution) level of an OME-Zarr multiscale image (NGFF
    0.4 / 0.5, also under a bioformats2raw group '0'); array '0' or the only array of a
    group."""
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:  # noqa: BLE001 - zarr raises many types on a broken store
        raise InputError(f"{path} is not a readable zarr store: {exc}") from None
    if not isinstance(node, zarr.Group):
        return node, None, _zarr_attr_voxel(dict(node.attrs))
    image, multiscale = _ngff_multiscale(node)
    if multiscale is not None:
        return _ngff_level(path, image, multiscale)
    arrays = dict(node.arrays())
    name = "0" if "0" in arrays else next(iter(arrays)) if len(arrays) == 1 else None
    if name is None:
        raise InputError(
            f"{path} is a zarr group with arrays {sorted(arrays) or 'none'}; give the "
            "path of the array to read (e.g. store.zarr/name)"
        )
    return arrays[name], None, _zarr_attr_voxel({**node.attrs, **arrays[name].attrs})


def _zarr_attr_voxel(attrs: dict) -> Voxel:
    """rockseg's own attributes: ``voxel_size_nm`` [z, y, x], or ``pixel_size_nm`` and
    ``voxel_depth_nm``."""
    voxel = attrs.get("voxel_size_nm")
    if isinstance(voxel, (list, tuple)) and len(voxel) == 3:
        return tuple(_size_or_none(v) for v in voxel)
    pixel = _size_or_none(attrs.get("pixel_size_nm"))
    return (_size_or_none(attrs.get("voxel_depth_nm")), pixel, pixel)


def _size_or_none(value) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    return float(value) if ok and math.isfinite(value) and value > 0 else None


def _ngff_multiscale(group):
    """(image group, its first multiscale) of an OME-Zarr, else (group, None)."""
    candidates = [group]
    if "0" in group.group_keys():  # bioformats2raw layout: the image is group "0"
        candidates.append(group["0"])
    for g in candidates:
        attrs = dict(g.attrs)
        attrs = attrs.get("ome", attrs)  # NGFF 0.5 nests its metadata under "ome"
        ms = attrs.get("multiscales") if isinstance(attrs, dict) else None
        if isinstance(ms, list) and ms and isinstance(ms[0], dict) and ms[0].get("datasets"):
            return g, ms[0]
    return group, None


def _ngff_scale(transforms, n: int) -> list[float]:
    scale = [1.0] * n
    for t in transforms or []:
        if isinstance(t, dict) and t.get("type") == "scale" and len(t.get("scale", [])) == n:
            scale = [a * float(b) for a, b in zip(scale, t["scale"])]
    return scale


def _ngff_level(path: Path, image, multiscale: dict):
    """Level 0 of an NGFF multiscale: its array, axis names and (z, y, x) size in nm."""
    level = multiscale["datasets"][0]
    try:
        arr = image[str(level["path"])]
    except (KeyError, TypeError):
        raise InputError(
            f"{path}: the OME-Zarr multiscale names level {level.get('path')!r}, which the "
            "store does not hold; re-export the image"
        ) from None
    axes = multiscale.get("axes") or "tczyx"[-arr.ndim :]  # NGFF 0.1 / 0.2: always tczyx
    axes = [a.get("name") if isinstance(a, dict) else a for a in axes]
    units = [a.get("unit") if isinstance(a, dict) else None for a in multiscale.get("axes", [])]
    units += [None] * (arr.ndim - len(units))
    scale = _ngff_scale(level.get("coordinateTransformations"), arr.ndim)
    outer = _ngff_scale(multiscale.get("coordinateTransformations"), arr.ndim)
    voxel = []
    for name in "zyx":
        i = axes.index(name) if name in axes else None
        unit = None if i is None else _UNIT_NM.get(str(units[i]).strip())
        voxel.append(None if unit is None else _size_or_none(scale[i] * outer[i] * unit))
    return arr, [str(a).lower() for a in axes], tuple(voxel)


def _zarr_index(path: Path, shape, axes) -> tuple:
    """The index that takes (z, y, x) out of a zarr array: axes of length 1 dropped;
    a channel or time axis of several is refused (one grey volume per store)."""
    ndim = len(shape)
    if axes is None:  # unnamed: leading axes of length one are dropped, the rest is zyx
        axes = ["?"] * (ndim - 3) + ["z", "y", "x"][-min(ndim, 3) :]
    index = []
    for name, n in zip(axes, shape):
        if name in ("z", "y", "x"):
            index.append(slice(None))
        elif n == 1:
            index.append(0)
        else:
            what = {"c": "channels", "t": "time points"}.get(name, f"entries along axis {name!r}")
            raise InputError(
                f"{path} holds an array of shape {tuple(shape)} (axes {''.join(axes)}) with "
                f"{n} {what}; a volume is one grey (z, y, x) array: save one "
                f"{'channel' if name == 'c' else 'time point' if name == 't' else 'of them'} "
                "as its own store"
            )
    if "y" not in axes or "x" not in axes:
        raise InputError(f"{path}: the array's axes {''.join(axes)} have no y and x")
    return tuple(index)


def _read_zarr(path: Path, lazy: bool | None) -> Volume:
    arr, axes, voxel = _open_zarr_array(path)
    index = _zarr_index(path, arr.shape, axes)
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{path} holds {arr.dtype} values; a volume holds grey numbers")
    kept = [n for i, n in zip(index, arr.shape) if isinstance(i, slice)]
    if _want_lazy(lazy, math.prod(kept) * arr.dtype.itemsize):
        import dask.array as da

        data = da.from_zarr(arr)[index]
    else:
        data = np.asarray(arr[index])
    if data.dtype == bool:
        data = data.astype(np.uint8) * 255
    if data.ndim == 2:
        data = data[None]
    fmt = "ome-zarr" if axes is not None else "zarr"
    return Volume(data, voxel, path, {"format": fmt, "axes": axes, "shape": tuple(arr.shape)})
