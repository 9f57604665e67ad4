"""Models and the class scheme shared by the widgets of one napari session."""

from __future__ import annotations

from ..engine.classes import SHALE, ClassScheme
from ..engine.models.bundle import load_model
from ..models import LDA, default_model_path, model_path

SHIPPED_DEFAULT = "shipped default"
SHIPPED_LDA = "shipped LDA baseline"


class ModelStore:
    """Shipped models (loaded on first use), the models trained in this session, the current
    model (the one Segment shows, which Train fine-tunes) and the active class scheme."""

    def __init__(self):
        self._models = {}
        self.trained: list[str] = []
        self.current: str = SHIPPED_DEFAULT
        self.scheme: ClassScheme = SHALE
        self.listeners = []
        self.scheme_listeners = []

    def names(self, *_) -> list[str]:
        """Model names (callable as magicgui choices, which passes the widget)."""
        return [SHIPPED_DEFAULT, SHIPPED_LDA, *self.trained]

    def get(self, name: str):
        if name not in self._models:
            if name == SHIPPED_DEFAULT:
                self._models[name] = load_model(default_model_path())
            elif name == SHIPPED_LDA:
                self._models[name] = load_model(model_path(LDA))
            else:
                raise KeyError(name)
        return self._models[name]

    def _changed(self):
        for fn in list(self.listeners):
            fn()

    def add(self, model, name: str | None = None, select: bool = True, note: str = "") -> str:
        name = name or f"trained {len(self.trained) + 1} ({model.kind}{note})"
        self._models[name] = model
        if name not in self.trained:
            self.trained.append(name)
        if select:
            self.current = name
        self._changed()
        return name

    def select(self, name: str) -> None:
        """Make ``name`` the current model (Segment's choice), for every widget."""
        if name and name != self.current and name in self.names():
            self.current = name
            self._changed()

    def set_scheme(self, scheme: ClassScheme) -> None:
        self.scheme = scheme
        for fn in list(self.scheme_listeners):
            fn()

    def subscribe(self, widget, fn, scheme: bool = False):
        """Call ``fn`` when the model list (or, with ``scheme``, the active scheme) changes,
        until ``widget`` is destroyed."""
        target = self.scheme_listeners if scheme else self.listeners
        target.append(fn)
        widget.native.destroyed.connect(lambda *_: target.remove(fn) if fn in target else None)

    def add_file(self, path) -> str:
        model = load_model(path)
        return self.add(model, f"file: {path}")


STORE = ModelStore()
