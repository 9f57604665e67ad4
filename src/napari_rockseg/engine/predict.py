"""Sliding-window prediction with smooth blending of probabilities.

``segment`` is the one call the CLI and the widgets use: it crops the data
bar, resamples to the model's pixel size when both are known (giving an enlarged,
lower-magnification image its pixel-scale texture back), normalises,
predicts tile by tile (batched, blended, optional test-time augmentation),
maps back to the input grid and returns integer labels (0 on the data bar).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .errors import InputError
from .events import Progress, drain
from .io import SEMImage, resolve_data_bar
from .tiles import blend_weights, fit_tiles

#: default tile size, overlap and batch: tiles shrink to fit the image (see
#: tiles.fit_tiles), so large tiles cost no extra margin on small images
TILE, OVERLAP, BATCH = 512, 64, 2
#: channels-last memory layout: faster convolutions on CPUs (benchmarks/speed.py), same numbers
CHANNELS_LAST = True
#: arithmetic of the networks at prediction (environment variable ROCKSEG_PRECISION, set by
#: ``rockseg predict --precision`` so that dask workers inherit it): ``auto`` = float16 on CUDA,
#: bfloat16 on CPUs with native bfloat16 instructions (AVX512-BF16 or AMX), float32 elsewhere
PRECISIONS = ("auto", "fp32", "bf16")


@lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (elsewhere it is emulated and slower)."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except Exception:  # private helpers: absent on some builds and platforms
        return False


def autocast_dtype(dev: torch.device, mode: str | None = None) -> torch.dtype | None:
    """The reduced precision the networks run in on ``dev`` (None: float32) for ``mode``
    (one of :data:`PRECISIONS`; None: the ROCKSEG_PRECISION environment variable, else
    auto).  On this project's 2-core CPU bfloat16 predicts 1.5-1.9x faster and changes
    under 0.03 % of the labels (held-out mean IoU within 0.0003; README, Speed)."""
    if mode is None:
        mode = os.environ.get("ROCKSEG_PRECISION", "auto").strip().lower() or "auto"
    if mode not in PRECISIONS:
        raise InputError(f"unknown precision {mode!r} (ROCKSEG_PRECISION); "
                         f"choose {', '.join(PRECISIONS)}")
    if mode == "fp32":
        return None
    if dev.type == "cuda":
        return torch.bfloat16 if mode == "bf16" else torch.float16
    if dev.type == "cpu" and (mode == "bf16" or cpu_has_bf16()):
        return torch.bfloat16
    return None


def autocast(dev: torch.device, mode: str | None = None):
    """The context the networks run in on ``dev`` for ``mode`` (see :func:`autocast_dtype`).
    Float32 is no context at all: a disabled ``torch.autocast`` would switch off one around it."""
    dtype = autocast_dtype(dev, mode)
    return contextlib.nullcontext() if dtype is None else torch.autocast(dev.type, dtype=dtype)


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' was asked for but no CUDA GPU is available; use --device auto or cpu")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError("device 'mps' was asked for but Apple MPS is not available; use --device auto or cpu")
    if device not in ("cpu", "cuda", "mps") and not device.startswith("cuda:"):
        raise InputError(f"unknown device {device!r}; choose auto, cpu, cuda or mps")
    return torch.device(device)


_TTA = [(k, f) for f in (False, True) for k in range(4)]


def _apply(x, k, flip):
    x = torch.rot90(x, k, dims=(-2, -1))
    return torch.flip(x, dims=(-1,)) if flip else x


def _undo(y, k, flip):
    y = torch.flip(y, dims=(-1,)) if flip else y
    return torch.rot90(y, -k, dims=(-2, -1))


def tile_probabilities(model, batch: torch.Tensor, tta: bool = False) -> torch.Tensor:
    """Probabilities of a batch of tiles, averaged over the 8 dihedral views with ``tta``."""
    if not tta:
        return model.probabilities(batch)
    acc = None
    for k, flip in _TTA:
        p = _undo(model.probabilities(_apply(batch, k, flip)), k, flip)
        acc = p if acc is None else acc + p
    return acc / len(_TTA)


def predict_proba(model, x: np.ndarray, tile: int = TILE, overlap: int = OVERLAP, batch_size: int = BATCH,
                  device="auto", tta: bool = False, blend: str = "cosine"):
    """Generator: yields Progress per batch, returns (K, H, W) float32 probabilities
    of the normalised 2-D input ``x``."""
    dev = resolve_device(device) if isinstance(device, str) else device
    mult = model.multiple
    tile = max(mult, (tile // mult) * mult)
    if not 0 <= overlap < tile:
        raise InputError(f"overlap ({overlap}) must be at least 0 and smaller than the tile size ({tile})")
    h, w = x.shape
    # reflect-pad so no image pixel lies in the low-weight margin of every tile
    m = overlap // 2
    ph, pw = -(-(h + 2 * m) // mult) * mult, -(-(w + 2 * m) // mult) * mult
    pad = ((m, ph - h - m), (m, pw - w - m))
    xp = np.pad(x, pad, mode="reflect" if min(h, w) > max(pad[0][1], pad[1][1], m) else "edge")
    k = model.info.scheme.n_classes
    acc = np.zeros((k, ph, pw), np.float32)
    wsum = np.zeros((ph, pw), np.float32)
    th, ys = fit_tiles(ph, tile, overlap, mult)
    tw, xs = fit_tiles(pw, tile, overlap, mult)
    weight = blend_weights((th, tw), overlap, blend)
    coords = [(y, xx) for y in ys for xx in xs]
    fmt = torch.channels_last if CHANNELS_LAST else torch.contiguous_format
    model.to(dev, memory_format=fmt).eval()
    t0 = time.perf_counter()
    amp = autocast(dev)  # resolved once per image, entered per batch
    with torch.inference_mode():
        for i in range(0, len(coords), batch_size):
            chunk = coords[i:i + batch_size]
            batch = np.stack([xp[y:y + th, xx:xx + tw] for y, xx in chunk])[:, None]
            xb = torch.from_numpy(np.ascontiguousarray(batch, np.float32)).to(dev).contiguous(memory_format=fmt)
            with amp:
                probs = tile_probabilities(model, xb, tta).float().cpu().numpy()
            for (y, xx), p in zip(chunk, probs):
                acc[:, y:y + th, xx:xx + tw] += p * weight
                wsum[y:y + th, xx:xx + tw] += weight
            done = min(i + batch_size, len(coords))
            el = time.perf_counter() - t0
            yield Progress("predict", done, len(coords), eta_s=el / done * (len(coords) - done))
    acc /= wsum
    return acc[:, m:m + h, m:m + w]


@dataclass
class Segmentation:
    labels: np.ndarray  # uint8 (H, W), 0 on the data bar
    data_bar: int
    scale: float  # input pixels per model pixel (1.0 when not resampled)
    probabilities: np.ndarray | None = None  # (K, H, W) float32
    uncertainty: np.ndarray | None = None  # (H, W) float32, normalised entropy 0..1
    notes: list = field(default_factory=list)


def _resize(arr: np.ndarray, shape, order: int) -> np.ndarray:
    from skimage.transform import resize

    return resize(arr, shape, order=order, preserve_range=True, anti_aliasing=order > 0 and
                  shape[-1] < arr.shape[-1]).astype(arr.dtype)


#: images whose pixels are this many times the model's (a lower magnification) get a note
COARSE_FACTOR = 1.5


def scale_factor(model, image: SEMImage, rescale: bool = True) -> tuple[float, str | None]:
    """How much to zoom the input to reach the model's pixel size, and a note."""
    if not rescale:
        return 1.0, None
    trained = model.info.pixel_size_nm
    if trained is None:
        return 1.0, None
    if image.pixel_size_nm is None:
        return 1.0, (f"the image's pixel size is unknown; it is segmented as is (the model was "
                     f"trained at {trained:.3g} nm per pixel). Give it (rockseg predict --pixel-size, "
                     f"the Segment widget's image pixel size): an image at a higher magnification segmented "
                     f"as is loses 0.10-0.17 mean IoU on held-out images (docs/experiments.md)")
    factor = image.pixel_size_nm / trained
    if factor >= COARSE_FACTOR:
        return factor, (f"the image's pixels ({image.pixel_size_nm:.3g} nm) are {factor:.2g}x the model's "
                        f"({trained:.3g} nm): it is enlarged to the model's scale, but the fine detail the "
                        f"model tells some phases by is not there at this magnification (on held-out images "
                        f"2x coarser than the training images, U-Nets with the shipped settings lost about 0.07 "
                        f"mean IoU and found almost no clay; docs/experiments.md, \"Lower magnifications\"). For such "
                        f"images, train a model at their pixel size (rockseg train --pixel-size)")
    return factor, None


