"""napari layer data for engine results: class names and colours on labels layers."""

from __future__ import annotations

import numpy as np

from .engine.classes import ClassScheme

#: shown instead of near-black class colours, which vanish over dark rock at 60 % opacity
DARK_STAND_IN = (64, 160, 255)


def display_color(rgb) -> tuple[int, int, int]:
    """The colour a class is drawn in: its own, unless it is too dark to see over an image."""
    r, g, b = rgb
    return DARK_STAND_IN if 0.299 * r + 0.587 * g + 0.114 * b < 40 else tuple(rgb)


def labels_colormap(scheme: ClassScheme):
    from napari.utils.colormaps import DirectLabelColormap

    colors = {0: np.zeros(4), None: np.zeros(4)}
    for i, (label, rgb) in enumerate(zip(scheme.labels, scheme.colors)):
        # the "rest" class (mineral grain) covers most of an image: keep the rock visible through it
        alpha = 0.35 if i == scheme.rest else 1.0
        colors[label] = np.array([*(c / 255 for c in display_color(rgb)), alpha])
    return DirectLabelColormap(color_dict=colors)


def labels_features(scheme: ClassScheme) -> dict:
    return {"index": [0, *scheme.labels], "class": ["unlabelled", *scheme.names]}


def labels_kwargs(
    scheme: ClassScheme, name: str, scale=None, translate=None, units=None, **extra
) -> dict:
    """Keyword arguments of a labels layer that shows the scheme's names and colours."""
    kw = {
        "name": name,
        "colormap": labels_colormap(scheme),
        "features": labels_features(scheme),
        "metadata": {"rockseg_scheme": scheme.to_dict(), **extra.pop("metadata", {})},
        "opacity": 0.6,
    }
    if scale is not None:
        kw["scale"] = scale
    if translate is not None:
        kw["translate"] = translate
    if units is not None:
        kw["units"] = units
    kw.update(extra)
    return kw


def apply_scheme(layer, scheme: ClassScheme) -> None:
    """Give an existing labels layer the scheme's names, colours and metadata."""
    kw = labels_kwargs(scheme, layer.name)
    layer.colormap = kw["colormap"]
    layer.features = kw["features"]
    layer.metadata["rockseg_scheme"] = scheme.to_dict()


def image_kwargs(image, name: str) -> dict:
    """Keyword arguments of an image layer for an :class:`~.engine.io.SEMImage`."""
    px = image.pixel_size_nm
    kw = {
        "name": name,
        "metadata": {"pixel_size_nm": px, "source": str(image.path) if image.path else None},
    }
    if px:
        kw["scale"] = (px, px)
        kw["units"] = ("nm", "nm")
    return kw


def scheme_of_layer(layer, default: ClassScheme) -> ClassScheme:
    data = (getattr(layer, "metadata", None) or {}).get("rockseg_scheme")
    return ClassScheme.from_dict(data) if data else default
