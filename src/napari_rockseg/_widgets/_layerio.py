"""Layers in and out of the widgets: an image layer as an engine image with its pixel size,
result layers with the class scheme (in memory or backed by a zarr store on disk), engine
notes in the GUI's words."""

from __future__ import annotations

import math
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._layers import labels_kwargs
from ..engine.inference.inputs import STREAM_MEGAPIXELS
from ..engine.io import SEMImage, sidecar_pixel_size
from .legend import bind_class_keys

if TYPE_CHECKING:
    pass

#: a labels volume above this many bytes (one per voxel) is segmented into a zarr store on
#: disk and shown from there, as is the volume of any lazy (dask, zarr) image layer
STORE_LABELS_BYTES = 512 * 2**20


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


# -- result layers backed by zarr stores ----------------------------------------------------
_WORK: tempfile.TemporaryDirectory | None = None


def wants_store(data) -> bool:
    """Whether the labels of this image volume go to a zarr store rather than memory: lazy
    (dask, zarr) data, or a labels volume above :data:`STORE_LABELS_BYTES`."""
    return not isinstance(data, np.ndarray) or math.prod(data.shape) > STORE_LABELS_BYTES


def work_folder() -> Path:
    """The session's folder of zarr stores behind result layers, removed when Python exits.

    A temporary directory (``TMPDIR`` picks its disk), not a folder beside the source file:
    the source may be read-only, remote or not a file at all (a dask array made in the
    console), and scratch stores beside the user's data would stay there after a crash. The
    layers are working copies until saved (File > Save Selected Layers, or Export). Labels
    compress well in zarr, so even a /tmp held in memory takes a fraction of their size."""
    global _WORK
    if _WORK is None:
        _WORK = tempfile.TemporaryDirectory(prefix="rockseg-layers-")
    return Path(_WORK.name)


def new_store(shape, dtype, what: str):
    """An empty (zero) zarr array in the work folder, one chunk per slice of up to
    1024 x 1024: napari reads and paints a slice at a time."""
    import zarr

    folder = tempfile.mkdtemp(prefix=f"{what}-", suffix=".zarr", dir=work_folder())
    h, w = shape[-2:]
    chunks = (1,) * (len(shape) - 2) + (min(h, 1024), min(w, 1024))
    return zarr.open_array(folder, mode="w", shape=shape, dtype=dtype, chunks=chunks, fill_value=0)


def drop_store(data) -> None:
    """Delete the store behind ``data`` if it is one of :func:`new_store`'s (else nothing)."""
    root = getattr(getattr(data, "store", None), "root", None)
    if root is not None and _WORK is not None and Path(root).parent == Path(_WORK.name):
        shutil.rmtree(root, ignore_errors=True)


def into_stores(run, shape, uncertainty: bool):
    """Generator: ``run(out, uncertainty_out)`` (an engine generator that writes each slice
    into them) on new zarr stores; returns (its result, labels store, uncertainty store or
    None). A failed or cancelled run deletes its stores: nothing half written stays."""
    labels = new_store(shape, np.uint8, "labels")
    unc = new_store(shape, np.float32, "uncertainty") if uncertainty else None
    try:
        result = yield from run(labels, unc)
    except BaseException:  # also GeneratorExit: the panel closes a cancelled job
        drop_store(labels)
        drop_store(unc)
        raise
    return result, labels, unc


def _replace_data(layer, data) -> None:
    old = layer.data
    layer.data = data
    if old is not data:
        drop_store(old)


def done_text(head: str, notes) -> str:
    """A panel's status after a run: ``head`` and the engine's notes in the GUI's words."""
    notes = [gui_note(n) for n in notes]
    return head + ("; " + "; ".join(notes) if notes else "")


def put_result(viewer, like_layer, scheme, labels, uncertainty=None, probabilities=None, **meta):
    """The layers of a segmentation of ``like_layer`` (numpy or zarr-backed, 2-D or 3-D):
    labels with the scheme's names and colours, and the uncertainty and class probabilities
    (hidden) when given; ``meta`` goes into the labels layer's metadata."""
    name = like_layer.name
    out = put_labels(viewer, f"{name} segmentation", labels, scheme, like_layer, **meta)
    if uncertainty is not None:
        put_image(
            viewer,
            f"{name} uncertainty",
            uncertainty,
            like_layer,
            colormap="magma",
            contrast_limits=(0, 1),
            blending="additive",
            visible=False,
        )
    if probabilities is not None:
        put_image(
            viewer,
            f"{name} probabilities",
            probabilities,
            like_layer,
            colormap="viridis",
            contrast_limits=(0, 1),
            visible=False,
        )
    return out


def put_image(viewer, name: str, data, like, **kw):
    """Add or update an image layer over ``like`` (a leading class axis is not scaled)."""
    if name in viewer.layers:
        _replace_data(viewer.layers[name], data)
        return viewer.layers[name]
    extra = data.ndim - like.ndim  # probabilities: a leading class axis
    scale = (1,) * extra + tuple(like.scale)
    translate = (0,) * extra + tuple(like.translate)
    units = ("pixel",) * extra + tuple(like.units)
    return viewer.add_image(data, name=name, scale=scale, translate=translate, units=units, **kw)


def put_labels(viewer, name: str, labels, scheme, like_layer, **meta):
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
        _replace_data(layer, labels)
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
