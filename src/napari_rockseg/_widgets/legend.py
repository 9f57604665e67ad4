"""A class legend (colour, key, name, area fraction) that follows a labels layer, and the number
keys that pick the class to paint on the plugin's labels layers."""

from __future__ import annotations

import numpy as np
from magicgui.widgets import Container, Label
from qtpy.QtCore import Qt

from .._layers import display_color, scheme_of_layer
from ._state import STORE


def bind_class_keys(layer) -> None:
    """Keys 1-9 select that class as the brush's label and 0 the eraser label, on ``layer``
    only (napari's own mode keys keep their letters: E, P, F, L, Z)."""
    scheme = scheme_of_layer(layer, STORE.scheme)
    for value in range(min(9, scheme.n_classes) + 1):

        def pick(lay, value=value):
            lay.selected_label = value

        layer.bind_key(str(value), pick, overwrite=True)


def area_fractions(data, n_classes: int) -> np.ndarray:
    """Share of the labelled (non-zero) pixels in each class 1..K."""
    counts = np.bincount(np.asarray(data).ravel(), minlength=n_classes + 1)[1 : n_classes + 1]
    return counts / max(1, counts.sum())


class ClassLegend(Container):
    """One row per class: a colour swatch, its key, its name and its share of the labelled
    pixels of the layer it shows (refreshed on every data change, undo included)."""

    def __init__(self):
        super().__init__(labels=False)
        self.native.layout().setSpacing(1)
        self.tooltip = "classes of the labels layer: key to paint it, colour, name, area share"
        self.rows: list[Label] = []
        self.layer = None
        self.fractions = None

    def show(self, layer) -> None:
        self.layer = layer
        self.refresh()

    def refresh(self, *_) -> None:
        layer = self.layer
        scheme = scheme_of_layer(layer, STORE.scheme) if layer is not None else STORE.scheme
        self.fractions = None
        if layer is not None and not hasattr(layer.data, "dask") and np.asarray(layer.data).size:
            self.fractions = area_fractions(layer.data, scheme.n_classes)
        while len(self.rows) > scheme.n_classes:
            self.remove(self.rows.pop())
        while len(self.rows) < scheme.n_classes:
            row = Label(value="")
            row.native.setTextFormat(Qt.TextFormat.RichText)  # the colour swatch
            self.rows.append(row)
            self.append(row)
        for i, (row, name, rgb) in enumerate(zip(self.rows, scheme.names, scheme.colors)):
            hexa = "#{:02x}{:02x}{:02x}".format(*display_color(rgb))
            share = "" if self.fractions is None else f"  {100 * self.fractions[i]:.1f} %"
            key = f"[{i + 1}] " if i < 9 else ""
            row.value = (
                f"<span style='background:{hexa};color:{hexa}'>&nbsp;&#9632;&#9632;"
                f"&nbsp;</span>&nbsp;{key}{name}{share}"
            )
