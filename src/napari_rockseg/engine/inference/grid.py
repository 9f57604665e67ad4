"""Tile grids over an image and the weights that blend overlapping tiles."""

from __future__ import annotations

import numpy as np


def grid_starts(length: int, tile: int, step: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``length`` with ``step``;
    the last tile is aligned to the end."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile + 1, step))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


def fit_tiles(length: int, tile: int, overlap: int, multiple: int = 1) -> tuple[int, list[int]]:
    """The fewest tiles of at most ``tile`` pixels (a multiple of ``multiple``) that
    cover ``length`` with at least ``overlap`` between neighbours: (tile size, starts).
    Shrinking the tile to the image avoids computing mostly-duplicated margins."""
    if length <= tile:
        size = -(-length // multiple) * multiple
        return size, [0]
    n = -(-(length - overlap) // (tile - overlap))
    size = -(-(length + (n - 1) * overlap) // n)
    size = min(tile, -(-size // multiple) * multiple)
    starts = [int(round(i * (length - size) / (n - 1))) for i in range(n)]
    return size, starts


def blend_weights(tile, overlap: int, mode: str = "cosine") -> np.ndarray:
    """(h, w) weights (``tile`` is a size or an (h, w) pair) that fall smoothly to a
    small floor at tile edges."""
    if not isinstance(tile, int):
        h, w = tile
        return np.maximum(np.outer(_ramp(h, overlap, mode), _ramp(w, overlap, mode)), 1e-3).astype(
            np.float32
        )
    return blend_weights((tile, tile), overlap, mode)


def _ramp(tile: int, overlap: int, mode: str) -> np.ndarray:
    if mode == "cosine":
        ramp = np.ones(tile, np.float32)
        if overlap > 0:
            x = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
            r = 0.5 - 0.5 * np.cos(np.pi * x)
            ramp[:overlap] = r
            ramp[-overlap:] = r[::-1]
    elif mode == "gaussian":
        x = np.arange(tile, dtype=np.float32) - (tile - 1) / 2
        ramp = np.exp(-0.5 * (x / (tile / 8)) ** 2)
    elif mode == "constant":
        ramp = np.ones(tile, np.float32)
    else:
        raise ValueError(f"unknown blending {mode!r}")
    return ramp
