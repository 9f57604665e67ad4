"""Class-scheme editor: names, colours and label values of the rock's classes; load / save as
JSON; the active scheme is what new corrections layers, the reader and training use."""

from __future__ import annotations

from typing import TYPE_CHECKING

from magicgui.widgets import ComboBox, Container, FileEdit, PushButton, Table, create_widget

from .._layers import apply_scheme
from ..engine.classes import ClassScheme, color_hex
from ..engine.io import write_text
from ._state import STORE
from ._worker import fit_table, notify_error, notify_info
from .legend import ClassLegend, bind_class_keys

if TYPE_CHECKING:
    import napari

NO_REST = "(none)"


class SchemeEditor(Container):
    def __init__(self, viewer: napari.viewer.Viewer):
        import napari

        self.viewer = viewer
        self.table = Table(value={"name": [], "colour": []})
        self.table.tooltip = (
            "one row per class; the row number is the label value (0 = not "
            "painted). Double-click to edit; colours as #rrggbb or a name"
        )
        fit_table(self.table)
        self.table.native.verticalHeader().setVisible(True)
        self.table.native.setMinimumHeight(150)
        self.add_button = PushButton(text="Add class", tooltip="a new class at the end")
        self.remove_button = PushButton(text="Remove last class", tooltip="drop the last class")
        self.rest = ComboBox(
            label="rest class",
            choices=self._rest_choices,
            tooltip="the class that takes colours a colour mask has but the "
            "scheme does not (none: such colours are an error)",
        )
        self.apply_button = PushButton(
            text="Use this scheme",
            tooltip="make it the active scheme (new corrections layers, colour masks, training)",
        )
        self.file = FileEdit(
            label="scheme file", mode="w", filter="*.json", tooltip="a class-scheme JSON file"
        )
        self.load_button = PushButton(text="Load", tooltip="read the scheme file above")
        self.save_button = PushButton(text="Save", tooltip="write the scheme to the file above")
        self.layer = create_widget(
            annotation=napari.layers.Labels,
            label="labels layer",
            options={"tooltip": "a labels layer to show in the scheme"},
        )
        self.to_layer_button = PushButton(
            text="Give the layer this scheme",
            tooltip="names and colours of this scheme on the layer",
        )
        self.legend = ClassLegend()
        rows = Container(
            widgets=[self.add_button, self.remove_button], layout="horizontal", labels=False
        )
        files = Container(
            widgets=[self.load_button, self.save_button], layout="horizontal", labels=False
        )
        super().__init__(
            widgets=[
                self.table,
                rows,
                self.rest,
                self.apply_button,
                self.file,
                files,
                self.layer,
                self.to_layer_button,
                self.legend,
            ]
        )
        self.add_button.changed.connect(self.add_class)
        self.remove_button.changed.connect(self.remove_class)
        self.apply_button.changed.connect(self.apply)
        self.load_button.changed.connect(self.load)
        self.save_button.changed.connect(self.save)
        self.to_layer_button.changed.connect(self.to_layer)
        self.layer.changed.connect(self._follow_layer)
        STORE.subscribe(self, self._follow_layer, scheme=True)
        self._watched = None
        self.show_scheme(STORE.scheme)
        self._follow_layer()

    def show_scheme(self, scheme: ClassScheme) -> None:
        self.table.value = {
            "name": list(scheme.names),
            "colour": [color_hex(c) for c in scheme.colors],
        }
        self._number_rows()
        self.rest.reset_choices()
        self.rest.value = NO_REST if scheme.rest is None else scheme.names[scheme.rest]

    def scheme(self) -> ClassScheme:
        """The scheme in the table (a SchemeError in plain words when it is not valid)."""
        names = [str(r[0]).strip() for r in self.table.data]
        colors = [str(r[1]).strip() for r in self.table.data]
        rest = self.rest.value if self.rest.value in names else None
        classes = [{"name": n, "color": c} for n, c in zip(names, colors)]
        return ClassScheme.from_dict({"classes": classes, "rest": rest})

    def add_class(self, *_):
        data = [list(r) for r in self.table.data]
        data.append([f"class {len(data) + 1}", "#808080"])
        self.table.value = {"name": [r[0] for r in data], "colour": [r[1] for r in data]}
        self._number_rows()
        self.rest.reset_choices()

    def remove_class(self, *_):
        data = [list(r) for r in self.table.data][:-1]
        self.table.value = {"name": [r[0] for r in data], "colour": [r[1] for r in data]}
        self._number_rows()
        self.rest.reset_choices()

    def _rest_choices(self, *_):
        return [NO_REST, *(str(r[0]) for r in self.table.data)]

    def _number_rows(self):
        """Row headers are the label values, 1..K (0 is 'not painted')."""
        n = len(list(self.table.data))
        self.table.native.setVerticalHeaderLabels([str(i + 1) for i in range(n)])
        self.table.native.verticalHeader().setVisible(True)

    def apply(self, *_) -> ClassScheme | None:
        try:
            scheme = self.scheme()
        except Exception as exc:
            notify_error(exc, "the class scheme")
            return None
        STORE.set_scheme(scheme)
        notify_info(f"active classes: {', '.join(scheme.names)}")
        return scheme

    def load(self, *_):
        try:
            scheme = ClassScheme.from_json(self.file.value)
        except Exception as exc:
            notify_error(exc, "loading the class scheme")
            return None
        self.show_scheme(scheme)
        STORE.set_scheme(scheme)
        return scheme

    def save(self, *_):
        import json

        try:
            scheme = self.scheme()
            path = str(self.file.value)
            if not path.endswith(".json"):
                path += ".json"
            write_text(path, json.dumps(scheme.to_dict(), indent=1) + "\n")
        except Exception as exc:
            notify_error(exc, "saving the class scheme")
            return None
        notify_info(f"saved {path}")
        return path

    def to_layer(self, *_):
        layer = self.layer.value
        scheme = self.apply()
        if layer is None or scheme is None:
            return None
        apply_scheme(layer, scheme)
        bind_class_keys(layer)
        self.legend.show(layer)
        return layer

    def _follow_layer(self, *_):
        if self._watched is not None:
            self._watched.events.data.disconnect(self.legend.refresh)
            self._watched.events.set_data.disconnect(self.legend.refresh)
            self._watched.events.labels_update.disconnect(self.legend.refresh)
        layer = self.layer.value
        self._watched = layer
        if layer is not None:
            layer.events.data.connect(self.legend.refresh)
            layer.events.set_data.connect(self.legend.refresh)  # undo, redo
            layer.events.labels_update.connect(self.legend.refresh)  # after each stroke
        self.legend.show(layer)
