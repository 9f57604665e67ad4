"""Models shared by the widgets of one napari session."""

from __future__ import annotations

from ..engine.models.bundle import load_model
from ..models import LDA, default_model_path, model_path

SHIPPED_DEFAULT = "shipped default"
SHIPPED_LDA = "shipped LDA baseline"


class ModelStore:
    """Shipped models (loaded on first use) and the models trained in this session."""

    def __init__(self):
        self._models = {}
        self.trained: list[str] = []
        self.current: str = SHIPPED_DEFAULT
        self.listeners = []

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

    def add(self, model, name: str | None = None) -> str:
        name = name or f"trained {len(self.trained) + 1} ({model.kind})"
        self._models[name] = model
        if name not in self.trained:
            self.trained.append(name)
        self.current = name
        for fn in list(self.listeners):
            fn()
        return name

    def subscribe(self, widget, fn):
        """Call ``fn`` when the model list changes, until ``widget`` is destroyed."""
        self.listeners.append(fn)
        widget.native.destroyed.connect(lambda *_: self.listeners.remove(fn) if fn in self.listeners else None)

    def add_file(self, path) -> str:
        model = load_model(path)
        return self.add(model, f"file: {path}")


STORE = ModelStore()
