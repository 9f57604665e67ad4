"""Huge images: block by block with a halo of context, streamed to a tiled TIFF or zarr,
or computed lazily (dask) for napari."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..events import Progress, drain
from ..io import SEMImage, atomic_path
from ..io.write import pid_alive
from .segment import prepare, region_probabilities
from .window import BATCH, OVERLAP, TILE


# -- huge images: block by block, flat memory ----------------------------------
def _block_halo(overlap: int, factor: float) -> int:
    """Context around each block, in input pixels: twice the tile overlap (at least
    64 pixels) at the model's scale, about the receptive field of a depth-4 U-Net."""
    return int(np.ceil(max(2 * overlap, 64) / max(factor, 1e-6)))


def block_labels(
    model,
    data,
    y0: int,
    y1: int,
    x0: int,
    x1: int,
    valid_rows: int,
    halo: int,
    factor: float,
    bounds,
    tile: int = TILE,
    overlap: int = OVERLAP,
    batch_size: int = BATCH,
    device="auto",
    tta: bool = False,
):
    """Generator: labels (uint8) of ``data[y0:y1, x0:x1]`` predicted with ``halo``
    pixels of context on each side; 0 on rows at or below ``valid_rows``."""
    from ..io import to_grey

    out = np.zeros((y1 - y0, x1 - x0), np.uint8)
    if y0 >= valid_rows:
        return out
    h, w = data.shape[:2]
    ry0, ry1 = max(0, y0 - halo), min(valid_rows, y1 + halo)
    rx0, rx1 = max(0, x0 - halo), min(w, x1 + halo)
    region = to_grey(np.asarray(data[ry0:ry1, rx0:rx1]))
    probs = yield from region_probabilities(
        model, region, factor, bounds, tile, overlap, batch_size, device, tta, labels_only=True
    )
    labels = (np.argmax(probs, axis=0) + 1).astype(np.uint8)
    rows = min(y1, valid_rows) - y0
    out[:rows] = labels[y0 - ry0 : y0 - ry0 + rows, x0 - rx0 : x1 - rx0]
    return out


def _libc():
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None  # not glibc


def _large_buffers_to_os() -> None:
    """Allocate buffers above 32 MiB (the block-sized arrays) with mmap, so that
    freeing them returns the memory at once: glibc's heap otherwise fragments under
    the large, differently sized block buffers and peak RSS creeps up with the image
    size.  Smaller buffers (the network's activations) stay on the heap: mapping
    those too (a 64 KiB threshold) cost 1.6x in speed on a 4 MP image."""
    libc = _libc()
    if libc is not None and hasattr(libc, "mallopt"):
        libc.mallopt(-3, 32 * 1024 * 1024)  # M_MMAP_THRESHOLD (the largest glibc accepts)


def heap_for_arrays() -> None:
    """Undo a 64 KiB ``MALLOC_TRIM_THRESHOLD_`` (dask's nanny sets it in every worker): a
    fixed trim threshold also pins glibc's mmap threshold at 128 KiB, so every image-sized
    array is mapped and unmapped again, and a worker segmented the sample 1.6 s an image
    instead of 0.8 s.  Buffers up to 32 MiB go back on the heap, trimmed above 32 MiB."""
    _large_buffers_to_os()
    libc = _libc()
    if libc is not None and hasattr(libc, "mallopt"):
        libc.mallopt(-1, 32 * 1024 * 1024)  # M_TRIM_THRESHOLD


def _release_memory() -> None:
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def _write_tiff_tiles(path: Path, shape, tile: int, pixel_size_nm, queue):
    """Write a tiled TIFF from tiles put on ``queue`` in row-major order (None ends).
    The pixel size goes in centimetre resolution tags: tiled files cannot carry the
    ImageJ unit, and :func:`engine.io.read_image` reads centimetre resolutions."""
    import tifffile

    def tiles():
        while True:
            item = queue.get()
            if item is None:
                return
            yield item

    kwargs = {}
    if pixel_size_nm:
        kwargs = {"resolution": (1e7 / pixel_size_nm,) * 2, "resolutionunit": "CENTIMETER"}
    tifffile.imwrite(
        path, tiles(), shape=shape, dtype=np.uint8, tile=(tile, tile), compression="zlib", **kwargs
    )


