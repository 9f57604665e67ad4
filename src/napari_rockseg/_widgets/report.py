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
from ._export import export_results
from ._layerio import pixel_size_of
from ._plot import FigureBox
from ._worker import fit_table, notify_error, notify_info, save_to, show_table, wrap_label
from .legend import ClassLegend
from .volume import (
    VolumeReportOptions,
    export_volume_results,
    is_volume_layer,
    volume_csv,
    volume_summary,
    volume_table,
)

if TYPE_CHECKING:
    import napari


def format_area(um2: float) -> str:
    """µm² that read at a glance: 3 significant decimals, thousands separated, nm² when tiny."""
    if um2 == 0:
        return "0"
    if abs(um2) < 0.001:
        return f"{um2 * 1e6:,.0f} nm²"
    if abs(um2) < 1:
        return f"{um2:.3f}"
    return f"{um2:,.2f}"


class PoreHistogram(FigureBox):
    def __init__(self):
        super().__init__(2.2, 190)
        self.ax = self.figure.add_subplot(111)

    def show(self, pores: dict | None, counted: str = "pores"):
        self.ax.clear()
        self.ax.set_title("pore-size distribution", fontsize=9)
        if pores and pores["histogram"]["counts"]:
            edges = np.asarray(pores["histogram"]["edges"])
            self.ax.bar(
                edges[:-1],
                pores["histogram"]["counts"],
                width=np.diff(edges),
                align="edge",
                color="tab:green",
                edgecolor="black",
                linewidth=0.4,
            )
            self.ax.set_xscale("log")
            from matplotlib.ticker import LogLocator, NullFormatter

            # one labelled tick per decade: minor labels on a short log axis overlap
            self.ax.xaxis.set_major_locator(LogLocator(base=10, numticks=6))
            self.ax.xaxis.set_minor_formatter(NullFormatter())
            self.ax.set_xlabel(f"equivalent diameter ({pores['unit']})", fontsize=8)
            self.ax.set_ylabel(counted, fontsize=8)
        self.ax.tick_params(labelsize=7)
        self.canvas.draw_idle()