#: images the networks enlarge TEXTURE_FACTORS[0] to [1] times (pixels 1.4-2.5x the model's:
#: a lower magnification) get white noise after enlarging, up to :data:`TEXTURE_TARGET`:
#: linear enlargement smooths away the pixel-scale texture every training image has (an
#: SEM's per-pixel noise does not depend on the magnification). On held-out images this
#: raised the mean IoU of U-Nets and bags at 1.5-2.5x and lowered it at 3-3.75x, hence the
#: window, and lowered the stacked ensemble's, which does without it (docs/experiments.md, "Lower
#: magnifications")
TEXTURE_FACTORS = (1.4, 2.5)
#: the pixel-scale texture restored (:func:`texture`): 4 grey levels of an 8-bit image in
#: median-normalised units (full scale = 4), for the shipped default; every texture level
#: here is the shipped default's and scales with a model's own training texture
#: (``ModelInfo.texture``) relative to :data:`REFERENCE_TEXTURE`
TEXTURE_TARGET = 4 * 4.0 / 255
#: the shipped default's training images' mean pixel-scale texture at its scale (6.78 grey
#: levels: 4.37 / 7.87 / 8.11 for training images 1-3 at 11.16 nm); models that record none
#: (trained before it was recorded) are taken to have it
REFERENCE_TEXTURE = 0.10640
#: images the networks do not enlarge 1.4x or more (the same magnification, higher ones
#: shrunk, a little lower) get white noise up to this texture, 6 grey levels, when they have
#: less: a blurred (defocused) image loses the texture the networks tell clay by. On held-out
#: images blurred by 1-2 px this raised the mean IoU by 0.047 (two bags), at -0.004 to +0.007
#: on the unblurred views (docs/experiments.md, "Image quality")
TEXTURE_FLOOR = 6 * 4.0 / 255
#: images with more pixel-scale texture than this at the model's scale, 9 grey levels (the
#: training images have 7.9-8.4: more is pixel noise, a short dwell time), are smoothed down
#: to it with a Gaussian; on held-out images with white noise of sigma 6-12 grey levels this
#: raised the mean IoU by 0.026 and changed nothing on the others (docs/experiments.md, "Image quality")
TEXTURE_CEILING = 9 * 4.0 / 255


