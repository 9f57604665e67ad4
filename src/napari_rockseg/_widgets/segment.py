"""Segment dock widget: run a model on an image layer, get a labels layer back."""

from __future__ import annotations

from typing import TYPE_CHECKING

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    PushButton,
    create_widget,
)

from ..engine.inference.device import resolve_device
from ..engine.inference.segment import segment
from ..engine.inference.stream import lazy_labels
from ..engine.models.ensemble import FUSIONS
from ..engine.options import PREDICT
from ._layerio import done_text, image_of_layer, is_huge, pixel_size_of, put_labels, put_result
from ._options import option_widget
from ._state import STORE
from ._worker import RunPanel, notify_error
from .volume import VolumeTools, is_volume_layer

if TYPE_CHECKING:
    import napari


class SegmentWidget(Container):
    def __init__(self, viewer: napari.viewer.Viewer):

        self.viewer = viewer
        self._make_controls()
        super().__init__(
            widgets=[
                self.image,
                self.model,
                self.model_file,
                self.load_button,
                self.fusion,
                self.device,
                self.device_used,
                self.tile,
                self.overlap,
                self.tta,
                self.rescale,
                self.pixel_size,
                self.want_probabilities,
                self.want_uncertainty,
                self.volume,
                self.panel,
            ]
        )
        self.panel.run_button.changed.connect(self.run)
        self.load_button.changed.connect(self.load_file)
        self.device.changed.connect(self._show_device)
        self.model.changed.connect(self._show_fusion)
        self.model.changed.connect(self._select_model)
        self.image.changed.connect(self._show_pixel_size)
        self.pixel_size.changed.connect(lambda v: self.volume.set_pixel_size(v or None))
        STORE.subscribe(self, self._models_changed)
        self._show_fusion()
        self._show_pixel_size()
        self.result = None

    def _make_controls(self):
        """The sub-widgets, as attributes (tests set their values and call the actions)."""
        import napari

        self.image = create_widget(
            annotation=napari.layers.Image,
            label="image",
            options={"tooltip": "the image layer to segment"},
        )
        self.model = ComboBox(
            label="model",
            choices=STORE.names,
            value=STORE.current,
            tooltip="the current model; Train fine-tunes this one",
        )
        self.model_file = FileEdit(
            label="model file",
            mode="r",
            filter="*.safetensors",
            tooltip="a model file (.safetensors) to load",
        )
        self.load_button = PushButton(
            text="Load model file", tooltip="load the model file above and select it"
        )
        self.fusion = ComboBox(
            label="ensemble fusion",
            choices=list(FUSIONS),
            value=FUSIONS[0],
            tooltip="stacked ensembles only: how the members are combined: mean of "
            "the members (default, best on held-out images), the stacked "
            "synthesizer, or the binary members alone",
        )
        self.device = ComboBox(
            label="device",
            choices=["auto", "cpu", "cuda", "mps"],
            value="auto",
            tooltip="auto: a GPU when there is one",
        )
        self.device_used = Label(
            value=f"uses: {resolve_device('auto').type}", tooltip="the device the model runs on"
        )
        self.tile = option_widget(
            PREDICT["tile"],
            "tile size",
            step=32,
            tooltip="pixels per window; smaller uses less memory",
        )
        self.overlap = option_widget(
            PREDICT["overlap"],
            "overlap",
            step=8,
            tooltip="pixels shared by neighbouring windows (blended)",
        )
        self.tta = CheckBox(
            text="test-time augmentation (8 views, slower)",
            value=False,
            tooltip="average the prediction over flips and rotations",
        )
        self.rescale = CheckBox(
            text="resample to the model's pixel size",
            value=True,
            tooltip="segment at the scale the model was trained at",
        )
        self.pixel_size = FloatSpinBox(
            label="image pixel size (nm)",
            value=0.0,
            min=0.0,
            max=1e6,
            step=0.001,
            tooltip="read from the file or the layer's scale when they say it; "
            "0 = unknown (the image is segmented as it is). Set it for "
            "images whose files do not record it.",
        )
        self.want_probabilities = CheckBox(
            text="probability maps", value=False, tooltip="one probability layer per class (hidden)"
        )
        self.want_uncertainty = CheckBox(
            text="uncertainty map (where to paint next)",
            value=True,
            tooltip="bright where the model is unsure (hidden)",
        )
        self.volume = VolumeTools(self.viewer, self.image)
        self.panel = RunPanel("Segment", "segmentation", tooltip="segment the image")

    def _models_changed(self):
        self.model.reset_choices()
        self.model.value = STORE.current

    def _select_model(self, *_):
        """The model chosen here is the current model everywhere (Train fine-tunes it)."""
        STORE.select(self.model.value)

    def _show_fusion(self, *_):
        """The fusion choice applies to stacked ensembles only; greyed out otherwise."""
        try:
            kind = STORE.get(self.model.value).kind
        except Exception:  # a model that cannot load says so when it is used
            kind = None
        self.fusion.enabled = kind == "ensemble"

    def _show_pixel_size(self, *_):
        """The chosen image's pixel size as its file or layer gives it (0: unknown), to check."""
        layer = self.image.value
        self.pixel_size.value = (pixel_size_of(layer) or 0.0) if layer is not None else 0.0
        self.volume.show_for(layer, self.pixel_size.value or None)

    def _show_device(self, *_):
        try:
            self.device_used.value = f"uses: {resolve_device(self.device.value).type}"
        except Exception as exc:
            self.device_used.value = str(exc)

    def load_file(self, *_):
        try:
            STORE.add_file(self.model_file.value)
        except Exception as exc:
            notify_error(exc, "loading the model")

    def run(self, *_):
        layer = self.image.value
        if layer is None:
            notify_error("open an image first (File > Open, or File > Open Sample > RockSeg)")
            return None
        try:
            model = STORE.get(self.model.value)
            device = resolve_device(self.device.value)
        except Exception as exc:
            self.panel.status.value = notify_error(exc, "segmentation")
            return None
        if model.kind == "ensemble":
            model.fusion = self.fusion.value
        scheme = model.info.scheme
        if is_volume_layer(layer):
            return self.volume.segment(self, layer, model, device)
        if is_huge(layer):
            return self._run_lazy(layer, model, device)
        image = image_of_layer(layer, self.pixel_size.value or None)

        def job():
            return (
                yield from segment(
                    model,
                    image,
                    tile=self.tile.value,
                    overlap=self.overlap.value,
                    device=device,
                    tta=self.tta.value,
                    rescale=self.rescale.value,
                    probabilities=self.want_probabilities.value,
                    uncertainty=self.want_uncertainty.value,
                )
            )

        def done(seg):
            self.result = seg
            put_result(
                self.viewer,
                layer,
                scheme,
                seg.labels,
                seg.uncertainty,
                seg.probabilities,
                model=self.model.value,
                data_bar_rows=seg.data_bar,
            )
            self.panel.status.value = done_text("done", seg.notes)

        return self.panel.start(job, done)

    def _run_lazy(self, layer, model, device):
        """Huge or lazy (dask) images: a lazy labels layer, computed block by block
        for the part of the image that is viewed."""
        data = layer.data[0] if layer.multiscale else layer.data
        lab = lazy_labels(
            model,
            data,
            self.pixel_size.value or pixel_size_of(layer),
            data_bar=0,
            chunk=1024,
            tile=self.tile.value,
            overlap=self.overlap.value,
            device=device,
            rescale=self.rescale.value,
        )
        put_labels(
            self.viewer,
            f"{layer.name} segmentation",
            lab,
            model.info.scheme,
            layer,
            model=self.model.value,
        )
        self.panel.status.value = "lazy: blocks are segmented as you view them"
        return None
