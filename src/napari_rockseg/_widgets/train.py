"""Train dock widget: (image, labels) pairs from the viewer -> a model, with a live plot, one
progress bar over all stages, Cancel that keeps the best model so far (without selecting it),
fine-tuning of the model Segment shows on painted corrections, per-class feedback on the
painted pixels, and saving the model as a bundle."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    Label,
    PushButton,
    Table,
    create_widget,
)

from .._layers import labels_kwargs, scheme_of_layer
from ..engine.models.bundle import save_model
from ..engine.options import TRAIN
from ..engine.training.config import TrainConfig
from ..engine.training.trainer import Trainer
from ._layerio import gui_note, image_of_layer
from ._options import option_widget, parse_alpha
from ._plot import TrainingPlot
from ._progress import OverallProgress, stroke_feedback
from ._state import STORE
from ._worker import (
    RunPanel,
    fit_table,
    notify_error,
    notify_info,
    notify_warning,
    save_to,
    show_table,
    wrap_label,
)
from .volume import is_volume_layer, volume_pairs

if TYPE_CHECKING:
    import napari

METHODS = {
    "unet": "one U-Net",
    "bag": "a bag of U-Nets and a forest",
    "ensemble": "a stacked ensemble (Paw-Net)",
    "rf": "a random forest",
    "lda": "an LDA",
}
METHOD_TIP = (
    "ensemble: the Paw-Net stack; unet: one U-Net; bag: U-Nets trained in turn, "
    "probabilities averaged and blended with a random forest (the shipped default's "
    "kind); rf: random forest on multiscale features (seconds); lda: grey-value baseline"
)


def describe(name: str, model) -> str:
    """What fine-tuning from ``model`` does, in words."""
    if model.kind in ("lda", "rf"):
        return f"'{name}' is {METHODS[model.kind]}: it is refitted from scratch on your labels"
    extra = ""
    if model.kind == "bag":
        extra = f" ({len(model.members)} U-Nets, fine-tuned in turn; its forest is kept)"
    return f"fine-tunes '{name}': {METHODS[model.kind]}{extra}"


class TrainWidget(Container):
    def __init__(self, viewer: napari.viewer.Viewer):

        self.viewer = viewer
        self._make_controls()
        pair_buttons = Container(
            widgets=[self.add_pair_button, self.clear_pairs_button],
            layout="horizontal",
            labels=False,
        )
        super().__init__(
            widgets=[
                self.image,
                self.labels_layer,
                pair_buttons,
                self.pairs_label,
                self.new_layer_button,
                self.start_from,
                self.start_info,
                self.method,
                self.keep_unpainted,
                self.loss,
                self.alpha,
                self.gamma,
                self.tile,
                self.minutes,
                self.steps,
                self.batch_size,
                self.device,
                self.panel,
                self.plot,
                Label(value="painted pixels reproduced"),
                self.feedback,
                self.save_path,
                self.save_button,
            ]
        )
        self.pairs: list[tuple] = []
        self.trainer = None
        self.model = None
        self.warnings: list[str] = []
        self.start_from.changed.connect(self._show_start)
        STORE.subscribe(self, self._show_start)
        self._show_start()
        self.add_pair_button.changed.connect(self.add_pair)
        self.clear_pairs_button.changed.connect(self.clear_pairs)
        self.new_layer_button.changed.connect(self.new_corrections_layer)
        self.panel.run_button.changed.connect(self.run)
        self.save_button.changed.connect(self.save)

    # -- pairs ----------------------------------------------------------------

    def _make_controls(self):
        """The sub-widgets, as attributes (tests set their values and call the actions)."""
        import napari

        self.image = create_widget(
            annotation=napari.layers.Image,
            label="image",
            options={"tooltip": "the image to learn from"},
        )
        self.labels_layer = create_widget(
            annotation=napari.layers.Labels,
            label="labels",
            options={"tooltip": "painted labels of that image; 0 = not painted (not used)"},
        )
        self.add_pair_button = PushButton(
            text="Add pair", tooltip="train on several images: add each image + labels pair"
        )
        self.clear_pairs_button = PushButton(text="Clear pairs", tooltip="forget the added pairs")
        self.pairs_label = wrap_label(Label(value="pairs: the image and labels above"))
        self.new_layer_button = PushButton(
            text="New corrections layer to paint",
            tooltip="an empty labels layer over the image in the active class scheme; keys 1-9 "
            "pick the class to paint",
        )
        self.start_from = ComboBox(
            label="start from",
            choices=["scratch", "current model"],
            value="scratch",
            tooltip="current model: the model chosen in Segment, fine-tuned on your labels",
        )
        self.start_info = wrap_label(Label(value=""))
        self.method = ComboBox(
            label="method", choices=list(METHODS), value=TRAIN["method"].default, tooltip=METHOD_TIP
        )
        self.keep_unpainted = CheckBox(
            text="fine-tuning: keep what I did not paint",
            value=True,
            tooltip="on: unpainted pixels the model is sure of are trained on with its own "
            "prediction and half the crops are centred on your strokes. Off: only the "
            "strokes (followed more; the rest of the image can change)",
        )
        self.loss = option_widget(TRAIN["loss"], "loss")
        self.alpha = option_widget(
            TRAIN["alpha"],
            "alpha",
            tooltip="focal alpha: empty for automatic, one value, or one "
            "per class separated by commas",
        )
        self.gamma = option_widget(TRAIN["gamma"], "gamma", step=0.5)
        self.tile = option_widget(TRAIN["tile"], "tile size", step=16)
        # the GUI's runs are short fine-tunings: a few minutes, or a few hundred steps
        self.minutes = option_widget(
            TRAIN["minutes"],
            "time budget (min)",
            default=5.0,
            step=1.0,
            tooltip="0: use the steps below",
        )
        self.steps = option_widget(TRAIN["steps"], "steps (if no time budget)", default=300)
        self.batch_size = option_widget(TRAIN["batch_size"], "batch size")
        self.device = ComboBox(
            label="device",
            choices=["auto", "cpu", "cuda", "mps"],
            value=TRAIN["device"].default,
            tooltip=TRAIN["device"].help,
        )
        self.panel = RunPanel("Train", "training", tooltip="train (or fine-tune) a model")
        self.plot = TrainingPlot(STORE.scheme.names)
        self.feedback = Table(value={"class": [], "painted px": [], "reproduced": []})
        self.feedback.tooltip = (
            "after training: how much of each class's painted pixels the "
            "new model predicts as that class"
        )
        fit_table(self.feedback)
        self.feedback.native.setMinimumHeight(120)
        self.save_path = FileEdit(
            label="save model as", mode="w", filter="*.safetensors", tooltip="model file to write"
        )
        self.save_button = PushButton(
            text="Save model", enabled=False, tooltip="write the trained model to the file above"
        )

    def add_pair(self, *_):
        if self.image.value is None or self.labels_layer.value is None:
            notify_error("pick an image layer and a labels layer first")
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
            self.pairs_label.value = "pairs: " + "; ".join(
                f"{i.name} + {lab.name}" for i, lab in self.pairs
            )

    def _current_pairs(self):
        if self.pairs:
            return list(self.pairs)
        if self.image.value is None or self.labels_layer.value is None:
            raise ValueError(
                "pick an image layer and a labels layer (or paint one with 'New corrections layer')"
            )
        return [(self.image.value, self.labels_layer.value)]

    def new_corrections_layer(self, *_):
        """An empty labels layer over the image (2-D or 3-D), in the active scheme, to paint on."""
        from .legend import bind_class_keys

        layer = self.image.value
        if layer is None:
            notify_error("pick an image layer first")
            return None
        scheme = STORE.scheme
        shape = np.asarray(layer.data).shape[: layer.ndim]
        kw = labels_kwargs(
            scheme,
            f"{layer.name} corrections",
            scale=layer.scale,
            translate=layer.translate,
            units=layer.units,
            metadata={"rockseg_painted": True},
        )
        new = self.viewer.add_labels(np.zeros(shape, np.uint8), **kw)
        new.mode = "paint"
        new.brush_size = 6
        new.selected_label = 1
        bind_class_keys(new)
        self.labels_layer.reset_choices()
        self.labels_layer.value = new
        names = ", ".join(f"{i} {n}" for i, n in zip(scheme.labels, scheme.names))
        notify_info(f"paint: press {names}; 0 erases. Only painted pixels are used.")
        return new

    def _init_model(self):
        """(name, model) fine-tuned when starting from the current model; (name, None) when the
        current model is classical (refitted) or training starts from scratch."""
        if self.start_from.value != "current model":
            return None, None
        return STORE.current, STORE.get(STORE.current)

    def _show_start(self, *_):
        """The start-from note and the method box follow the model Segment shows."""
        fine = self.start_from.value == "current model"
        self.keep_unpainted.enabled = fine
        self.start_from.tooltip = f"current model: '{STORE.current}' (chosen in Segment)"
        if not fine:
            self.start_info.value = f"trains {METHODS[self.method.value]} from scratch"
            self.method.enabled = True
            return
        try:
            model = STORE.get(STORE.current)
        except Exception as exc:
            self.start_info.value = notify_error(exc, "loading the current model")
            return
        self.start_info.value = describe(STORE.current, model)
        self.method.value = model.kind
        self.method.enabled = False

    # -- training ---------------------------------------------------------------
    def config(self, n_classes: int | None = None) -> TrainConfig:
        alpha = parse_alpha(self.alpha.value, n_classes or STORE.scheme.n_classes)
        minutes = self.minutes.value or None
        eval_every = max(5, min(50, self.steps.value // 10)) if not minutes else 25
        return TrainConfig(
            method=self.method.value,
            tile=self.tile.value,
            batch_size=self.batch_size.value,
            loss=self.loss.value,
            alpha=alpha,
            gamma=self.gamma.value,
            minutes=minutes,
            steps=None if minutes else self.steps.value,
            device=self.device.value,
            eval_every=eval_every,
            pixel_size_nm=None,
            **({} if self.keep_unpainted.value else {"keep_confident": 0.0}),
        )

    def _inputs(self):
        """(pairs, images, labels): 2-D pairs as they are; a volume gives its painted slices."""
        pairs = self._current_pairs()
        images, labels = [], []
        for il, ll in pairs:
            if is_volume_layer(il):
                more = volume_pairs(il, ll)
                images += more[0]
                labels += more[1]
                continue
            img, lab = image_of_layer(il), np.asarray(ll.data).astype(np.uint8)
            if img.data.shape != lab.shape:
                raise ValueError(
                    f"{il.name} is {img.data.shape} but {ll.name} is {lab.shape}; "
                    "pick labels painted on this image"
                )
            images.append(img)
            labels.append(lab)
        return pairs, images, labels

    def run(self, *_):
        try:
            pairs, images, labels = self._inputs()
            name, init = self._init_model()
            if init is not None and init.kind in ("lda", "rf"):
                init = None  # classical models are refitted, not fine-tuned
            scheme = (
                init.info.scheme if init is not None else scheme_of_layer(pairs[0][1], STORE.scheme)
            )
            cfg = self.config(scheme.n_classes)
            if init is not None:
                cfg.method = init.kind
                cfg.pixel_size_nm = init.info.pixel_size_nm
            trainer = Trainer(
                cfg,
                images,
                labels,
                scheme,
                init=init,
                data_source=", ".join(f"{i.name}+{lab.name}" for i, lab in pairs),
            )
        except Exception as exc:
            self.panel.status.value = notify_error(exc, "training")
            return None
        self.trainer = trainer
        self.plot.class_names = list(scheme.names)
        self.plot.clear()
        self.feedback.value = {"class": [], "painted px": [], "reproduced": []}
        self.save_button.enabled = False
        shares = None
        if cfg.method == "ensemble":
            shares = [1 - cfg.synth_share, cfg.synth_share]

        def job():
            model = yield from trainer.run()
            return model, (yield from stroke_feedback(model, images, labels, scheme))

        return self.panel.start(
            job,
            self._finished,
            on_event=self.plot.add,
            on_cancel=self._cancelled,
            fraction=OverallProgress(shares),
        )

    def _finished(self, result):
        model, feedback = result
        self.model = model
        self.warnings = [gui_note(w) for w in getattr(self.trainer, "warnings", None) or []]
        self._show_feedback(feedback)
        self.save_button.enabled = True
        if self.warnings:
            name = STORE.add(model, select=False, note=", with warnings")
            for w in self.warnings:
                notify_warning(w)
            self.panel.status.value = (
                f"trained '{name}', but: {'; '.join(self.warnings)}. It is "
                "not selected in Segment; pick it there to use it anyway."
            )
            return
        name = STORE.add(model)
        self.panel.status.value = f"done: '{name}' is selected in Segment"

    def _show_feedback(self, fb):
        shares = ["not painted" if s is None else f"{100 * s:.0f} %" for s in fb["reproduced"]]
        show_table(
            self.feedback,
            {
                "class": fb["class"],
                "painted px": [f"{p:,}" for p in fb["painted"]],
                "reproduced": shares,
            },
        )
        poor = [c for c, s in zip(fb["class"], fb["reproduced"]) if s is not None and s < 0.5]
        if poor:
            notify_warning(
                f"the new model reproduces less than half of the painted "
                f"{', '.join(poor)}: paint more of it, or train longer"
            )

    def _cancelled(self):
        trainer = self.trainer
        model = trainer.result() if trainer is not None else None
        if model is None or not getattr(trainer, "stage_steps", None):  # no step was taken
            self.panel.status.value = "cancelled: nothing was kept; the current model is unchanged"
            return
        name = STORE.add(model, select=False, note=", cancelled")
        self.model = model
        self.save_button.enabled = True
        self.panel.status.value = (
            f"cancelled: the model so far (best validated weights) is kept as "
            f"'{name}'; it is not selected (pick it in Segment to use it)"
        )

    def save(self, *_):
        if self.model is None:
            notify_error("train a model first")
            return None
        return save_to(
            self.save_path, ".safetensors", "model", lambda path: save_model(self.model, path)
        )