def texture(x: np.ndarray) -> float:
    """Pixel-scale texture of an image: the robust standard deviation (1.4826 x the
    median absolute deviation) of the image minus its Gaussian blur of 1 pixel."""
    from scipy.ndimage import gaussian_filter

    g = np.asarray(x, np.float32)
    hp = g - gaussian_filter(g, 1.0)
    return float(np.median(np.abs(hp - np.median(hp))) * 1.4826)


def restore_texture(x: np.ndarray, target: float = TEXTURE_TARGET, seed: int = 0) -> np.ndarray:
    """``x`` plus white noise (a fixed seed: the same input gives the same labels) whose
    amplitude brings its pixel-scale texture to ``target``; ``x`` itself if it has that much."""
    t0 = texture(x)
    if t0 >= target:
        return x
    noise = np.random.default_rng(seed).standard_normal(x.shape, dtype=np.float32)
    amp = np.sqrt(target**2 - t0**2) / max(texture(noise), 1e-12)
    return (x + np.float32(amp) * noise).astype(np.float32)


def smooth_texture(x: np.ndarray, target: float = TEXTURE_CEILING) -> np.ndarray:
    """``x`` smoothed with the Gaussian whose sigma (bisection in 0-2 pixels) brings its
    pixel-scale texture down to ``target``; ``x`` itself if it has no more than that."""
    from scipy.ndimage import gaussian_filter

    if texture(x) <= target:
        return x
    lo, hi = 0.0, 2.0
    for _ in range(12):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if texture(gaussian_filter(x, mid)) > target else (lo, mid)
    return gaussian_filter(x, hi).astype(np.float32)


def _texture_scale(model) -> float:
    """A model's training texture relative to the shipped default's (1 when it records none)."""
    own = getattr(model.info, "texture", None)
    return own / REFERENCE_TEXTURE if own else 1.0


