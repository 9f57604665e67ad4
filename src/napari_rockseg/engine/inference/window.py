"""The sliding window: tiles batched through a model, blended with smooth weights, optional
test-time augmentation; tile and batch sizes from a GPU's free memory."""

from __future__ import annotations

import time

import numpy as np
import torch

from ..errors import InputError
from ..events import Progress
from .device import autocast, autocast_dtype, resolve_device
from .grid import blend_weights, fit_tiles

#: tile size, overlap and batch on CPUs (and wherever free memory is unknown): tiles shrink
#: to fit the image (see grid.fit_tiles), so large tiles cost no extra margin on small images
TILE, OVERLAP, BATCH = 512, 64, 2
#: share of a GPU's free memory that one batch of activations may take (the rest: cuDNN's
#: workspaces, the allocator's fragmentation, other processes' growth)
GPU_MEMORY_SHARE = 0.5
#: the most tiles per network call when memory allows more (beyond it a GPU gains nothing)
MAX_BATCH = 16


def activation_bytes_per_pixel(model, element_bytes: int = 2) -> int:
    """A generous estimate of the bytes per input pixel that one forward pass of ``model``
    holds at its peak: about 8 full-resolution maps of each network's width (the skip
    connections and the widest concatenation), for all members of a fused bag at once."""
    nets = list(getattr(model, "members", None) or [])
    if not nets:
        nets = [getattr(model, "net", None) or getattr(model, "multi", None)]
    widths = [n.config["width"] for n in nets if n is not None] or [64]
    fused = getattr(model, "fused", None)
    width = sum(widths) if fused else max(widths)
    return 8 * width * element_bytes + 4 * 2 * model.info.scheme.n_classes * len(widths)


def choose_tiling(
    shape: tuple[int, int], bytes_per_pixel: int, free_bytes: int | None, multiple: int = 16
) -> tuple[int, int]:
    """(tile, batch) for an image of ``shape`` (padded): the whole image in one call when it
    fits in :data:`GPU_MEMORY_SHARE` of ``free_bytes``, else the largest square tile of at
    least :data:`TILE` that does, batched as far as memory allows.  Unknown free memory
    (None: CPUs) keeps :data:`TILE` and :data:`BATCH`, whose blended tiling is faster there."""
    if free_bytes is None:
        return TILE, BATCH
    budget = GPU_MEMORY_SHARE * free_bytes
    h, w = shape
    whole = -(-max(h, w) // multiple) * multiple
    if h * w * bytes_per_pixel <= budget:
        return whole, 1
    side = int((budget / bytes_per_pixel) ** 0.5) // multiple * multiple
    tile = min(whole, max(TILE, side))
    batch = int(budget // (tile * tile * bytes_per_pixel))
    return tile, max(1, min(MAX_BATCH, batch))


def free_memory(dev: torch.device) -> int | None:
    """Free bytes on a CUDA device (None elsewhere)."""
    if dev.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(dev)
    return int(free + torch.cuda.memory_reserved(dev) - torch.cuda.memory_allocated(dev))


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


def predict_proba(
    model,
    x: np.ndarray,
    tile: int | None = None,
    overlap: int = OVERLAP,
    batch_size: int | None = None,
    device="auto",
    tta: bool = False,
    blend: str = "cosine",
    channels_last: bool = True,
):
    """Generator: yields Progress per batch, returns (K, H, W) float32 probabilities
    of the normalised 2-D input ``x``, or (N, K, H, W) of a stack of N planes (the slices
    of a volume: their tiles share the network's batches).  ``tile`` / ``batch_size``
    None: chosen by :func:`choose_tiling` (whole images on a GPU when they fit).
    ``channels_last``: the memory layout of the activations (faster convolutions on CPUs,
    same numbers)."""
    dev = resolve_device(device) if isinstance(device, str) else device
    mult = model.multiple
    stack = x.ndim == 3
    x = x if stack else x[None]
    h, w = x.shape[1:]
    # reflect-pad so no image pixel lies in the low-weight margin of every tile
    m = overlap // 2
    ph, pw = -(-(h + 2 * m) // mult) * mult, -(-(w + 2 * m) // mult) * mult
    if tile is None or batch_size is None:
        bpp = activation_bytes_per_pixel(model, 4 if autocast_dtype(dev) is None else 2)
        auto_tile, auto_batch = choose_tiling((ph, pw), bpp, free_memory(dev), mult)
        tile, batch_size = tile or auto_tile, batch_size or auto_batch
    tile = max(mult, (tile // mult) * mult)
    if not 0 <= overlap < tile:
        raise InputError(
            f"overlap ({overlap}) must be at least 0 and smaller than the tile size ({tile})"
        )
    pad = ((0, 0), (m, ph - h - m), (m, pw - w - m))
    xp = np.pad(x, pad, mode="reflect" if min(h, w) > max(pad[1][1], pad[2][1], m) else "edge")
    k = model.info.scheme.n_classes
    acc = np.zeros((len(x), k, ph, pw), np.float32)
    wsum = np.zeros((ph, pw), np.float32)
    th, ys = fit_tiles(ph, tile, overlap, mult)
    tw, xs = fit_tiles(pw, tile, overlap, mult)
    weight = blend_weights((th, tw), overlap, blend)
    for y in ys:  # every plane is tiled alike
        for xx in xs:
            wsum[y : y + th, xx : xx + tw] += weight
    coords = [(z, y, xx) for z in range(len(x)) for y in ys for xx in xs]
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model.to(dev, memory_format=fmt).eval()
    t0 = time.perf_counter()
    amp = autocast(dev)  # resolved once per image, entered per batch
    with torch.inference_mode():
        for i in range(0, len(coords), batch_size):
            chunk = coords[i : i + batch_size]
            batch = np.stack([xp[z, y : y + th, xx : xx + tw] for z, y, xx in chunk])[:, None]
            xb = torch.from_numpy(np.ascontiguousarray(batch, np.float32)).to(dev)
            xb = xb.contiguous(memory_format=fmt)
            with amp:
                probs = tile_probabilities(model, xb, tta).float().cpu().numpy()
            for (z, y, xx), p in zip(chunk, probs):
                acc[z, :, y : y + th, xx : xx + tw] += p * weight
            done = min(i + batch_size, len(coords))
            el = time.perf_counter() - t0
            yield Progress("predict", done, len(coords), eta_s=el / done * (len(coords) - done))
    acc /= wsum
    out = acc[:, :, m : m + h, m : m + w]
    return out if stack else out[0]
