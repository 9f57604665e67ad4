"""Phase report dock widget: the area fraction of every class in a labels layer."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import Container, Label, PushButton, Table, create_widget

from .._layers import scheme_of_layer
from ..engine.analysis import phase_fractions
from ..engine.classes import SHALE
from ..engine.io import valid_mask
from ._worker import notify_error

if TYPE_CHECKING:
    import napari


class PhaseReportWidget(Container):
    def __init__(self, viewer: napari.viewer.Viewer):
        import napari

        self.viewer = viewer
        self.labels_layer = create_widget(annotation=napari.layers.Labels, label="labels")
        self.update_button = PushButton(text="Update")
        self.summary = Label(value="")
        self.table = Table()
        self.table.native.setMinimumHeight(160)
        super().__init__(widgets=[self.labels_layer, self.update_button, self.summary, self.table])
        self.update_button.changed.connect(self.run)
        self.labels_layer.changed.connect(self.run)
        self.result = None

    def run(self, *_):
        layer = self.labels_layer.value
        if layer is None:
            return None
        try:
            scheme = scheme_of_layer(layer, SHALE)
            data = np.asarray(layer.data)
            rows = int(layer.metadata.get("data_bar_rows", 0) or 0)
            mask = valid_mask(data.shape, rows)
            fractions = phase_fractions(data, scheme.n_classes, mask)
        except Exception as exc:
            notify_error(exc)
            return None
        px = float(layer.scale[-1]) if float(layer.scale[-1]) != 1.0 else None
        counts = [int(((data == c) & mask).sum()) for c in scheme.labels]
        table = {"class": list(scheme.names), "area %": [f"{100 * f:.2f}" for f in fractions],
                 "pixels": counts}
        if px:
            table["area µm²"] = [f"{n * (px / 1000) ** 2:.3f}" for n in counts]
        self.table.value = table
        self.summary.value = f"pixel size {px:.4g} nm" if px else "pixel size unknown (areas in pixels)"
        self.result = {"fractions": fractions.tolist(), "pixels": counts, "pixel_size_nm": px}
        return self.result