def _texture_target(model, factor: float) -> float | None:
    """The pixel-scale texture an image zoomed ``factor`` x for ``model`` gets at the model's
    scale (:func:`restore_texture`), or None: U-Nets and bags with the median normalisation
    only; :data:`TEXTURE_TARGET` for enlargements in :data:`TEXTURE_FACTORS`,
    :data:`TEXTURE_FLOOR` below them, nothing above (3x and more lost on held-out images);
    each scaled by the model's own training texture (:func:`_texture_scale`)."""
    if getattr(model, "kind", None) not in ("unet", "bag") or model.info.normalization != "median":
        return None
    lo, hi = TEXTURE_FACTORS
    if factor < lo:
        return TEXTURE_FLOOR * _texture_scale(model)
    return TEXTURE_TARGET * _texture_scale(model) if factor <= hi else None


def region_probabilities(model, region: np.ndarray, factor: float = 1.0, bounds=None, tile: int = TILE,
                         overlap: int = OVERLAP, batch_size: int = BATCH, device="auto", tta: bool = False):
    """Generator: (K, h, w) probabilities of a grey ``region`` (no data bar), zoomed by
    ``factor`` for the model and back; ``bounds`` are whole-image intensity bounds."""
    kind = getattr(model, "kind", None)
    if kind == "lda":  # the original baseline: raw grey values, no resampling
        probs = model.probabilities(region)
        yield Progress("predict", 1, 1)
        return probs
    x = model.info.normalize(region, bounds)
    if abs(factor - 1.0) > 0.02:
        shape = tuple(max(getattr(model, "multiple", 1), int(round(s * factor))) for s in region.shape)
        x = _resize(x, shape, order=1)
    target = _texture_target(model, factor)
    if target is not None:  # U-Nets and bags: pixel noise smoothed down, missing texture given back
        x = restore_texture(smooth_texture(x, TEXTURE_CEILING * _texture_scale(model)), target)
    dev = resolve_device(device) if isinstance(device, str) else device
    if kind == "rf":
        yield Progress("predict", 0, 1, message="pixel features and forest")
        probs = model.probabilities(x, device=dev)
        yield Progress("predict", 1, 1)
    else:
        probs = yield from predict_proba(model, x, tile, overlap, batch_size, dev, tta)
        if getattr(model, "forest", None) is not None:
            yield Progress("forest", 0, 1, message="pixel features and forest")
            probs = model.blend(probs, x, dev)
            yield Progress("forest", 1, 1, message="pixel features and forest")
    if probs.shape[1:] != region.shape:
        probs = np.stack([_resize(p, region.shape, order=1) for p in probs])
    return probs


def segment(model, image: SEMImage, data_bar: int | None = None, tile: int = TILE, overlap: int = OVERLAP,
            batch_size: int = BATCH, device="auto", tta: bool = False, rescale: bool = True,
            probabilities: bool = False, uncertainty: bool = False):
    """Generator: yields Progress, returns a :class:`Segmentation` of ``image``."""
    grey = image.data
    if data_bar is None and model.info.data_bar != "auto":
        data_bar = int(model.info.data_bar)
    bar = resolve_data_bar(grey, data_bar)
    region = grey[: grey.shape[0] - bar]
    k = model.info.scheme.n_classes
    factor, note = scale_factor(model, image, rescale)
    bounds, contrast_note = (None, None) if getattr(model, "kind", None) == "lda" else model.info.stats_and_note(region)
    notes = [n for n in (note, contrast_note) if n]
    probs = yield from region_probabilities(model, region, factor, bounds, tile, overlap, batch_size, device, tta)
    labels = np.zeros(grey.shape, np.uint8)
    labels[: region.shape[0]] = np.argmax(probs, axis=0) + 1
    out = Segmentation(labels, bar, factor, notes=notes)
    if probabilities:
        full = np.zeros((k,) + grey.shape, np.float32)
        full[:, : region.shape[0]] = probs
        out.probabilities = full
    if uncertainty:
        p = np.clip(probs, 1e-8, 1.0)
        ent = -(p * np.log(p)).sum(axis=0) / np.log(k)
        full = np.zeros(grey.shape, np.float32)
        full[: region.shape[0]] = ent
        out.uncertainty = full
    return out


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
    from .io import to_grey

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

    from .io import atomic_path, detect_data_bar, to_grey

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
