"""Registering serial sections (FIB-SEM drift correction).

Each slice's (dy, dx) translation is found by phase correlation against the
previous (or the first) slice, chained into shifts relative to slice 0, and
applied by linear interpolation (exact copies for whole-pixel shifts).
Cropping keeps the region that every shifted slice covers, so no slice
contributes fill values.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
from scipy import fft as sfft
from scipy import ndimage as ndi

from .errors import InputError
from .events import Progress, drain

#: pixel noise below this scale (px) and shading above a fraction of the image
#: size carry no registration signal; both are filtered out before correlating
_NOISE_SIGMA = 1.0
_SHADING_FRACTION = 1 / 8
#: overlap (px) below which a sub-pixel refinement is not attempted
_MIN_OVERLAP = 32
#: FFT threads: the cores this process may use
_WORKERS = max(
    1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
)


class Alignment(NamedTuple):
    """``aligned``: the registered volume (numpy, or dask when the input was lazy);
    ``shifts``: (n, 2) float (dy, dx) applied to each slice, slice 0 = (0, 0);
    ``box``: (y0, y1, x0, x1), the part of the input frame that ``aligned`` covers
    (the region valid in every slice with ``crop=True``, else the whole frame)."""

    aligned: Any
    shifts: np.ndarray
    box: tuple[int, int, int, int]


def align_steps(
    volume_data,
    reference: str = "previous",
    upsample: int = 10,
    max_shift: float | None = None,
    crop: bool = True,
    fill: float = 0,
):
    """Register the slices of a (z, y, x) volume; yields ``Progress``, returns ``Alignment``.

    ``reference``: "previous" registers each slice to the one before it (follows
    slowly changing structure; errors add up along the stack) or "first" to
    slice 0 (no accumulation; needs structure that persists).  ``upsample``:
    sub-pixel precision 1/upsample px.  ``max_shift``: the largest shift (px) one
    slice may have against its reference; limits the search where repeating
    texture makes far peaks.  ``crop``: keep only the region valid in every slice
    (``Alignment.box`` says which); else the uncovered margins get ``fill``.
    """
    if getattr(volume_data, "ndim", None) != 3 or 0 in volume_data.shape:
        raise InputError(
            f"alignment needs a 3-D volume (z, y, x), not shape "
            f"{getattr(volume_data, 'shape', None)}"
        )
    if reference not in ("previous", "first"):
        raise InputError(f"reference must be 'previous' or 'first', not {reference!r}")
    if int(upsample) < 1:
        raise InputError(f"upsample must be 1 or more, not {upsample}")
    if max_shift is not None and max_shift < 0:
        raise InputError(f"max_shift must be a number of pixels >= 0, not {max_shift}")
    n = int(volume_data.shape[0])
    shifts = np.zeros((n, 2))
    ref, ref_shift, ref_index = None, np.zeros(2), None
    for i in range(n):
        plane = np.asarray(volume_data[i], dtype=np.float32)
        message = ""
        if plane.std() == 0:
            shifts[i] = ref_shift  # a blank slice has nothing to register; keep it in place
            message = f"slice {i} is blank; left unshifted against slice {ref_index}"
        elif ref is None:
            ref, ref_index = (plane, _spectrum(plane)), i
        else:
            spec = _spectrum(plane)
            shifts[i] = ref_shift + _register(*ref, plane, spec, upsample, max_shift)
            if reference == "previous":
                ref, ref_shift, ref_index = (plane, spec), shifts[i], i
        yield Progress(
            "register",
            i + 1,
            n,
            message=message or f"slice {i}: dy {shifts[i, 0]:+.2f}, dx {shifts[i, 1]:+.2f} px",
        )
    result = yield from apply_shifts_steps(volume_data, shifts, crop=crop, fill=fill)
    return result


def align(
    volume_data,
    reference: str = "previous",
    upsample: int = 10,
    max_shift: float | None = None,
    crop: bool = True,
    fill: float = 0,
) -> Alignment:
    """``align_steps`` run to its end."""
    return drain(align_steps(volume_data, reference, upsample, max_shift, crop, fill))


def register(
    reference: np.ndarray, moving: np.ndarray, upsample: int = 10, max_shift: float | None = None
) -> np.ndarray:
    """The (dy, dx) that moves ``moving`` onto ``reference`` (``ndi.shift(moving, s)``
    matches it): a whole-pixel peak of the band-passed cross-correlation, limited
    to ``max_shift``, refined by ``phase_cross_correlation`` on the overlap."""
    reference = np.asarray(reference, np.float32)
    moving = np.asarray(moving, np.float32)
    if reference.shape != moving.shape:
        raise InputError(
            f"slices of shapes {reference.shape} and {moving.shape} cannot be "
            "registered; all slices of a volume must have one size"
        )
    return _register(
        reference, _spectrum(reference), moving, _spectrum(moving), upsample, max_shift
    )


def _spectrum(plane: np.ndarray) -> np.ndarray:
    return sfft.rfft2(_prepare(plane), workers=_WORKERS)


def _register(reference, ref_spec, moving, mov_spec, upsample, max_shift) -> np.ndarray:
    """``register`` with both slices' prepared spectra given (each slice of a stack
    is prepared once, then serves as moving and as reference)."""
    from skimage.registration import phase_cross_correlation

    coarse = _coarse_shift(ref_spec, mov_spec, reference.shape, max_shift)
    (ry, my), (rx, mx) = (_overlap(s, n) for s, n in zip(coarse, reference.shape))
    if min(ry.stop - ry.start, rx.stop - rx.start) < _MIN_OVERLAP:
        return coarse.astype(float)
    ref_crop, mov_crop = _prepare(reference[ry, rx]), _prepare(moving[my, mx])
    fine = phase_cross_correlation(
        ref_crop, mov_crop, upsample_factor=int(upsample), normalization=None
    )[0]
    if np.abs(fine).max() > 1.5:  # the refinement jumped to another peak: keep the coarse one
        return coarse.astype(float)
    return coarse + np.asarray(fine, float)


def _overlap(shift: int, size: int) -> tuple[slice, slice]:
    """Rows (or columns) of the reference and of the moving slice that overlap
    when the moving one is shifted by ``shift`` whole pixels."""
    return slice(max(0, shift), size + min(0, shift)), slice(max(0, -shift), size - max(0, shift))


def _prepare(plane: np.ndarray) -> np.ndarray:
    """Normalised, band-passed (noise and shading removed) and Hann-windowed, so the
    correlation follows structure, not brightness, noise or the image border."""
    plane = (plane - plane.mean()) / max(float(plane.std()), 1e-12)
    np.clip(plane, -5, 5, out=plane)  # saturated specks and charging must not dominate
    spec = sfft.rfft2(plane, workers=_WORKERS) * _band(plane.shape)
    return sfft.irfft2(spec, s=plane.shape, workers=_WORKERS) * _window(plane.shape)


@lru_cache(maxsize=8)
def _band(shape: tuple[int, int]) -> np.ndarray:
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    f2 = fy**2 + fx**2
    low = np.exp(-2 * math.pi**2 * _NOISE_SIGMA**2 * f2)
    sigma_hi = max(min(shape) * _SHADING_FRACTION, 2.0)
    return (low * (1 - np.exp(-2 * math.pi**2 * sigma_hi**2 * f2))).astype(np.float32)


@lru_cache(maxsize=8)
def _window(shape: tuple[int, int]) -> np.ndarray:
    return np.outer(np.hanning(shape[0]), np.hanning(shape[1])).astype(np.float32)


def _coarse_shift(ref_spec, mov_spec, shape, max_shift: float | None) -> np.ndarray:
    """Whole-pixel peak of the cross-correlation, searched within ``max_shift``."""
    corr = sfft.irfft2(ref_spec * np.conj(mov_spec), s=shape, workers=_WORKERS)
    if max_shift is not None:
        limit = math.floor(max_shift)
        for axis, size in enumerate(corr.shape):
            lag = np.fft.ifftshift(np.arange(size) - size // 2)  # signed lag of each index
            far = np.abs(lag) > limit
            corr[(slice(None),) * axis + (far,)] = -np.inf
    peak = np.array(np.unravel_index(np.argmax(corr), corr.shape))
    size = np.array(corr.shape)
    return np.where(peak > size // 2, peak - size, peak)


def valid_box(shifts: np.ndarray, shape) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of the frame that every slice covers after its shift."""
    shifts = np.asarray(shifts, float)
    h, w = int(shape[0]), int(shape[1])
    # 1e-6: shifts summed from 1/upsample steps are whole numbers only up to rounding
    lo = np.ceil(shifts - 1e-6).max(axis=0).clip(0).astype(int)
    hi = np.floor(shifts + 1e-6).min(axis=0).clip(None, 0).astype(int)
    box = (int(lo[0]), h + int(hi[0]), int(lo[1]), w + int(hi[1]))
    if box[1] <= box[0] or box[3] <= box[2]:
        raise InputError(
            f"the slices drifted apart by more than the image size (shifts up to "
            f"{np.abs(shifts).max():.0f} px); set max_shift or crop=False"
        )
    return box


