"""napari writer: a labels layer as an integer TIFF (0 = unlabelled, 1..K = classes) with its
pixel size (a labels volume with its voxel size, written slice by slice), and its class
scheme beside it as ``<name>.classes.json`` (the reader restores it)."""

from __future__ import annotations

import json

import numpy as np

from .engine import io
from .engine.classes import scheme_path


def write_labels(path: str, data, meta: dict) -> list[str]:
    scale = meta.get("scale")
    px = float(scale[-1]) if scale is not None and float(scale[-1]) != 1.0 else None
    if getattr(data, "ndim", 2) == 3:  # a labels volume (zarr-backed ones too): slice by slice
        zyx = tuple(scale[-3:]) if scale is not None else (1.0, 1.0, 1.0)
        voxel = tuple(None if float(s) == 1.0 else float(s) for s in zyx)  # 1: napari's "unknown"
        io.write_volume(path, data, voxel)
    else:
        io.write_labels(path, np.asarray(data), px)
    scheme = (meta.get("metadata") or {}).get("rockseg_scheme")
    if not scheme:
        return [path]
    side = scheme_path(path)
    io.write_text(side, json.dumps(scheme, indent=1) + "\n")
    return [path, str(side)]
