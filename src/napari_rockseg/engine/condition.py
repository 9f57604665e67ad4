"""Conditioning an image for a model: intensity statistics and normalisation, resampling to the
model's pixel size, and the pixel-scale texture levels the networks were trained on."""

from __future__ import annotations

import numpy as np

SAMPLE_PIXELS = 1_000_000


def _grid_step(rows: int, cols: int, max_samples: int | None) -> int:
    return max(1, int(np.ceil(np.sqrt(rows * cols / (max_samples or SAMPLE_PIXELS)))))


def sample_grid(grey, max_samples: int | None = None, rows: int | None = None) -> np.ndarray:
    """At most ``max_samples`` pixels of the first ``rows`` rows (default: all) of a
    (possibly huge or lazy) image on a regular grid, as float32.  Slicing with a
    step reads a zarr or dask image chunk by chunk, never all of it at once."""
    rows = grey.shape[0] if rows is None else rows
    step = _grid_step(rows, grey.shape[1], max_samples)
    return np.asarray(grey[:rows:step, ::step], dtype=np.float32)


def intensity_bounds(
    grey, low: float = 0.5, high: float = 99.5, mask=None, max_samples: int | None = None
):
    """Robust (low, high) percentiles of an image; huge or lazy images are
    sampled on a regular grid of at most ``max_samples`` pixels."""
    sample = sample_grid(grey, max_samples)
    if mask is not None:
        step = _grid_step(grey.shape[0], grey.shape[1], max_samples)
        sample = sample[np.asarray(mask)[::step, ::step]]
    lo, hi = np.percentile(sample, [low, high]) if sample.size else (0.0, 1.0)
    if hi - lo < 1e-6:
        hi = lo + 1.0
    return float(lo), float(hi)


def normalize(
    grey: np.ndarray, low: float = 0.5, high: float = 99.5, mask=None, bounds=None
) -> np.ndarray:
    """Robust per-image intensity normalisation to about [0, 1] (float32);
    ``bounds`` gives precomputed (low, high) values (whole-image ones for a block)."""
    g = np.asarray(grey, dtype=np.float32)
    lo, hi = bounds if bounds is not None else intensity_bounds(g, low, high, mask)
    return (g - lo) / (hi - lo)


def resize(arr: np.ndarray, shape, order: int) -> np.ndarray:
    """A 2-D image resized to ``shape`` in its own dtype: linear (order 1, anti-aliased where
    it shrinks) or nearest (order 0), as scikit-image's ``resize`` (:mod:`.filters`)."""
    from .filters import resize

    return resize(arr, shape, order)


def resize_maps(maps: np.ndarray, shape) -> np.ndarray:
    """(K, h, w) maps (class probabilities) each resized linearly to ``shape``: (K, H, W)."""
    return np.stack([resize(m, shape, order=1) for m in maps])


#: images whose pixels are this many times the model's (a lower magnification) get a note
COARSE_FACTOR = 1.5
#: the zooms to a model's pixel size that prediction makes (issue #32): beyond 16x either way an
#: image shows structure at a scale the model never saw (held-out images 2x coarser already lost
#: 0.07 mean IoU, 3x more), and the zoomed image grows 256x or shrinks to a few pixels
MAX_FACTOR = 16.0
#: share of the physical memory that one resampled array may take
MEMORY_SHARE = 0.25


def physical_memory() -> int | None:
    """Bytes of physical memory (None where the system does not say)."""
    import os

    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def check_resample_memory(
    shape, factor: float, bytes_per_pixel: float, what: str, advice: str
) -> None:
    """Refuse, before allocating anything, a resampling of an image of ``shape`` by ``factor``
    whose result (``bytes_per_pixel`` per output pixel, intermediates included) would take more
    than :data:`MEMORY_SHARE` of the physical memory; ``advice`` names the option to change."""
    from .errors import InputError

    pixels = float(np.prod([max(1.0, round(s * factor)) for s in shape[:2]]))
    need = pixels * bytes_per_pixel
    total = physical_memory()
    budget = MEMORY_SHARE * total if total else 16 * 2**30
    if need > budget:
        raise InputError(
            f"{what}: resampling {shape[0]}x{shape[1]} pixels by {factor:.3g}x "
            f"would need {need / 2**30:.1f} GB, more than {budget / 2**30:.1f} GB "
            f"(a quarter of this machine's memory); {advice}"
        )


