"""Reading and writing 3-D grey volumes (z, y, x) with their voxel size in nm.

Multi-page, ImageJ and OME TIFF stacks, folders of 2-D slices and zarr arrays
are read; volumes bigger than ``LAZY_BYTES`` come back as dask arrays that read
one slice at a time, so memory stays flat.  Writing goes to a tiled, zlib
compressed ImageJ TIFF (or a zarr store) slice by slice.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from ..errors import InputError
from .images import (
    _UNIT_TO_NM,
    IMAGE_SUFFIXES,
    _check_file,
    _is_tiff,
    _open_tiff,
    _pixel_size,
    read_image,
    to_grey,
)

#: volumes whose grey pixels need more memory than this are read lazily (dask)
LAZY_BYTES = 512 * 2**20
#: OME-XML also allows ångström
_UNIT_NM = {**_UNIT_TO_NM, "Å": 0.1, "angstrom": 0.1}
#: tifffile's names for an axis of planes: Z slices, T frames (ImageJ stacks are
#: often saved as frames instead of slices), I / Q generic pages
_STACK_AXES = "ZTIQ"
_TILE = 256

Voxel = tuple[float | None, float | None, float | None]


@dataclass
class Volume:
    """A grey volume (z, y, x) and what is known about it."""

    data: Any
    voxel_size_nm: Voxel = (None, None, None)
    path: Path | None = None
    meta: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.data.shape)

    @property
    def stem(self) -> str:
        if self.path is None:
            return "volume"
        return re.sub(r"\.ome$", "", self.path.stem, flags=re.IGNORECASE)

    @property
    def lazy(self) -> bool:
        return not isinstance(self.data, np.ndarray)

    def is_isotropic(self, tol: float = 0.1) -> bool:
        """True when all three voxel sizes are known and differ by at most ``tol`` (relative)."""
        sizes = self.voxel_size_nm
        if any(s is None for s in sizes):
            return False
        return max(sizes) / min(sizes) - 1.0 <= tol + 1e-12


def natural_key(name: str) -> tuple:
    """Sort key that puts slice2 before slice10."""
    return tuple(int(p) if p.isdigit() else p.casefold() for p in re.split(r"(\d+)", name))


# -- reading ---------------------------------------------------------------
def read_volume(
    path,
    pixel_size_nm: float | None = None,
    voxel_depth_nm: float | None = None,
    lazy: bool | None = None,
) -> Volume:
    """Read a grey volume with its voxel size (z, y, x) in nm, None where unknown.

    ``path``: a multi-page / ImageJ / OME TIFF, a folder of 2-D slices (natural
    order) or a ``.zarr`` array.  ``pixel_size_nm`` (y and x) and
    ``voxel_depth_nm`` (z) override the file's metadata.  ``lazy=None`` reads
    volumes above ``LAZY_BYTES`` as dask arrays; True / False force it.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if _is_zarr(path):
        vol = _read_zarr(path, lazy)
    elif path.is_dir():
        vol = _read_folder(path, lazy)
    else:
        path = _check_file(path)
        if not _is_tiff(path):
            raise InputError(
                f"{path} is a single 2-D image; give a multi-page TIFF, a folder "
                "of slices or a .zarr array as a volume"
            )
        vol = _read_tiff(path, lazy)
    z, y, x = vol.voxel_size_nm
    if pixel_size_nm is not None:
        y = x = _positive(pixel_size_nm, "pixel_size_nm")
    if voxel_depth_nm is not None:
        z = _positive(voxel_depth_nm, "voxel_depth_nm")
    vol.voxel_size_nm = (z, y, x)
    return vol


