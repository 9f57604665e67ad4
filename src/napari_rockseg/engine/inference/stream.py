"""Huge images: block by block with a halo of context, streamed to a tiled TIFF or zarr, or computed lazily (dask) for napari."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..condition import scale_factor
from ..errors import InputError
from ..events import Progress, drain
from ..io import SEMImage
from .segment import region_probabilities
from .window import BATCH, OVERLAP, TILE


# -- huge images: block by block, flat memory ----------------------------------
def _block_halo(overlap: int, factor: float) -> int:
    """Context around each block, in input pixels: twice the tile overlap (at least
    64 pixels) at the model's scale, about the receptive field of a depth-4 U-Net."""
    return int(np.ceil(max(2 * overlap, 64) / max(factor, 1e-6)))


def block_labels(model, data, y0: int, y1: int, x0: int, x1: int, valid_rows: int, halo: int, factor: float,
                 bounds, tile: int = TILE, overlap: int = OVERLAP, batch_size: int = BATCH, device="auto",
                 tta: bool = False):
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
    probs = yield from region_probabilities(model, region, factor, bounds, tile, overlap, batch_size, device, tta)
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


def _release_memory() -> None:
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def _writer_thread(path: Path, shape, tile: int, pixel_size_nm, queue):
    """Write a tiled TIFF from tiles put on ``queue`` in row-major order (None ends)."""
    import tifffile

    def tiles():
        while True:
            item = queue.get()
            if item is None:
                return
            yield item

    kwargs = {}
    if pixel_size_nm:
        kwargs = {"resolution": (1.0 / (pixel_size_nm / 1000.0),) * 2, "resolutionunit": "NONE",
                  "metadata": {"unit": "um"}}
    tifffile.imwrite(path, tiles(), shape=shape, dtype=np.uint8, tile=(tile, tile), compression="zlib",
                     **kwargs)


def segment_to_file(model, image: SEMImage, out_path, data_bar: int | None = None, block: int = 1024,
                    tile: int = TILE, overlap: int = OVERLAP, batch_size: int = BATCH, device="auto", tta: bool = False,
                    rescale: bool = True):
    """Generator: segment a huge (lazy: memory-mapped, zarr or dask) image block by
    block and write the labels to ``out_path`` (tiled ``.tif`` or ``.zarr``) as
    they come, so peak memory does not grow with the image.  Returns a dict
    with the data-bar rows, the scale factor and the pixel count per class."""
    import queue as queue_mod
    import threading

    from ..io import atomic_path, detect_data_bar, to_grey

    _large_buffers_to_os()
    data = image.data
    h, w = data.shape[:2]
    block = max(256, (block // 256) * 256)
    if data_bar is None:
        strip = min(h, 1024)
        data_bar = detect_data_bar(to_grey(np.asarray(data[h - strip:])), max_fraction=min(1.0, 0.25 * h / strip))
    bar = int(data_bar)
    if not 0 <= bar < h:
        raise InputError(f"--data-bar {bar} must be between 0 and {h - 1} rows")
    valid_rows = h - bar
    factor, note = scale_factor(model, image, rescale)
    bounds, contrast_note = (None, None) if getattr(model, "kind", None) == "lda" else model.info.stats_and_note(data, valid_rows)
    halo = _block_halo(overlap, factor)
    k = model.info.scheme.n_classes
    counts = np.zeros(k + 1, np.int64)
    n_blocks = -(-h // block) * -(-w // (4 * block))
    done = 0
    out_path = Path(out_path)
    zarr_out = out_path.suffix.lower() == ".zarr"
    t0 = time.perf_counter()
    kw = dict(tile=tile, overlap=overlap, batch_size=batch_size, device=device, tta=tta)

    def bands():
        nonlocal done
        for by in range(0, h, block):
            band = np.zeros((min(block, h - by), w), np.uint8)
            for bx in range(0, w, 4 * block):
                x1 = min(w, bx + 4 * block)
                band[:, bx:x1] = drain(block_labels(model, data, by, by + band.shape[0], bx, x1, valid_rows,
                                                    halo, factor, bounds, **kw))
                done += 1
                _release_memory()
                el = time.perf_counter() - t0
                yield None, Progress("predict", done, n_blocks, eta_s=el / done * (n_blocks - done),
                                     message=f"block {done}/{n_blocks}")
            counts[:] += np.bincount(band.ravel(), minlength=k + 1)[: k + 1]
            yield (by, band), None

    if zarr_out:
        import shutil

        import zarr

        tmp = out_path.with_name(f".{out_path.name}.partial")
        if tmp.exists():
            shutil.rmtree(tmp)
        z = zarr.open_array(str(tmp), mode="w", shape=(h, w), chunks=(block, block), dtype=np.uint8)
        for item, ev in bands():
            if ev is not None:
                yield ev
            else:
                by, band = item
                z[by:by + band.shape[0]] = band
        if image.pixel_size_nm:
            z.attrs["pixel_size_nm"] = image.pixel_size_nm
        if out_path.exists():
            shutil.rmtree(out_path)
        tmp.rename(out_path)
    else:
        with atomic_path(out_path) as tmp:
            q: queue_mod.Queue = queue_mod.Queue(maxsize=64)
            errors = []

            def run():
                try:
                    _writer_thread(tmp, (h, w), 256, image.pixel_size_nm, q)
                except Exception as exc:  # surfaced below
                    errors.append(exc)

            writer = threading.Thread(target=run, daemon=True)
            writer.start()
            try:
                for item, ev in bands():
                    if ev is not None:
                        yield ev
                        continue
                    _, band = item
                    for ty in range(0, band.shape[0], 256):
                        for tx in range(0, w, 256):
                            t = np.zeros((256, 256), np.uint8)
                            part = band[ty:ty + 256, tx:tx + 256]
                            t[: part.shape[0], : part.shape[1]] = part
                            if errors:
                                raise errors[0]
                            q.put(t)
            finally:
                q.put(None)
                writer.join()
            if errors:
                raise InputError(f"cannot write {out_path}: {errors[0]}")
    return {"data_bar": bar, "scale": factor, "counts": counts[1:].tolist(), "notes": [n for n in (note, contrast_note) if n]}


def lazy_labels(model, data, pixel_size_nm=None, data_bar: int = 0, chunk: int = 1024, tile: int = TILE,
                overlap: int = OVERLAP, device="auto", rescale: bool = True):
    """A dask array of labels over a (lazy) image, computed chunk by chunk on
    demand with overlapping context: what napari shows for huge images."""
    import dask.array as da

    src = data if isinstance(data, da.Array) else da.from_array(data, chunks=(chunk, chunk))
    h = src.shape[0]
    valid_rows = h - data_bar
    factor, _ = scale_factor(model, SEMImage(np.zeros((1, 1)), pixel_size_nm), rescale)
    bounds = model.info.stats(src, valid_rows)
    halo = _block_halo(overlap, factor)

    def compute(block, block_info=None):
        (y0, y1), (x0, x1) = block_info[0]["array-location"]
        return drain(block_labels(model, src, y0, y1, x0, x1, valid_rows, halo, factor, bounds, tile=tile,
                                  overlap=overlap, device=device))

    return da.map_blocks(compute, src, dtype=np.uint8, meta=np.zeros((0, 0), np.uint8))
