"""Reading and writing 3-D grey volumes (z, y, x) with their voxel size in nm.

Multi-page, ImageJ and OME TIFF stacks, folders of 2-D slices and zarr arrays
are read; volumes bigger than ``LAZY_BYTES`` come back as dask arrays that read
one slice at a time, so memory stays flat.  Writing goes to a tiled, zlib
compressed ImageJ TIFF (or a zarr store) slice by slice.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import tifffile

from ..errors import InputError
from .images import (
    _check_file,
    _is_tiff,
    _open_tiff,
    _pixel_size,
)
from .volume_base import (  # noqa: F401 - Volume, Voxel and LAZY_BYTES are read from here
    _STACK_AXES,
    _UNIT_NM,
    LAZY_BYTES,
    Volume,
    Voxel,
    _grey_slice,
    _want_lazy,
    natural_key,
)


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
    from .volume_sources import _is_zarr, _read_folder, _read_zarr

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
    if vol.data.dtype.kind == "f":
        vol.data = _fill_blank_slices(vol)
    return vol


def _fill_blank_slices(vol: Volume):
    """Slices with no finite value (a NaN slice of a reconstruction) take the median of
    the volume's finite values, so they cannot turn its statistics (and every label
    normalised by them) into NaN; the other non-finite voxels took their slice's median
    in ``_grey_slice``.  A lazy volume's median comes from up to 5 slices."""
    data = vol.data
    if vol.lazy:
        sample = np.asarray(data[:: max(1, data.shape[0] // 5)][:5])
    else:
        bad = ~np.isfinite(data)
        if not bad.any():
            return data
        sample = data[~bad]
    finite = sample[np.isfinite(sample)]
    if not finite.size:
        raise InputError(
            f"{vol.path} holds no finite value (all NaN or infinite); check the export"
        )
    fill = np.asarray(np.median(finite), data.dtype)
    if vol.lazy:
        return data.map_blocks(lambda b: np.where(np.isfinite(b), b, fill), dtype=data.dtype)
    data[bad] = fill
    vol.meta.setdefault("notes", []).append(
        f"{int(bad.all(axis=(1, 2)).sum())} slice(s) with no finite value set to the "
        f"volume's median ({float(fill):.4g})"
    )
    return data


def read_label_volume(path, scheme, voxel_size_nm: Voxel | None = None) -> Volume:
    """A labels volume as labels 0..K (uint8) of ``scheme``: integer values decoded
    through the scheme's ``value`` entries (0/255 masks, 16-bit label maps) when it has
    them, else used as they are and checked against its classes.  ``path``: a file,
    folder or store, or a Volume already read.  ``voxel_size_nm`` (z, y, x; None
    entries keep the file's) overrides the metadata."""
    z, y, x = voxel_size_nm or (None, None, None)
    vol = path if isinstance(path, Volume) else read_volume(path, lazy=False)
    path = vol.path
    lab = np.asarray(vol.data)
    if lab.dtype.kind not in "biu":
        raise InputError(
            f"{path} holds {lab.dtype} values, not integer labels; give the labels volume "
            "(e.g. <stem>_labels.tif from rockseg predict)"
        )
    what = f"labels of {path.name if path else 'the volume'}"
    if scheme.values is not None:
        lab = scheme.decode_values(lab, what=what).reshape(lab.shape)
    else:
        scheme.check_labels(lab, what=what)
    voxel = tuple(a if a is not None else b for a, b in zip((z, y, x), vol.voxel_size_nm))
    return Volume(lab.astype(np.uint8, copy=False), voxel, path, dict(vol.meta))


def _positive(value, name: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number of nanometres, not {value!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"{name} must be a positive number of nanometres, not {value}")
    return value


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
        n = dict(zip(axes, shape))
        what = (
            f"{n['T']} time points of {n['Z']} slices"
            if set(stack) == {"T", "Z"}
            else f"more than one stack axis ({''.join(stack)})"
        )
        raise InputError(
            f"{path} has shape {tuple(shape)} (axes {axes}): {what}; save one 3-D grey "
            "stack (z, y, x) per file (Fiji: Image > Duplicate..., one frame)"
        )
    wanted = stack + ["Y", "X"] + (["S"] if "S" in kept else [])
    return tuple(index), [kept.index(a) for a in wanted]


def _read_tiff(path: Path, lazy: bool | None) -> Volume:
    with _open_tiff(path) as tif:
        series = tif.series[0]
        shape = tuple(series.shape)
        axes = _series_axes(tif, series)
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
    meta = {"format": kind, "axes": axes, "shape": shape}
    if axes != series.axes:
        meta["notes"] = [
            f"the file's {shape[series.axes.index('C')]} grey channels are read as slices"
        ]
    return Volume(data, voxel, path, meta)


def _series_axes(tif: tifffile.TiffFile, series) -> str:
    """The series' axes, with the channels of a grey ImageJ hyperstack that has no other
    stack axis read as slices: ``tifffile.imwrite(path, zyx, imagej=True)`` labels the
    planes of any 3-D array as channels, and rock volumes have no channels; a colour
    or composite hyperstack keeps its channels (refused)."""
    axes = series.axes
    stacked = any(a in _STACK_AXES and n > 1 for a, n in zip(axes, series.shape))
    mode = str((tif.imagej_metadata or {}).get("mode", "grayscale")).lower()
    if tif.is_imagej and "C" in axes and not stacked and mode == "grayscale":
        return axes.replace("C", "Z")
    return axes


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


def is_volume(path) -> bool:
    """True for what ``read_volume`` reads as a stack of several slices, judged from
    metadata only: a multi-page TIFF of same-shape planes (not a pyramid, not one
    RGB image), an ImageJ / OME stack with several slices, a folder of two or more
    same-size images, a 3-D zarr array."""
    from .volume_sources import _is_zarr, _open_zarr_array, _slice_files, _slice_header, _zarr_index

    path = Path(path)
    try:
        if _is_zarr(path):
            arr, axes, _ = _open_zarr_array(path)
            index = _zarr_index(path, arr.shape, axes)
            kept = [n for i, n in zip(index, arr.shape) if isinstance(i, slice)]
            return len(kept) == 3 and kept[0] > 1
        if path.is_dir():
            files = _slice_files(path)
            return len(files) >= 2 and len({_slice_header(f)[0] for f in files}) == 1
        if not path.is_file() or path.stat().st_size == 0 or not _is_tiff(path):
            return False
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes = _series_axes(tif, series)
            return any(a in _STACK_AXES and n > 1 for a, n in zip(axes, series.shape))
    except Exception:  # noqa: BLE001 - anything unreadable is not a volume we can open
        return False
