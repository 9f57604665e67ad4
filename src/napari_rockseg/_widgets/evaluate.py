"""Evaluate dock widget: per-class IoU, mean IoU and confusion matrix of a
prediction against ground truth, and a side-by-side comparison of the LDA
baseline with the current model on the same image."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import ComboBox, Container, Label, PushButton, Table, create_widget

from .._layers import scheme_of_layer
from ..engine.analysis.metrics import evaluate, unlabelled_bottom_rows
from ..engine.classes import SHALE
from ..engine.inference.segment import segment
from ..engine.io import resolve_data_bar, valid_mask
from ._layerio import image_of_layer
from ._state import SHIPPED_LDA, STORE
from ._worker import RunPanel, fit_table, notify_error, show_table

if TYPE_CHECKING:
    import napari


def _data_bar_mask(pred_layer, shape):
    rows = pred_layer.metadata.get("data_bar_rows")
    if rows is None:
        rows = unlabelled_bottom_rows(pred_layer.data)
    return valid_mask(shape, int(rows))


class EvaluateWidget(Container):
    def __init__(self, viewer: napari.viewer.Viewer):
        import napari

        self.viewer = viewer
        self.prediction = create_widget(
            annotation=napari.layers.Labels,
            label="prediction",
            options={"tooltip": "the segmentation to score"},
        )
        self.truth = create_widget(
            annotation=napari.layers.Labels,
            label="ground truth",
            options={"tooltip": "labels to score against (0 = not counted)"},
        )
        self.evaluate_button = PushButton(
            text="Evaluate", tooltip="IoU per class, mean IoU and the confusion matrix"
        )
        self.miou = Label(value="")
        self.table = Table(value={"class": [], "IoU": []})
        self.confusion = Table()
        self.image = create_widget(
            annotation=napari.layers.Image,
            label="image (compare)",
            options={"tooltip": "the image the ground truth belongs to"},
        )
        self.model = ComboBox(
            label="model",
            choices=STORE.names,
            value=STORE.current,
            tooltip="the model compared with the LDA baseline",
        )
        self.compare_panel = RunPanel(
            "Compare LDA and model",
            "the comparison",
            tooltip="segment the image with both and score them",
        )
        self.compare_table = Table()
        super().__init__(
            widgets=[
                self.prediction,
                self.truth,
                self.evaluate_button,
                self.miou,
                self.table,
                Label(value="confusion (rows: truth, columns: prediction)"),
                self.confusion,
                self.image,
                self.model,
                self.compare_panel,
                self.compare_table,
            ]
        )
        for t in (self.table, self.confusion, self.compare_table):
            t.native.setMinimumHeight(140)
            fit_table(t)
        self.evaluate_button.changed.connect(self.run)
        self.compare_panel.run_button.changed.connect(self.compare)
        STORE.subscribe(self, self._follow_current)
        self.result = None
        self.comparison = None

    def _follow_current(self, *_):
        """The model list changed or Segment (or Train) made another model current: it is
        the one compared here too, until another is picked in this box."""
        self.model.reset_choices()
        self.model.value = STORE.current

    def run(self, *_):
        pred, truth = self.prediction.value, self.truth.value
        if pred is None or truth is None:
            notify_error("pick a prediction and a ground-truth labels layer")
            return None
        if pred is truth or pred.data is truth.data:
            self.miou.value = notify_error(
                "the prediction and the ground truth are the same layer; "
                "pick two different labels layers"
            )
            return None
        scheme = scheme_of_layer(pred, scheme_of_layer(truth, SHALE))
        p, t = np.asarray(pred.data), np.asarray(truth.data)
        try:
            result = evaluate(p, t, scheme.n_classes, _data_bar_mask(pred, t.shape))
        except Exception as exc:
            notify_error(exc, "the evaluation")
            return None
        self.result = result
        self.miou.value = f"mean IoU {result['miou']:.3f}   pixel accuracy {result['accuracy']:.3f}"
        show_table(
            self.table, {"class": list(scheme.names), "IoU": [f"{v:.3f}" for v in result["iou"]]}
        )
        cm = np.asarray(result["confusion"])
        short = [n.split()[0] for n in scheme.names]
        self.confusion.value = {
            "data": [[f"{v:,}" for v in r] for r in cm.tolist()],
            "index": short,
            "columns": short,
        }
        self.confusion.native.verticalHeader().setVisible(True)
        return result

    def compare(self, *_):
        layer, truth = self.image.value, self.truth.value
        if layer is None or truth is None:
            notify_error("pick an image and its ground-truth labels layer")
            return None
        try:
            models = {
                "LDA baseline": STORE.get(SHIPPED_LDA),
                self.model.value: STORE.get(self.model.value),
            }
        except Exception as exc:
            notify_error(exc, "loading the model")
            return None
        image = image_of_layer(layer)
        t = np.asarray(truth.data)

        def job():
            scores = {}
            for name, model in models.items():
                seg = yield from segment(model, image)
                mask = valid_mask(t.shape, resolve_data_bar(image.data, seg.data_bar))
                scores[name] = evaluate(seg.labels, t, model.info.scheme.n_classes, mask)
            return scores

        def done(scores):
            self.comparison = scores
            names = list(next(iter(models.values())).info.scheme.names) + ["mean IoU"]
            columns = {"LDA baseline": "LDA", self.model.value: "model"}
            data = {
                columns[n]: [f"{v:.3f}" for v in s["iou"]] + [f"{s['miou']:.3f}"]
                for n, s in scores.items()
            }
            self.compare_panel.status.value = f"LDA baseline vs model '{self.model.value}'"
            show_table(self.compare_table, data, index=names)
            self.compare_table.native.verticalHeader().setVisible(True)

        return self.compare_panel.start(job, done)
