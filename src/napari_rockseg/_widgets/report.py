"""Phase report dock widget: porosity, phase fractions, organic-hosted pores and
the pore-size distribution of a labels layer, updated as the user paints."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import (
    CheckBox,
    Container,
    FileEdit,
    Label,
    PushButton,
    SpinBox,
    Table,
    create_widget,
)

from .._layers import scheme_of_layer
from ..engine.analysis.rock import rock_report, summary_row
from ..engine.classes import SHALE
from ..engine.io import valid_mask, write_text
from ._plot import FigureBox
from ._worker import fit_table, notify_error, save_to
from .segment import pixel_size_of

if TYPE_CHECKING:
    import napari


class PoreHistogram(FigureBox):
    def __init__(self):
        super().__init__(2.2, 190)
        self.ax = self.figure.add_subplot(111)

    def show(self, pores: dict | None):
        self.ax.clear()
        self.ax.set_title("pore-size distribution", fontsize=9)
        if pores and pores["histogram"]["counts"]:
            edges = np.asarray(pores["histogram"]["edges"])
            self.ax.bar(edges[:-1], pores["histogram"]["counts"], width=np.diff(edges), align="edge",
                        color="tab:green", edgecolor="black", linewidth=0.4)
            self.ax.set_xscale("log")
            self.ax.set_xlabel(f"equivalent diameter ({pores['unit']})", fontsize=8)
            self.ax.set_ylabel("pores", fontsize=8)
        self.ax.tick_params(labelsize=7)
        self.canvas.draw_idle()


class PhaseReportWidget(Container):
    def __init__(self, viewer: napari.viewer.Viewer):
        import napari

        self.viewer = viewer
        self.labels_layer = create_widget(annotation=napari.layers.Labels, label="labels")
        self.min_size = SpinBox(label="min object size (px)", value=1, min=1, max=100000)
        self.exclude_border = CheckBox(text="exclude pores touching the border", value=False)
        self.auto_update = CheckBox(text="update while painting", value=True)
        self.update_button = PushButton(text="Update")
        self.summary = Label(value="")
        self.table = Table()
        self.table.native.setMinimumHeight(160)
        fit_table(self.table)
        self.histogram = PoreHistogram()
        self.csv_path = FileEdit(label="export CSV", mode="w", filter="*.csv")
        self.export_button = PushButton(text="Export CSV")
        super().__init__(widgets=[self.labels_layer, self.min_size, self.exclude_border, self.auto_update,
                                  self.update_button, self.summary, self.table, self.histogram,
                                  self.csv_path, self.export_button])
        self.update_button.changed.connect(self.run)
        self.labels_layer.changed.connect(self._watch)
        self.export_button.changed.connect(self.export)
        self.result = None
        self._watched = None
        from qtpy.QtCore import QTimer

        self._timer = QTimer()
        self._timer.setSingleShot(True)
        self._timer.setInterval(150)
        self._timer.timeout.connect(self.run)
        self._watch()

    def _watch(self, *_):
        if self._watched is not None:
            self._watched.events.paint.disconnect(self._paint_callback)
        layer = self.labels_layer.value
        self._watched = layer
        if layer is not None:
            layer.events.paint.connect(self._paint_callback)
        self.run()

    def _paint_callback(self, event=None):
        self.on_paint()

    def on_paint(self, *_):
        # napari emits `paint` before it writes the new values, and a stroke
        # emits many: recompute once, shortly after the last one
        if self.auto_update.value:
            self._timer.start()

    def run(self, *_):
        layer = self.labels_layer.value
        if layer is None:
            return None
        try:
            scheme = scheme_of_layer(layer, SHALE)
            data = np.asarray(layer.data)
            mask = valid_mask(data.shape, int(layer.metadata.get("data_bar_rows", 0) or 0))
            report = rock_report(data, scheme, pixel_size_of(layer), mask, self.min_size.value,
                                 self.exclude_border.value)
        except Exception as exc:
            notify_error(exc)
            return None
        px = report["pixel_size_nm"]
        rows = {"class": [], "area %": [], "objects": []}
        if px:
            rows["µm²"] = []
        for name, c in report["classes"].items():
            rows["class"].append(name)
            rows["area %"].append(f"{100 * c['fraction']:.2f}")
            rows["objects"].append(c["objects"])
            if px:
                rows["µm²"].append(f"{c['area_um2']:.3f}")
        self.table.value = rows
        lines = [f"pixel size {px:.4g} nm" if px else "pixel size unknown (sizes in pixels)"]
        if "porosity" in report:
            lines.append(f"porosity {100 * report['porosity']:.2f} %")
        pores = report.get("pores")
        if pores and pores["count"]:
            lines.append(f"pores {pores['count']}: d10 {pores['d10']:.1f}, d50 {pores['d50']:.1f}, "
                         f"d90 {pores['d90']:.1f} {pores['unit']}")
        if report.get("organic_hosted_pore_share") is not None:
            lines.append(f"organic-hosted pore area {100 * report['organic_hosted_pore_share']:.1f} %")
        self.summary.value = "\n".join(lines)
        self.histogram.show(pores)
        self.result = report
        return report

    def export(self, *_):
        if self.result is None:
            notify_error(ValueError("pick a labels layer first"))
            return None
        row = summary_row(self.result)
        text = ",".join(row) + "\n" + ",".join("" if v is None else str(v) for v in row.values()) + "\n"
        return save_to(self.csv_path, ".csv", "CSV report", lambda path: write_text(path, text))