class PhaseReportWidget(Container):
    def __init__(self, viewer: napari.viewer.Viewer):
        import napari

        self.viewer = viewer
        self.labels_layer = create_widget(
            annotation=napari.layers.Labels,
            label="labels",
            options={"tooltip": "the segmentation to measure"},
        )
        self.min_size = SpinBox(
            label="min object size (px)",
            value=1,
            min=1,
            max=100000,
            tooltip="smaller objects are not counted",
        )
        self.exclude_border = CheckBox(
            text="exclude pores touching the border",
            value=False,
            tooltip="their true size is unknown",
        )
        self.auto_update = CheckBox(
            text="update while painting",
            value=True,
            tooltip="recompute after every change, undo included",
        )
        self.update_button = PushButton(text="Update", tooltip="recompute the report now")
        self.volume = VolumeReportOptions()
        self.summary = wrap_label(Label(value=""))
        self.legend = ClassLegend()
        self.table = Table()
        self.table.native.setMinimumHeight(160)
        fit_table(self.table)
        self.histogram = PoreHistogram()
        self.csv_path = FileEdit(
            label="export CSV",
            mode="w",
            filter="*.csv",
            tooltip="file for the report's summary row",
        )
        self.export_button = PushButton(text="Export CSV", tooltip="write the summary row as CSV")
        self.image = create_widget(
            annotation=napari.layers.Image,
            label="image (overlay)",
            options={"tooltip": "the image under the labels, for the overlay PNG"},
        )
        self.results_dir = FileEdit(
            label="results folder", mode="d", tooltip="folder for all results of this labels layer"
        )
        self.export_all_button = PushButton(
            text="Export results",
            tooltip="labels TIFF (+ classes JSON), overlay PNG, report CSV "
            "and JSON, in the folder above",
        )
        super().__init__(
            widgets=[
                self.labels_layer,
                self.min_size,
                self.exclude_border,
                self.auto_update,
                self.update_button,
                self.volume,
                self.summary,
                self.legend,
                self.table,
                self.histogram,
                self.csv_path,
                self.export_button,
                self.image,
                self.results_dir,
                self.export_all_button,
            ]
        )
        self.export_all_button.changed.connect(self.export_all)
        self.update_button.changed.connect(self.run)
        self.volume.panel.run_button.changed.connect(self.run)
        self.labels_layer.changed.connect(self._watch)
        self.export_button.changed.connect(self.export)
        self.result = None
        self._watched = None
        from qtpy.QtCore import QTimer

        self._timer = QTimer()
        self._timer.setSingleShot(True)
        self._timer.setInterval(150)
        self._timer.timeout.connect(self._auto)
        self._watch()

    def _watch(self, *_):
        if self._watched is not None:
            self._watched.events.paint.disconnect(self._paint_callback)
            self._watched.events.data.disconnect(self._paint_callback)
            self._watched.events.set_data.disconnect(self._paint_callback)
        layer = self.labels_layer.value
        self._watched = layer
        if layer is not None:
            # paint: strokes; set_data: undo / redo (napari refreshes); data: a new array
            layer.events.paint.connect(self._paint_callback)
            layer.events.data.connect(self._paint_callback)
            layer.events.set_data.connect(self._paint_callback)
        three_d = is_volume_layer(layer)
        self.volume.visible = three_d
        for w in (self.update_button, self.auto_update, self.min_size, self.exclude_border):
            w.visible = not three_d  # 2-D only: a volume's report runs in the background
        self._auto()

    def _auto(self, *_):
        """Recompute a 2-D report at once; a volume's on request (Compute 3-D report)."""
        layer = self.labels_layer.value
        if is_volume_layer(layer):
            self.result = None
            self.legend.show(layer)
            self.summary.value = "a volume: choose what to measure, then Compute 3-D report"
            return None
        return self.run()

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
        if is_volume_layer(layer):
            return self.volume.start(layer, lambda report: self._show_volume(layer, report))
        try:
            scheme = scheme_of_layer(layer, SHALE)
            data = np.asarray(layer.data)
            mask = valid_mask(data.shape, int(layer.metadata.get("data_bar_rows", 0) or 0))
            report = rock_report(
                data,
                scheme,
                pixel_size_of(layer),
                mask,
                self.min_size.value,
                self.exclude_border.value,
            )
        except Exception as exc:
            notify_error(exc, "the phase report")
            return None
        self.legend.show(layer)
        px = report["pixel_size_nm"]
        rows = {"class": [], "area %": [], "objects": []}
        if px:
            rows["µm²"] = []
        for name, c in report["classes"].items():
            rows["class"].append(name)
            rows["area %"].append(f"{100 * c['fraction']:.2f}")
            rows["objects"].append(c["objects"])
            if px:
                rows["µm²"].append(format_area(c["area_um2"]))
        show_table(self.table, rows)
        lines = [f"pixel size {px:.4g} nm" if px else "pixel size unknown (sizes in pixels)"]
        if "porosity" in report:
            lines.append(f"porosity {100 * report['porosity']:.3f} %")
        pores = report.get("pores")
        if pores and pores["count"]:
            lines.append(
                f"pores {pores['count']}: d10 {pores['d10']:.1f}, d50 {pores['d50']:.1f}, "
                f"d90 {pores['d90']:.1f} {pores['unit']}"
            )
        if report.get("organic_hosted_pore_share") is not None:
            lines.append(
                f"organic-hosted pore area {100 * report['organic_hosted_pore_share']:.1f} %"
            )
        self.summary.value = "\n".join(lines)
        self.histogram.show(pores)
        self.result = report
        return report

    def _show_volume(self, layer, report: dict) -> None:
        if layer is not self.labels_layer.value:  # another layer was picked meanwhile
            return
        self.legend.show(layer)
        show_table(self.table, volume_table(report))
        self.summary.value = volume_summary(report)
        self.histogram.show(report.get("pore_sizes"), "voxels")
        self.result = report

    def export(self, *_):
        if self.result is None:
            notify_error("pick a labels layer first (a volume: Compute 3-D report)")
            return None
        if self.result.get("dimensions") == 3:
            text = volume_csv(self.result)
        else:
            row = summary_row(self.result)
            text = (
                ",".join(row)
                + "\n"
                + ",".join("" if v is None else str(v) for v in row.values())
                + "\n"
            )
        return save_to(self.csv_path, ".csv", "CSV report", lambda path: write_text(path, text))

    def export_all(self, *_):
        """Labels TIFF (+ scheme), overlay PNG, report CSV and JSON, named after the layer."""
        layer = self.labels_layer.value
        folder = str(self.results_dir.value)
        if layer is None or self.result is None:
            notify_error("pick a labels layer first")
            return None
        if not folder or folder == ".":
            notify_error("choose a results folder")
            return None
        try:
            if self.result.get("dimensions") == 3:
                paths = export_volume_results(folder, layer, self.result)
            else:
                paths = export_results(folder, layer, self.image.value, self.result)
        except Exception as exc:
            notify_error(exc, "exporting the results")
            return None
        notify_info(f"wrote {len(paths)} files to {folder}")
        return paths
