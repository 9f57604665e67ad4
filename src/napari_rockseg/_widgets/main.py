"""The whole plugin in one dock: tabs (Segment, Train, Evaluate, Report, Classes), each in a
scroll area, so that everything fits a 1366 x 768 laptop screen."""

from __future__ import annotations

from typing import TYPE_CHECKING

from qtpy.QtWidgets import QScrollArea, QTabWidget, QVBoxLayout, QWidget

if TYPE_CHECKING:
    import napari

#: wide enough for the labelled fields and tables, narrow enough to leave the canvas most of 1366 px
DOCK_WIDTH = 380


class RockSegDock(QWidget):
    def __init__(self, viewer: napari.viewer.Viewer):
        from .classes import SchemeEditor
        from .evaluate import EvaluateWidget
        from .report import PhaseReportWidget
        from .segment import SegmentWidget
        from .train import TrainWidget

        super().__init__()
        self.viewer = viewer
        self.segment = SegmentWidget(viewer)
        self.train = TrainWidget(viewer)
        self.evaluate = EvaluateWidget(viewer)
        self.report = PhaseReportWidget(viewer)
        self.classes = SchemeEditor(viewer)
        self.tabs = QTabWidget()
        tips = {
            "Segment": "run a model on an image",
            "Train": "train or fine-tune on painted labels",
            "Evaluate": "score a segmentation against ground truth",
            "Report": "porosity, phase fractions, pore sizes; export all results",
            "Classes": "the rock's classes: names, colours, values; legend",
        }
        for title, w in (
            ("Segment", self.segment),
            ("Train", self.train),
            ("Evaluate", self.evaluate),
            ("Report", self.report),
            ("Classes", self.classes),
        ):
            scroll = QScrollArea()
            scroll.setWidgetResizable(True)
            scroll.setWidget(w.native)
            index = self.tabs.addTab(scroll, title)
            self.tabs.setTabToolTip(index, tips[title])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tabs)
        self.setMinimumWidth(DOCK_WIDTH)
        # napari refreshes layer choices only of magicgui widgets docked directly: do it here
        for event in (
            viewer.layers.events.inserted,
            viewer.layers.events.removed,
            viewer.layers.events.moved,
        ):
            event.connect(self.reset_choices)

    def reset_choices(self, *_) -> None:
        for w in (self.segment, self.train, self.evaluate, self.report, self.classes):
            w.reset_choices()

    def show_tab(self, title: str) -> None:
        for i in range(self.tabs.count()):
            if self.tabs.tabText(i) == title:
                self.tabs.setCurrentIndex(i)