def shift_slice(plane: np.ndarray, shift, order: int = 1, fill: float = 0) -> np.ndarray:
    """``plane`` moved by (dy, dx), same shape and dtype; whole-pixel shifts copy
    exactly, others interpolate (``order`` 1: linear; 0: nearest, for labels)."""
    plane = np.asarray(plane)
    shift = np.asarray(shift, float)
    whole = np.round(shift)
    if np.abs(shift - whole).max() < 1e-6 or order == 0:
        out = np.full_like(plane, fill)
        (dst_y, src_y), (dst_x, src_x) = (_overlap(int(s), n) for s, n in zip(whole, plane.shape))
        out[dst_y, dst_x] = plane[src_y, src_x]
        return out
    moved = ndi.shift(plane.astype(np.float32), shift, order=order, mode="constant", cval=fill)
    if plane.dtype.kind in "iub":
        info = np.iinfo(plane.dtype) if plane.dtype.kind != "b" else None
        moved = np.round(moved)
        if info is not None:
            moved = moved.clip(info.min, info.max)
    return moved.astype(plane.dtype)


def apply_shifts_steps(volume_data, shifts, crop: bool = True, order: int = 1, fill: float = 0):
    """Move each slice by its (dy, dx); yields ``Progress``, returns ``Alignment``.

    Lazy input (dask, zarr) gives a lazy result shifted slice by slice on demand;
    ``order=0`` moves label volumes without mixing labels."""
    shifts = np.asarray(shifts, float)
    n, h, w = (int(s) for s in volume_data.shape)
    if shifts.shape != (n, 2):
        raise InputError(f"shifts must be (slices, 2) = ({n}, 2), not {shifts.shape}")
    box = valid_box(shifts, (h, w)) if crop else (0, h, 0, w)
    y0, y1, x0, x1 = box
    if not isinstance(volume_data, np.ndarray):
        import dask
        import dask.array as da

        def moved(i):
            return shift_slice(np.asarray(volume_data[i]), shifts[i], order, fill)[y0:y1, x0:x1]

        planes = [
            da.from_delayed(dask.delayed(moved)(i), (y1 - y0, x1 - x0), volume_data.dtype)
            for i in range(n)
        ]
        yield Progress("shift", n, n, message="lazy: slices are shifted when read")
        return Alignment(da.stack(planes), shifts, box)
    out = np.empty((n, y1 - y0, x1 - x0), volume_data.dtype)
    for i in range(n):
        out[i] = shift_slice(volume_data[i], shifts[i], order, fill)[y0:y1, x0:x1]
        yield Progress("shift", i + 1, n)
    return Alignment(out, shifts, box)


def apply_shifts(
    volume_data, shifts, crop: bool = True, order: int = 1, fill: float = 0
) -> Alignment:
    """``apply_shifts_steps`` run to its end (e.g. to move labels by the grey volume's shifts)."""
    return drain(apply_shifts_steps(volume_data, shifts, crop, order, fill))