def _bands(model, data, prep, halo: int, block: int, counts: np.ndarray, kw: dict):
    """Generator of ``(item, event)``: a finished band of labels ``(row, band)`` with no
    event, or a progress event with no item."""
    h, w = data.shape[:2]
    n_blocks = -(-h // block) * -(-w // (4 * block))
    done, t0 = 0, time.perf_counter()
    k = len(counts) - 1
    for by in range(0, h, block):
        band = np.zeros((min(block, h - by), w), np.uint8)
        for bx in range(0, w, 4 * block):
            x1 = min(w, bx + 4 * block)
            band[:, bx:x1] = drain(
                block_labels(
                    model,
                    data,
                    by,
                    by + band.shape[0],
                    bx,
                    x1,
                    prep.valid_rows,
                    halo,
                    prep.factor,
                    prep.bounds,
                    **kw,
                )
            )
            done += 1
            _release_memory()
            el = time.perf_counter() - t0
            yield (
                None,
                Progress(
                    "predict",
                    done,
                    n_blocks,
                    eta_s=el / done * (n_blocks - done),
                    message=f"block {done}/{n_blocks}",
                ),
            )
        counts[:] += np.bincount(band.ravel(), minlength=k + 1)[: k + 1]
        yield (by, band), None


def _to_zarr(bands, out_path: Path, shape, block: int, pixel_size_nm):
    import shutil

    import zarr

    for old in out_path.parent.glob(f".{out_path.name}.*-zarrpart"):  # left by a killed run
        pid = old.name.rsplit(".", 1)[-1].split("-")[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}-zarrpart")
    z = zarr.open_array(str(tmp), mode="w", shape=shape, chunks=(block, block), dtype=np.uint8)
    for item, ev in bands:
        if ev is not None:
            yield ev
        else:
            by, band = item
            z[by : by + band.shape[0]] = band
    if pixel_size_nm:
        z.attrs["pixel_size_nm"] = pixel_size_nm
    if out_path.exists():
        shutil.rmtree(out_path)
    tmp.rename(out_path)


def _to_tiff(bands, out_path: Path, shape, pixel_size_nm, tile: int = 256):
    import queue as queue_mod
    import threading

    h, w = shape
    with atomic_path(out_path) as tmp:
        q: queue_mod.Queue = queue_mod.Queue(maxsize=64)
        errors = []

        def run():
            try:
                _write_tiff_tiles(tmp, shape, tile, pixel_size_nm, q)
            except Exception as exc:  # surfaced below
                errors.append(exc)

        writer = threading.Thread(target=run, daemon=True)
        writer.start()
        try:
            for item, ev in bands:
                if ev is not None:
                    yield ev
                    continue
                _, band = item
                for ty in range(0, band.shape[0], tile):
                    for tx in range(0, w, tile):
                        t = np.zeros((tile, tile), np.uint8)
                        part = band[ty : ty + tile, tx : tx + tile]
                        t[: part.shape[0], : part.shape[1]] = part
                        if errors:
                            raise errors[0]
                        q.put(t)
        finally:
            q.put(None)
            writer.join()
        if errors:
            raise InputError(f"cannot write {out_path}: {errors[0]}")


def segment_to_file(
    model,
    image: SEMImage,
    out_path,
    data_bar: int | None = None,
    block: int = 1024,
    tile: int = TILE,
    overlap: int = OVERLAP,
    batch_size: int = BATCH,
    device="auto",
    tta: bool = False,
    rescale: bool = True,
):
    """Generator: segment a huge (lazy: memory-mapped, zarr or dask) image block by
    block and write the labels to ``out_path`` (tiled ``.tif`` or ``.zarr``) as
    they come, so peak memory does not grow with the image.  Returns a dict
    with the data-bar rows, the scale factor and the pixel count per class."""
    _large_buffers_to_os()
    data = image.data
    shape = data.shape[:2]
    block = max(256, (block // 256) * 256)
    prep = prepare(model, data, image.pixel_size_nm, data_bar, rescale)
    halo = _block_halo(overlap, prep.factor)
    counts = np.zeros(model.info.scheme.n_classes + 1, np.int64)
    kw = dict(tile=tile, overlap=overlap, batch_size=batch_size, device=device, tta=tta)
    bands = _bands(model, data, prep, halo, block, counts, kw)
    out_path = Path(out_path)
    if out_path.suffix.lower() == ".zarr":
        yield from _to_zarr(bands, out_path, shape, block, image.pixel_size_nm)
    else:
        yield from _to_tiff(bands, out_path, shape, image.pixel_size_nm)
    return {
        "data_bar": prep.data_bar,
        "scale": prep.factor,
        "counts": counts[1:].tolist(),
        "notes": prep.notes,
    }


def lazy_labels(
    model,
    data,
    pixel_size_nm=None,
    data_bar: int | None = None,
    chunk: int = 1024,
    tile: int = TILE,
    overlap: int = OVERLAP,
    device="auto",
    rescale: bool = True,
):
    """A dask array of labels over a (lazy) image, computed chunk by chunk on demand
    with overlapping context: what napari shows for huge images.  The data bar is
    detected as for any other prediction unless ``data_bar`` gives its rows."""
    import dask.array as da

    src = data if isinstance(data, da.Array) else da.from_array(data, chunks=(chunk, chunk))
    prep = prepare(model, src, pixel_size_nm, data_bar, rescale)
    halo = _block_halo(overlap, prep.factor)

    def compute(block, block_info=None):
        (y0, y1), (x0, x1) = block_info[0]["array-location"]
        return drain(
            block_labels(
                model,
                src,
                y0,
                y1,
                x0,
                x1,
                prep.valid_rows,
                halo,
                prep.factor,
                prep.bounds,
                tile=tile,
                overlap=overlap,
                device=device,
            )
        )

    return da.map_blocks(compute, src, dtype=np.uint8, meta=np.zeros((0, 0), np.uint8))