def scale_factor(
    model, pixel_size_nm: float | None, rescale: bool = True
) -> tuple[float, str | None]:
    """How much to zoom an image of ``pixel_size_nm`` (None: unknown) to reach the model's
    pixel size, and a note.  A zoom beyond :data:`MAX_FACTOR` either way is refused
    (InputError, before anything is allocated)."""
    if not rescale:
        return 1.0, None
    trained = model.info.pixel_size_nm
    if trained is None:
        return 1.0, None
    check_factor(pixel_size_nm, trained)
    if pixel_size_nm is None:
        return 1.0, (
            f"the image's pixel size is unknown; it is segmented as is (the model was "
            f"trained at {trained:.3g} nm per pixel). Give the image's pixel size: segmented at "
            f"the wrong scale, an image loses much of its accuracy"
        )
    factor = pixel_size_nm / trained
    if factor >= COARSE_FACTOR:
        return factor, (
            f"the image's pixels ({pixel_size_nm:.3g} nm) are {factor:.2g}x the model's "
            f"({trained:.3g} nm): it is enlarged to the model's scale, but the fine detail the "
            f"model tells some phases by is not there at this magnification; for such images, "
            f"train a model at their pixel size"
        )
    return factor, None


def check_factor(image_nm: float | None, model_nm: float) -> None:
    """Refuse an image whose pixel size is more than :data:`MAX_FACTOR` times the model's
    either way, with what to do instead."""
    from .errors import InputError

    if image_nm is None or not model_nm:
        return
    factor = image_nm / model_nm
    if 1 / MAX_FACTOR <= factor <= MAX_FACTOR:
        return
    way = "coarser" if factor > 1 else "finer"
    zoom = max(factor, 1 / factor)
    raise InputError(
        f"the image's pixels ({image_nm:.4g} nm) are {zoom:.3g}x {way} than the "
        f"model's ({model_nm:.4g} nm), beyond the {MAX_FACTOR:g}x that resampling can "
        f"bridge: train a model at this pixel size (rockseg train keeps the "
        f"images' own), segment as is with --no-rescale, or give the right "
        f"--pixel-size if the file's is wrong"
    )


# Texture levels: the networks tell phases (clay above all) by an image's pixel-scale texture,
# which enlarging, blurring and pixel noise change; prediction brings an image's texture back
# into the range the networks were trained on.  The rules and their held-out numbers:
# research/README.md ("texture floor", "noise ceiling", "lower magnifications").
#: enlargements in this window get texture restored (linear enlargement smooths it away;
#: above 2.5x restoring it hurt)
TEXTURE_FACTORS = (1.4, 2.5)
#: the texture restored in that window: 4 grey levels of an 8-bit image in median-normalised
#: units (full scale = 4); every level here is the shipped default's and scales with a model's
#: own training texture (``ModelInfo.texture``) relative to :data:`REFERENCE_TEXTURE`
TEXTURE_TARGET = 4 * 4.0 / 255
#: the shipped default's training images' mean texture at its scale (6.78 grey levels); models
#: that record none are taken to have it
REFERENCE_TEXTURE = 0.10640
#: images not enlarged 1.4x or more get white noise up to this texture (6 grey levels) when
#: they have less: a defocused image loses the texture the networks tell clay by
TEXTURE_FLOOR = 6 * 4.0 / 255
#: images with more texture than this (9 grey levels; the training images have up to 8.4) are
#: smoothed down to it: the excess is pixel noise
TEXTURE_CEILING = 9 * 4.0 / 255


def texture(x: np.ndarray) -> float:
    """Pixel-scale texture of an image: the robust standard deviation (1.4826 x the
    median absolute deviation) of the image minus its Gaussian blur of 1 pixel."""
    from .filters import gaussian_filter

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
    from .filters import gaussian_filter

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
    scale (:func:`restore_texture`), or None for models that do not use texture levels
    (:func:`.models.protocol.uses_texture_levels`): :data:`TEXTURE_TARGET` for enlargements
    in :data:`TEXTURE_FACTORS`, :data:`TEXTURE_FLOOR` below them, nothing above; each scaled
    by the model's own training texture (:func:`_texture_scale`)."""
    from .models.protocol import uses_texture_levels

    if not uses_texture_levels(model):
        return None
    lo, hi = TEXTURE_FACTORS
    if factor < lo:
        return TEXTURE_FLOOR * _texture_scale(model)
    return TEXTURE_TARGET * _texture_scale(model) if factor <= hi else None
