"""napari writer: a labels layer as an integer TIFF (0 = unlabelled, 1..K = classes)."""

from __future__ import annotations

import numpy as np

from .engine import io


def write_labels(path: str, data, meta: dict) -> list[str]:
    scale = meta.get("scale")
    px = float(scale[-1]) if scale is not None and float(scale[-1]) != 1.0 else None
    io.write_labels(path, np.asarray(data), px)
    return [path]