def _positive(value, name: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number of nanometres, not {value!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"{name} must be a positive number of nanometres, not {value}")
    return value


def _want_lazy(lazy: bool | None, nbytes: int) -> bool:
    return nbytes > LAZY_BYTES if lazy is None else bool(lazy)


def _grey_slice(plane: np.ndarray, colormap=None) -> np.ndarray:
    """One plane -> 2-D grey as ``read_image`` makes it: RGB / palette to grey,
    booleans to 0/255, non-finite values to the plane's median."""
    grey = to_grey(plane, colormap)
    if grey.dtype == bool:
        return grey.astype(np.uint8) * 255
    if grey.dtype.kind == "f":
        bad = ~np.isfinite(grey)
        if bad.any() and not bad.all():
            grey = np.where(bad, np.median(grey[~bad]), grey).astype(grey.dtype)
    return grey


def _stack_layout(path: Path, axes: str, shape) -> tuple[tuple, list[int]]:
    """The index and axis order that turn a tifffile series into (z, y, x[, samples])."""
    index, kept = [], []
    for ax, n in zip(axes, shape):
        if ax in "YXS" or (ax in _STACK_AXES and n > 1):
            index.append(slice(None))
            kept.append(ax)
        elif n == 1:
            index.append(0)
        elif ax == "C":
            raise InputError(
                f"{path} has {n} channels; volumes are grey: save one channel as "
                "its own stack (Fiji: Image > Color > Split Channels)"
            )
        else:
            raise InputError(
                f"{path} has shape {tuple(shape)} (axes {axes}); save one 3-D "
                "grey stack (z, y, x) per file"
            )
    stack = [a for a in kept if a in _STACK_AXES]
    if len(stack) > 1:
        raise InputError(
            f"{path} has shape {tuple(shape)} (axes {axes}), more than one stack "
            "axis; save one 3-D grey stack (z, y, x) per file"
        )
    wanted = stack + ["Y", "X"] + (["S"] if "S" in kept else [])
    return tuple(index), [kept.index(a) for a in wanted]


def _read_tiff(path: Path, lazy: bool | None) -> Volume:
    with _open_tiff(path) as tif:
        series = tif.series[0]
        axes, shape = series.axes, tuple(series.shape)
        index, order = _stack_layout(path, axes, shape)
        page = series.pages[0] if series.pages else tif.pages[0]
        colormap = page.colormap if page.photometric == tifffile.PHOTOMETRIC.PALETTE else None
        sample = np.zeros([shape[axes.index("S")]] if "S" in axes else [], series.dtype)
        grey_dtype = _grey_slice(
            sample.reshape(1, 1, -1) if sample.ndim else sample.reshape(1, 1), colormap
        ).dtype
        voxel = _tiff_voxel_size(tif, path)
        kind = "ome" if tif.is_ome else "imagej" if tif.is_imagej else "tiff"
        planes = math.prod(shape[axes.index(a)] for a in axes if a in _STACK_AXES)
        nbytes = planes * shape[axes.index("Y")] * shape[axes.index("X")] * grey_dtype.itemsize
        make_lazy = _want_lazy(lazy, nbytes)
        if not make_lazy:
            try:
                raw = series.asarray()
            except Exception as exc:  # noqa: BLE001 - tifffile raises many types on bad bytes
                raise InputError(
                    f"{path}: the image data cannot be decoded (truncated or corrupt?): {exc}"
                ) from None
    if make_lazy:
        import dask.array as da
        import zarr

        store = tifffile.imread(path, aszarr=True, series=0, level=0)
        chunks = tuple(n if a in "YXS" else 1 for a, n in zip(axes, shape))
        raw = da.from_zarr(zarr.open(store, mode="r"), chunks=chunks)
    stack = raw[index].transpose(order)
    if len(order) == (3 if "S" in axes else 2):  # one plane: a volume of one slice
        stack = stack[None]
    if stack.ndim not in (3, 4) or (stack.ndim == 4 and stack.shape[-1] not in (3, 4)):
        raise InputError(
            f"{path} has shape {shape} (axes {axes}); a volume needs grey or RGB planes"
        )
    if make_lazy:
        data = stack.map_blocks(
            _grey_block, colormap, dtype=grey_dtype, drop_axis=3 if stack.ndim == 4 else None
        )
    else:
        data = np.empty(stack.shape[:3], grey_dtype)
        for i, plane in enumerate(stack):
            data[i] = _grey_slice(plane, colormap)
    return Volume(data, voxel, path, {"format": kind, "axes": axes, "shape": shape})


def _grey_block(block: np.ndarray, colormap) -> np.ndarray:
    return np.stack([_grey_slice(plane, colormap) for plane in block])


def _tiff_voxel_size(tif: tifffile.TiffFile, path: Path) -> Voxel:
    if tif.is_ome:
        ome = _ome_voxel_size(tif.ome_metadata)
        if any(ome):
            return ome
    x = _pixel_size(tif, path)
    y = x
    tags = tif.pages[0].tags
    xres, yres = tags.get("XResolution"), tags.get("YResolution")
    if x and xres is not None and yres is not None and all(xres.value) and all(yres.value):
        y = x * (xres.value[0] / xres.value[1]) / (yres.value[0] / yres.value[1])
    ij = tif.imagej_metadata or {}
    unit = str(ij.get("unit", "")).replace("\\u00B5", "µ").strip()
    spacing = ij.get("spacing")
    z = None
    if isinstance(spacing, (int, float)) and spacing > 0 and unit in _UNIT_NM:
        z = float(spacing) * _UNIT_NM[unit]
    return (z, y, x)


def _ome_voxel_size(xml: str | None) -> Voxel:
    try:
        image = tifffile.xml2dict(xml)["OME"]["Image"]
    except Exception:  # noqa: BLE001 - absent or malformed OME-XML records no size
        return (None, None, None)
    pixels = (image[0] if isinstance(image, list) else image).get("Pixels", {})

    def size(ax):
        value = pixels.get(f"PhysicalSize{ax}")
        unit = str(pixels.get(f"PhysicalSize{ax}Unit", "µm"))  # the OME default unit
        if isinstance(value, (int, float)) and value > 0 and unit in _UNIT_NM:
            return float(value) * _UNIT_NM[unit]
        return None

    return (size("Z"), size("Y"), size("X"))


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
        raise InputError(f"{path} is not a readable image: {exc}") from None


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
    shape = headers[0][0]
    for f, (other, _) in zip(files, headers):
        if other != shape:
            raise InputError(
                f"{f.name} is {other[1]} x {other[0]} pixels but {files[0].name} is "
                f"{shape[1]} x {shape[0]}: all slices in {folder} must have the same size "
                "(crop or pad them to one size)"
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
    """The array at ``path`` (or array ``0`` / the only array of a group) and its attributes."""
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:  # noqa: BLE001 - zarr raises many types on a broken store
        raise InputError(f"{path} is not a readable zarr store: {exc}") from None
    if isinstance(node, zarr.Group):
        arrays = dict(node.arrays())
        name = "0" if "0" in arrays else next(iter(arrays)) if len(arrays) == 1 else None
        if name is None:
            raise InputError(
                f"{path} is a zarr group with arrays {sorted(arrays)}; give the "
                "path of the array to read (e.g. store.zarr/name)"
            )
        return arrays[name], {**node.attrs, **arrays[name].attrs}
    return node, dict(node.attrs)


def _read_zarr(path: Path, lazy: bool | None) -> Volume:
    arr, attrs = _open_zarr_array(path)
    if arr.ndim not in (2, 3):
        raise InputError(
            f"{path} holds an array of shape {arr.shape}; a volume is a 3-D grey array (z, y, x)"
        )
    voxel = attrs.get("voxel_size_nm")
    if isinstance(voxel, (list, tuple)) and len(voxel) == 3:
        voxel = tuple(float(v) if isinstance(v, (int, float)) and v > 0 else None for v in voxel)
    else:
        pixel = attrs.get("pixel_size_nm")
        depth = attrs.get("voxel_depth_nm")
        pixel = float(pixel) if isinstance(pixel, (int, float)) and pixel > 0 else None
        depth = float(depth) if isinstance(depth, (int, float)) and depth > 0 else None
        voxel = (depth, pixel, pixel)
    if _want_lazy(lazy, arr.nbytes):
        import dask.array as da

        data = da.from_zarr(arr)
    else:
        data = np.asarray(arr[...])
    if data.ndim == 2:
        data = data[None]
    return Volume(data, voxel, path, {"format": "zarr"})


def is_volume(path) -> bool:
    """True for what ``read_volume`` reads as a stack of several slices, judged from
    metadata only: a multi-page TIFF of same-shape planes (not a pyramid, not one
    RGB image), an ImageJ / OME stack with several slices, a folder of two or more
    same-size images, a 3-D zarr array."""
    path = Path(path)
    try:
        if _is_zarr(path):
            return _open_zarr_array(path)[0].ndim == 3
        if path.is_dir():
            files = _slice_files(path)
            return len(files) >= 2 and len({_slice_header(f)[0] for f in files}) == 1
        if not path.is_file() or path.stat().st_size == 0 or not _is_tiff(path):
            return False
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            return any(a in _STACK_AXES and n > 1 for a, n in zip(series.axes, series.shape))
    except Exception:  # noqa: BLE001 - anything unreadable is not a volume we can open
        return False
