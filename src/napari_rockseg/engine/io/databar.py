"""The microscope's data bar (an annotation strip at the bottom of SEM images): detection and masks."""

from __future__ import annotations

import numpy as np

from ..errors import InputError

#: The original work evaluates images whose height is a multiple of 16 (688
#: rows of a 768-row Zeiss image); the data bar is widened up to that grid.
DATA_BAR_GRID = 16


def detect_data_bar(grey: np.ndarray, max_fraction: float = 0.25, flat: float = 0.5) -> int:
    """Height in rows of the microscope's data bar at the bottom (0 if none).

    A data bar is a block of bottom rows drawn on a flat background: in each
    of them one grey value covers most pixels, which rows of a real SEM image
    never do.  The height is then widened so that the image above it has a
    multiple of ``DATA_BAR_GRID`` rows, as in the original evaluation.
    """
    grey = np.asarray(grey)
    h, w = grey.shape[:2]
    limit = int(h * max_fraction)
    is_flat = []
    for r in range(h - 1, h - 1 - limit, -1):
        _, counts = np.unique(grey[r], return_counts=True)
        is_flat.append(counts.max() >= flat * w)
    # the last row or two of some detectors hold noise below the bar
    skip = next((i for i, f in enumerate(is_flat[:4]) if f), None)
    if skip is None:
        return 0
    run = 0
    for f in is_flat[skip:]:
        if not f:
            break
        run += 1
    if run < 8:  # a line or two of saturated pixels is not a data bar
        return 0
    rows = skip + run
    keep = ((h - rows) // DATA_BAR_GRID) * DATA_BAR_GRID
    return h - keep if keep > 0 else rows


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
