"""Writing volumes: tiled, compressed ImageJ TIFF with the voxel size, or zarr; slice by
slice, atomic."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import tifffile

from ..errors import InputError
from .volume import _positive
from .volume_base import _TILE, Voxel
from .volume_sources import _is_zarr
from .write import atomic_path


# -- writing ---------------------------------------------------------------
def write_volume(
    path,
    data,
    voxel_size_nm=(None, None, None),
    *,
    n_slices: int | None = None,
    compression: str | None = "zlib",
) -> Path:
    """Write a volume slice by slice (flat memory) and atomically.

    ``data``: a 3-D numpy / dask / zarr array or an iterable of 2-D slices
    (``n_slices``: the count of an iterator without ``len``, needed for TIFF).
    ``.tif`` / ``.tiff``: a tiled, compressed ImageJ hyperstack with spacing,
    unit 'um' and resolution (ImageJ has one unit, so a depth is kept only with
    a pixel size; ``.zarr`` keeps any).  ``.zarr``: attribute ``voxel_size_nm``
    [z, y, x].
    """
    path = Path(path)
    voxel = _voxel_tuple(voxel_size_nm)
    suffix = path.suffix.lower()
    if suffix not in (".tif", ".tiff", ".zarr"):
        raise InputError(f"{path}: write a volume as .tif, .tiff or .zarr")
    n, first, slices = _slice_source(data, n_slices)
    if suffix == ".zarr":
        return _write_zarr(path, n, first, slices, voxel)
    if n is None:
        raise InputError("give n_slices= when writing a TIFF volume from an iterator of slices")
    # ImageJ pixel types: 8 / 16 bit or 32-bit float; other integers are range-checked
    dtype = np.dtype(
        np.uint8
        if first.dtype in (bool, np.uint8)
        else np.float32
        if first.dtype.kind == "f"
        else np.uint16
    )
    h, w = first.shape
    tile = (_TILE, _TILE) if min(h, w) >= _TILE else None
    z, y, x = voxel
    meta, kwargs = {"axes": "ZYX"}, {}
    if x and y:
        kwargs["resolution"] = (1e3 / x, 1e3 / y)
        meta.update({"unit": "um", **({"spacing": z / 1e3} if z else {})})

    def pieces():  # pages, or the tiles of each page in order
        for plane in slices:
            plane = _cast(plane, dtype)
            if tile is None:
                yield plane
            else:
                yield from (
                    plane[r : r + _TILE, c : c + _TILE]
                    for r in range(0, h, _TILE)
                    for c in range(0, w, _TILE)
                )

    with atomic_path(path) as tmp, tifffile.TiffWriter(tmp, imagej=True) as tw:
        tw.write(
            pieces(),
            shape=(n, h, w),
            dtype=dtype,
            tile=tile,
            compression=compression,
            metadata=meta,
            **kwargs,
        )
    return path


def _voxel_tuple(voxel) -> Voxel:
    if voxel is None or isinstance(voxel, (int, float)):
        voxel = (voxel,) * 3
    if len(voxel) != 3:
        raise InputError(f"voxel_size_nm must be (z, y, x) in nm, not {voxel!r}")
    return tuple(None if v is None else _positive(v, "voxel_size_nm") for v in voxel)


def _slice_source(data, n_slices):
    """(slice count or None, first slice, iterator over all slices as 2-D numpy arrays,
    checked for one shape and for the count announced)."""
    if hasattr(data, "shape") and hasattr(data, "ndim"):
        if data.ndim != 3 or 0 in data.shape:
            raise InputError(f"a volume to write must be 3-D (z, y, x), not shape {data.shape}")
        slices, n = _array_slices(data), int(data.shape[0])
    else:
        slices = iter(data)
        n = len(data) if hasattr(data, "__len__") else n_slices
    first = np.asarray(next(slices, np.zeros(0)))
    if first.ndim != 2 or not first.size:
        raise InputError(f"each slice to write must be a 2-D image, not shape {first.shape}")
    return n, first, _checked(itertools.chain([first], slices), first.shape, n)


def _array_slices(data):
    if hasattr(data, "compute"):  # dask: compute each chunk of slices once
        for a, b in itertools.pairwise(np.cumsum((0, *data.chunks[0]))):
            yield from np.asarray(data[a:b].compute())
    else:
        for i in range(data.shape[0]):
            yield np.asarray(data[i])


def _checked(slices, shape, n: int | None):
    count = 0
    for count, plane in enumerate(slices, 1):
        plane = np.asarray(plane)
        if plane.shape != shape:
            raise InputError(
                f"slices of shapes {shape} and {plane.shape}: all slices of a volume "
                "must have the same size"
            )
        if n is not None and count > n:
            raise InputError(f"more than the {n} slices announced (n_slices) came to write")
        yield plane
    if n is not None and count < n:
        raise InputError(f"only {count} of the {n} slices announced (n_slices) came to write")


def _cast(plane: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype == np.uint16 and plane.dtype.kind in "iu" and (plane.min() < 0 or plane.max() > 65535):
        raise InputError(
            f"values {plane.min()}..{plane.max()} do not fit a 16-bit ImageJ "
            "TIFF; write the volume as .zarr instead"
        )
    return np.ascontiguousarray(plane, dtype)


def _write_zarr(path: Path, n, first: np.ndarray, slices, voxel: Voxel) -> Path:
    import zarr

    if path.exists() and not _is_zarr(path):
        raise InputError(f"{path} exists and is not a zarr store; give another name")
    parent = path.parent if str(path.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    # a zarr store is a folder, which atomic_path (one file) cannot swap: it is built
    # beside the target and renamed into place, so a crash leaves no torn store
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=parent))
    old = tmp.with_name(tmp.name + ".old")
    try:
        h, w = first.shape
        arr = zarr.open_array(
            str(tmp / "a"),
            mode="w",
            shape=(n or 1, h, w),
            dtype=first.dtype,
            chunks=(1, min(h, 1024), min(w, 1024)),
        )
        arr.attrs["voxel_size_nm"] = list(voxel)
        for count, plane in enumerate(slices, 1):
            if count > arr.shape[0]:  # an iterator of unknown length: grow as slices come
                arr.resize((count, h, w))
            arr[count - 1] = plane
        if path.exists():
            os.replace(path, old)
        try:
            os.replace(tmp / "a", path)
        except OSError:
            if old.exists():
                os.replace(old, path)  # put the previous store back
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return path
