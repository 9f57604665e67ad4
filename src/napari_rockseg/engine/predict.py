"""Sliding-window prediction with smooth blending of probabilities.

``segment`` is the one call the CLI and the widgets use: it crops the data
bar, resamples to the model's pixel size when both are known, normalises,
predicts tile by tile (batched, blended, optional test-time augmentation),
maps back to the input grid and returns integer labels (0 on the data bar).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .errors import InputError
from .events import Progress
from .io import SEMImage, resolve_data_bar
from .tiles import blend_weights, grid_starts


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


def predict_proba(model, x: np.ndarray, tile: int = 256, overlap: int = 64, batch_size: int = 4,
                  device="auto", tta: bool = False, blend: str = "cosine"):
    """Generator: yields Progress per batch, returns (K, H, W) float32 probabilities
    of the normalised 2-D input ``x``."""
    dev = resolve_device(device) if isinstance(device, str) else device
    mult = model.multiple
    tile = max(mult, (tile // mult) * mult)
    if not 0 <= overlap < tile:
        raise InputError(f"overlap ({overlap}) must be at least 0 and smaller than the tile size ({tile})")
    h, w = x.shape
    # reflect-pad so no image pixel lies in the low-weight margin of every tile,
    # and so the padded image is at least one tile in each direction
    m = overlap // 2
    ph, pw = max(h + 2 * m, tile), max(w + 2 * m, tile)
    pad = ((m, ph - h - m), (m, pw - w - m))
    xp = np.pad(x, pad, mode="reflect" if min(h, w) > max(pad[0][1], pad[1][1], m) else "edge")
    k = model.info.scheme.n_classes
    acc = np.zeros((k, ph, pw), np.float32)
    wsum = np.zeros((ph, pw), np.float32)
    weight = blend_weights(tile, overlap, blend)
    step = tile - overlap
    coords = [(y, xx) for y in grid_starts(ph, tile, step) for xx in grid_starts(pw, tile, step)]
    model.to(dev).eval()
    use_amp = dev.type == "cuda"
    t0 = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(coords), batch_size):
            chunk = coords[i:i + batch_size]
            batch = np.stack([xp[y:y + tile, xx:xx + tile] for y, xx in chunk])[:, None]
            xb = torch.from_numpy(np.ascontiguousarray(batch, np.float32)).to(dev)
            with torch.autocast(dev.type, dtype=torch.float16, enabled=use_amp):
                probs = tile_probabilities(model, xb, tta).float().cpu().numpy()
            for (y, xx), p in zip(chunk, probs):
                acc[:, y:y + tile, xx:xx + tile] += p * weight
                wsum[y:y + tile, xx:xx + tile] += weight
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


def scale_factor(model, image: SEMImage, rescale: bool = True) -> tuple[float, str | None]:
    """How much to zoom the input to reach the model's pixel size, and a note."""
    if not rescale:
        return 1.0, None
    trained = model.info.pixel_size_nm
    if trained is None:
        return 1.0, None
    if image.pixel_size_nm is None:
        return 1.0, (f"the image's pixel size is unknown; it is segmented as is (the model was "
                     f"trained at {trained:.3g} nm per pixel)")
    return image.pixel_size_nm / trained, None


def segment(model, image: SEMImage, data_bar: int | None = None, tile: int = 256, overlap: int = 64,
            batch_size: int = 4, device="auto", tta: bool = False, rescale: bool = True,
            probabilities: bool = False, uncertainty: bool = False):
    """Generator: yields Progress, returns a :class:`Segmentation` of ``image``."""
    grey = image.data
    if data_bar is None and model.info.data_bar != "auto":
        data_bar = int(model.info.data_bar)
    bar = resolve_data_bar(grey, data_bar)
    region = grey[: grey.shape[0] - bar]
    k = model.info.scheme.n_classes
    factor, note = scale_factor(model, image, rescale)
    notes = [note] if note else []
    kind = getattr(model, "kind", None)
    if kind == "lda":  # the original baseline: raw grey values, no resampling
        probs = model.probabilities(region)
        yield Progress("predict", 1, 1)
    else:
        x = model.info.normalize(region)
        if abs(factor - 1.0) > 0.02:
            shape = tuple(max(getattr(model, "multiple", 1), int(round(s * factor))) for s in region.shape)
            x = _resize(x, shape, order=1)
        if kind == "rf":
            yield Progress("predict", 0, 1, message="pixel features and forest")
            probs = model.probabilities(x)
            yield Progress("predict", 1, 1)
        else:
            probs = yield from predict_proba(model, x, tile, overlap, batch_size, device, tta)
        if probs.shape[1:] != region.shape:
            probs = np.stack([_resize(p, region.shape, order=1) for p in probs])
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
