"""The sliding window: tiles batched through a model, blended with smooth weights, optional test-time augmentation."""

from __future__ import annotations

import time

import numpy as np
import torch

from ..errors import InputError
from ..events import Progress
from .device import autocast, resolve_device
from .grid import blend_weights, fit_tiles

#: default tile size, overlap and batch: tiles shrink to fit the image (see
#: tiles.fit_tiles), so large tiles cost no extra margin on small images
TILE, OVERLAP, BATCH = 512, 64, 2
#: channels-last memory layout: faster convolutions on CPUs (benchmarks/speed.py), same numbers
CHANNELS_LAST = True


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
