"""Layers in and out of the widgets: an image layer as an engine image with its pixel size,
result layers with the class scheme, engine notes in the GUI's words."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._layers import labels_kwargs
from ..engine.inference.batch import STREAM_MEGAPIXELS
from ..engine.io import SEMImage, sidecar_pixel_size
from .legend import bind_class_keys

if TYPE_CHECKING:
    pass


def pixel_size_of(layer) -> float | None:
    """Pixel size in nm: the reader's metadata, else the layer's scale (set in nm by the
    reader), else the Hitachi / JEOL ``.txt`` beside the file the layer was opened from
    (a PNG, JPEG or BMP opened by napari's own reader)."""
    px = (layer.metadata or {}).get("pixel_size_nm")
    if px is None and float(layer.scale[-1]) != 1.0:
        px = float(layer.scale[-1])
    path = getattr(getattr(layer, "source", None), "path", None)
    if px is None and path:
        px = sidecar_pixel_size(Path(path))
    return px


def gui_note(note: str) -> str:
    """An engine note for the window: without the parts that point to the command line or to
    files in the repository, which a user of the plugin has neither of."""
    note = re.sub(r"\s*\((?:[^()]|\([^()]*\))*(?:rockseg |docs/)[^()]*\)", "", note)
    note = re.sub(r"[;,]?\s*(?:docs/\S+|rockseg [a-z]+ --[\w-]+)", "", note)
    note = re.sub(r"\s*\(--[\w-]+\)", "", note)  # "(--minutes)": the option's flag
    return re.sub(r"--([a-z][\w-]*)", lambda m: m.group(1).replace("-", " "), note).strip()


def is_huge(layer) -> bool:
    """Lazy (dask, zarr) or multiscale image data, or more than the in-memory limit."""
    if layer.multiscale or layer.rgb:
        return bool(layer.multiscale)
    data = layer.data
    return not isinstance(data, np.ndarray) or data.size > STREAM_MEGAPIXELS * 1e6


def image_of_layer(layer, pixel_size: float | None = None) -> SEMImage:
    """An engine image from an image layer (grey or RGB), with its pixel size
    (``pixel_size`` if given, else :func:`pixel_size_of`)."""
    from ..engine.io import to_grey

    data = np.asarray(layer.data)
    if layer.rgb:
        data = to_grey(data)
    return SEMImage(data, pixel_size or pixel_size_of(layer), None, {})


def output_name(viewer, base: str) -> str:
    """``base``, unless a layer of that name was painted by the user: then a new name."""
    name = base
    n = 2
    while name in viewer.layers and viewer.layers[name].metadata.get("rockseg_painted"):
        name = f"{base} ({n})"
        n += 1
    return name


def put_labels(viewer, name: str, labels: np.ndarray, scheme, like_layer, **meta):
    """Add or update a tool-made labels layer; never one the user painted."""
    name = output_name(viewer, name)
    kw = labels_kwargs(
        scheme,
        name,
        scale=like_layer.scale,
        translate=like_layer.translate,
        units=like_layer.units,
        metadata={"rockseg_generated": True, **meta},
    )
    if name in viewer.layers:
        layer = viewer.layers[name]
        layer.data = labels
        layer.colormap = kw["colormap"]
        layer.features = kw["features"]
        layer.metadata.update(kw["metadata"])
        return layer
    layer = viewer.add_labels(labels, **kw)
    bind_class_keys(layer)

    def mark_painted(*_):
        layer.metadata["rockseg_painted"] = True

    layer.events.paint.connect(mark_painted)
    return layer
