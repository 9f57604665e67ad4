"""Train dock widget: (image, labels) pairs from the viewer -> a model, with a
live plot, Cancel that keeps the best model so far, fine-tuning on painted
corrections, and saving the model as a bundle."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    LineEdit,
    PushButton,
    SpinBox,
    create_widget,
)

from .._layers import labels_kwargs, scheme_of_layer
from ..engine.classes import SHALE
from ..engine.models.bundle import save_model
from ..engine.training.config import TrainConfig
from ..engine.training.losses import LOSSES
from ..engine.training.trainer import Trainer
from ._plot import TrainingPlot
from ._state import STORE
from ._worker import RunPanel, notify_error, notify_info, save_to
from .segment import image_of_layer

if TYPE_CHECKING:
    import napari


class TrainWidget(Container):
    def __init__(self, viewer: napari.viewer.Viewer):
        import napari

        self.viewer = viewer
        self.image = create_widget(annotation=napari.layers.Image, label="image")
        self.labels_layer = create_widget(annotation=napari.layers.Labels, label="labels")
        self.add_pair_button = PushButton(text="Add pair")
        self.clear_pairs_button = PushButton(text="Clear pairs")
        self.pairs_label = Label(value="pairs: the image and labels above")
        self.new_layer_button = PushButton(text="New corrections layer to paint")
        self.method = ComboBox(label="method", choices=["ensemble", "unet", "bag", "rf", "lda"], value="unet",
                               tooltip="ensemble: the Paw-Net stack; unet: one U-Net; bag: four U-Nets trained "
                                       "in turn, probabilities averaged and blended with a random forest (the "
                                       "shipped default's kind; fine-tuning keeps its forest); rf: random forest on "
                                       "multiscale features (seconds); lda: the original grey-value baseline")
        self.start_from = ComboBox(label="start from", choices=["scratch", "current model"], value="scratch")
        self.keep_unpainted = CheckBox(
            text="fine-tuning: keep what I did not paint", value=True,
            tooltip="on: unpainted pixels the model is sure of are trained on with its own prediction and "
                    "half the crops are centred on your strokes (the rest of the image stays as it was). "
                    "Off: only the strokes (they are followed more, and the rest of the image can change). "
                    "Measured on held-out images: README, 'Correcting a segmentation'.")
        self.loss = ComboBox(label="loss", value="focal-dice", choices=list(LOSSES))
        self.alpha = LineEdit(label="alpha", value="", tooltip="focal alpha: empty for automatic, one value, "
                                                                "or one per class separated by commas")
        self.gamma = FloatSpinBox(label="gamma", value=2.0, min=0.0, max=10.0, step=0.5)
        self.tile = SpinBox(label="tile size", value=128, min=32, max=1024, step=16)
        self.minutes = FloatSpinBox(label="time budget (min)", value=5.0, min=0.0, max=10000.0, step=1.0,
                                    tooltip="0: use the steps below")
        self.steps = SpinBox(label="steps (if no time budget)", value=300, min=1, max=1_000_000)
        self.batch_size = SpinBox(label="batch size", value=8, min=1, max=256)
        self.device = ComboBox(label="device", choices=["auto", "cpu", "cuda", "mps"], value="auto")
        self.panel = RunPanel("Train")
        self.plot = TrainingPlot(SHALE.names)
        self.save_path = FileEdit(label="save model as", mode="w", filter="*.safetensors")
        self.save_button = PushButton(text="Save model", enabled=False)
        pair_buttons = Container(widgets=[self.add_pair_button, self.clear_pairs_button], layout="horizontal",
                                 labels=False)
        super().__init__(widgets=[self.image, self.labels_layer, pair_buttons, self.pairs_label, self.new_layer_button,
                                  self.method, self.start_from, self.keep_unpainted, self.loss, self.alpha,
                                  self.gamma, self.tile, self.minutes, self.steps, self.batch_size, self.device,
                                  self.panel, self.plot, self.save_path, self.save_button])
        self.pairs: list[tuple] = []
        self.trainer = None
        self.model = None
        self.start_from.changed.connect(self._show_keep)
        self._show_keep()
        self.add_pair_button.changed.connect(self.add_pair)
        self.clear_pairs_button.changed.connect(self.clear_pairs)
        self.new_layer_button.changed.connect(self.new_corrections_layer)
        self.panel.run_button.changed.connect(self.run)
        self.save_button.changed.connect(self.save)

    # -- pairs ----------------------------------------------------------------
    def add_pair(self, *_):
        if self.image.value is None or self.labels_layer.value is None:
            notify_error(ValueError("pick an image layer and a labels layer first"))
            return
        self.pairs.append((self.image.value, self.labels_layer.value))
        self._show_pairs()

    def clear_pairs(self, *_):
        self.pairs = []
        self._show_pairs()

    def _show_pairs(self):
        if not self.pairs:
            self.pairs_label.value = "pairs: the image and labels above"
        else:
            self.pairs_label.value = "pairs: " + "; ".join(f"{i.name} + {lab.name}" for i, lab in self.pairs)

    def _current_pairs(self):
        if self.pairs:
            return list(self.pairs)
        if self.image.value is None or self.labels_layer.value is None:
            raise ValueError("pick an image layer and a labels layer (paint one with 'New corrections layer')")
        return [(self.image.value, self.labels_layer.value)]

    def new_corrections_layer(self, *_):
        """An empty labels layer over the image, in the classes' colours, to paint on."""
        layer = self.image.value
        if layer is None:
            notify_error(ValueError("pick an image layer first"))
            return None
        scheme = self._scheme()
        shape = np.asarray(layer.data).shape[:2]
        kw = labels_kwargs(scheme, f"{layer.name} corrections", scale=layer.scale, translate=layer.translate,
                           units=layer.units, metadata={"rockseg_painted": True})
        new = self.viewer.add_labels(np.zeros(shape, np.uint8), **kw)
        new.mode = "paint"
        new.brush_size = 6
        new.selected_label = 1
        self.labels_layer.reset_choices()
        self.labels_layer.value = new
        names = ", ".join(f"{i} = {n}" for i, n in zip(scheme.labels, scheme.names))
        notify_info(f"paint with label {names}; 0 erases. Only painted pixels are used for training.")
        return new

    def _scheme(self):
        if self.start_from.value == "current model":
            try:
                return STORE.get(STORE.current).info.scheme
            except Exception:
                pass
        if self.labels_layer.value is not None:
            return scheme_of_layer(self.labels_layer.value, SHALE)
        return SHALE

    def _show_keep(self, *_):
        """"Keep what I did not paint" applies to fine-tuning only; greyed out otherwise."""
        self.keep_unpainted.enabled = self.start_from.value == "current model"

    # -- training ---------------------------------------------------------------
    def config(self) -> TrainConfig:
        alpha = None
        text = self.alpha.value.strip()
        if text:
            vals = [float(a) for a in text.split(",")]
            alpha = vals[0] if len(vals) == 1 else vals
        minutes = self.minutes.value or None
        return TrainConfig(method=self.method.value, tile=self.tile.value, batch_size=self.batch_size.value,
                           loss=self.loss.value, alpha=alpha, gamma=self.gamma.value, minutes=minutes,
                           steps=None if minutes else self.steps.value, device=self.device.value,
                           eval_every=max(5, min(50, self.steps.value // 10)) if not minutes else 25,
                           pixel_size_nm=None,
                           **({} if self.keep_unpainted.value else {"keep_confident": 0.0}))

    def run(self, *_):
        try:
            pairs = self._current_pairs()
            images = [image_of_layer(i) for i, _ in pairs]
            labels = [np.asarray(lab.data).astype(np.uint8) for _, lab in pairs]
            for img, lab, (il, ll) in zip(images, labels, pairs):
                if img.data.shape != lab.shape:
                    raise ValueError(f"{il.name} is {img.data.shape} but {ll.name} is {lab.shape}; "
                                     "pick labels painted on this image")
            init = STORE.get(STORE.current) if self.start_from.value == "current model" else None
            if init is not None and init.kind in ("lda", "rf"):
                init = None  # classical models are refitted, not fine-tuned
            cfg = self.config()
            if init is not None:
                cfg.method = init.kind
                cfg.pixel_size_nm = init.info.pixel_size_nm
            scheme = init.info.scheme if init is not None else self._scheme()
            trainer = Trainer(cfg, images, labels, scheme, init=init,
                              data_source=", ".join(f"{i.name}+{lab.name}" for i, lab in pairs))
        except Exception as exc:
            notify_error(exc)
            return None
        self.trainer = trainer
        self.plot.class_names = list(scheme.names)
        self.plot.clear()
        self.save_button.enabled = False
        return self.panel.start(trainer.run, self._finished, on_event=self.plot.add, on_cancel=self._cancelled)

    def _finished(self, model):
        self.model = model
        name = STORE.add(model)
        self.save_button.enabled = True
        self.panel.status.value = f"done: '{name}' is ready in Segment"

    def _cancelled(self):
        model = self.trainer.result() if self.trainer is not None else None
        if model is not None and self.trainer.best_state is not None:
            self._finished(model)
            self.panel.status.value = "cancelled: kept the best model validated so far"

    def save(self, *_):
        if self.model is None:
            notify_error(ValueError("train a model first"))
            return None
        return save_to(self.save_path, ".safetensors", "model", lambda path: save_model(self.model, path))
