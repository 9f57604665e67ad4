"""The microscope's data bar (an annotation strip at the bottom of SEM images): detection and masks.

A data bar is recognised by what it is, not by where it might be: a strip of
bottom rows spanning the full width, drawn on one flat background with thin
high-contrast strokes (text, scale bar) and almost no intermediate grey, that
starts at a sharp horizontal boundary below image rows of rich grey.  The flat
padding outside a CT reconstruction's circular field of view, saturated rows,
or a dark image bottom have no such strip, so nothing is cut from them."""

from __future__ import annotations

import numpy as np

from ..errors import InputError

#: The original work evaluates images whose height is a multiple of 16 (688
#: rows of a 768-row Zeiss image); the data bar is widened up to that grid.
DATA_BAR_GRID = 16
_BINS = 64  # grey levels are compared in 64 bins of the image's range
_NEAR = 2  # bins from the background that still count as background (JPEG noise)
_STROKE = 0.25  # a stroke differs from the background by a quarter of the range
_MIN_ROWS = 8  # a line or two of saturated pixels is not a data bar
_SEGMENTS = 8  # the background must show in every eighth of the width


def _row_stats(q: np.ndarray, bottom_rows: int = 12):
    """Per row of ``q`` (grey scaled to 0..1, NaN = unknown): its commonest bin, and
    which pixels are near the background (the commonest bin of the bottom rows,
    where a bar would be) or high-contrast strokes on it."""
    level = np.round(np.nan_to_num(q, nan=0.0) * (_BINS - 1))
    bins = np.where(np.isnan(q), -100, level).astype(int)
    counts = np.stack([np.bincount(b[b >= 0], minlength=_BINS) for b in bins])
    mode = counts.argmax(axis=1)
    background = np.bincount(mode[-bottom_rows:]).argmax()
    near = np.abs(bins - background) <= _NEAR
    stroke = np.abs(q - background / (_BINS - 1)) >= _STROKE
    return mode, near, stroke


def _scaled(grey: np.ndarray) -> np.ndarray | None:
    g = np.asarray(grey, dtype=np.float32)
    finite = g[np.isfinite(g)]
    if finite.size == 0:
        return None
    sample = finite[:: max(1, finite.size // 200_000)]
    lo, hi = np.percentile(sample, [0.1, 99.9])
    lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
    if hi <= lo:
        return None
    return np.clip((g - lo) / (hi - lo), 0.0, 1.0)


def detect_data_bar(grey: np.ndarray, max_fraction: float = 0.25) -> int:
    """Height in rows of the microscope's data bar at the bottom (0 if none).

    The height is widened so that the image above it has a multiple of
    ``DATA_BAR_GRID`` rows, as in the original evaluation."""
    grey = np.asarray(grey)
    if grey.ndim != 2:
        return 0
    h, w = grey.shape
    limit = min(h - 1, int(h * max_fraction))
    if limit < _MIN_ROWS or w < _SEGMENTS:
        return 0
    q = _scaled(grey[h - limit - 4 :])  # a few rows above the deepest bar for the boundary
    if q is None:
        return 0
    mode, near, stroke = _row_stats(q)
    near_f, mid_f = near.mean(axis=1), 1.0 - (near | stroke).mean(axis=1)
    bar_like = (near_f >= 0.5) & (mid_f <= 0.15)
    n = len(q)
    bottom = next((i for i in range(4) if bar_like[n - 1 - i]), None)  # noise rows below some bars
    if bottom is None:
        return 0
    top = n - 1 - bottom
    while top > 0 and bar_like[top - 1]:
        top -= 1
    rows = n - top
    if (
        rows - bottom < _MIN_ROWS
        or top < 4
        or not _is_bar(mode, near, stroke, near_f, top, n - bottom)
    ):
        return 0
    keep = ((h - rows) // DATA_BAR_GRID) * DATA_BAR_GRID
    return h - keep if keep > 0 else rows


def _is_bar(mode, near, stroke, near_f, top: int, end: int) -> bool:
    """Rows ``top:end`` are a data bar: one background, full width, text on it, a sharp start."""
    strip_modes = mode[top:end]
    background = np.bincount(strip_modes).argmax()
    if np.mean(np.abs(strip_modes - background) <= _NEAR) < 0.8:
        return False  # a bar has one background colour
    segments = np.array_split(near[top:end], _SEGMENTS, axis=1)
    if min(s.mean() for s in segments) < 0.3:
        return False  # something other than background fills part of the width (a CT chord)
    text = stroke[top:end].mean()
    if not 0.0005 <= text <= 0.5 or stroke[top:end].any(axis=1).sum() < 2:
        return False  # blank padding, not an annotation strip
    if near_f[top] < 0.9 and near_f[top + 1] < 0.9:
        return False  # a bar starts with a flat full-width edge
    return bool(near_f[top - 4 : top].mean() < 0.7)  # above it: the image, not more flat rows


def valid_mask(shape, data_bar: int) -> np.ndarray:
    mask = np.ones(shape, dtype=bool)
    if data_bar:
        mask[shape[0] - data_bar :] = False
    return mask


def resolve_data_bar(grey: np.ndarray, data_bar: int | None) -> int:
    """``None`` -> detect; an explicit number of rows is checked and used."""
    if data_bar is None:
        return detect_data_bar(grey)
    if data_bar < 0 or data_bar >= grey.shape[0]:
        raise InputError(f"--data-bar {data_bar} must be between 0 and {grey.shape[0] - 1} rows")
    return int(data_bar)
