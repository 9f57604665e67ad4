"""Class schemes: names, colours and label values, and the colour-mask codec.

Labels are integers: 0 = unlabelled (ignored by training and metrics),
1..K = the scheme's classes in list order.  Annotations painted as colour
overlays (pure colours over a copy of the grey image) decode through the
scheme; the ``rest`` class, when set, takes every colour not listed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import SchemeError


def parse_color(value) -> tuple[int, int, int]:
    """``"#ff0000"``, ``"ff0000"`` or ``[255, 0, 0]`` -> ``(255, 0, 0)``."""
    if isinstance(value, str):
        text = value.strip().lstrip("#")
        if len(text) != 6:
            raise SchemeError(f"colour {value!r} is not of the form '#rrggbb'")
        try:
            return tuple(int(text[i : i + 2], 16) for i in (0, 2, 4))
        except ValueError:
            raise SchemeError(f"colour {value!r} is not of the form '#rrggbb'") from None
    if isinstance(value, (list, tuple)) and len(value) == 3:
        try:
            rgb = tuple(int(v) for v in value)
        except (TypeError, ValueError):
            raise SchemeError(f"colour {value!r} must be three integers 0-255") from None
        if all(0 <= v <= 255 for v in rgb) and all(float(v) == int(v) for v in value):
            return rgb
    raise SchemeError(f"colour {value!r} must be '#rrggbb' or three integers 0-255")


def color_hex(rgb) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


@dataclass(frozen=True)
class ClassScheme:
    """Names and colours of classes 1..K; ``rest`` is the 0-based index of the
    class that takes unlisted colours when decoding colour overlays (or None)."""

    names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]
    rest: int | None = None

    def __post_init__(self):
        if len(self.names) == 0:
            raise SchemeError("a class scheme needs at least one class")
        if len(self.names) != len(self.colors):
            raise SchemeError("a class scheme needs one colour per class")
        if len(self.names) > 255:
            raise SchemeError("a class scheme has at most 255 classes")
        seen = set()
        for name in self.names:
            if not isinstance(name, str) or not name.strip():
                raise SchemeError("every class needs a non-empty name")
            if name.lower() in seen:
                raise SchemeError(f"class name {name!r} appears twice; names must be unique")
            seen.add(name.lower())
        if len(set(self.colors)) != len(self.colors):
            dup = next(c for c in self.colors if self.colors.count(c) > 1)
            raise SchemeError(f"colour {color_hex(dup)} is used by two classes; colours must be unique")
        if self.rest is not None and not 0 <= self.rest < len(self.names):
            raise SchemeError("the rest class must be one of the classes")

    # -- basic properties -------------------------------------------------
    @property
    def n_classes(self) -> int:
        return len(self.names)

    @property
    def labels(self) -> tuple[int, ...]:
        return tuple(range(1, self.n_classes + 1))

    def label_of(self, name: str) -> int:
        for i, n in enumerate(self.names):
            if n.lower() == name.lower():
                return i + 1
        raise SchemeError(f"no class named {name!r}; classes are {', '.join(self.names)}")

    def find(self, *candidates: str) -> int | None:
        """Label of the first class whose name contains one of ``candidates``."""
        for cand in candidates:
            for i, n in enumerate(self.names):
                if cand.lower() in n.lower():
                    return i + 1
        return None

    # -- (de)serialisation ------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "classes": [{"name": n, "color": color_hex(c)} for n, c in zip(self.names, self.colors)],
            "rest": None if self.rest is None else self.names[self.rest],
        }

    @classmethod
    def from_dict(cls, data) -> ClassScheme:
        if not isinstance(data, dict) or not isinstance(data.get("classes"), list):
            raise SchemeError('a class scheme must be a JSON object with a "classes" list')
        names, colors = [], []
        for i, entry in enumerate(data["classes"]):
            if not isinstance(entry, dict) or "name" not in entry or "color" not in entry:
                raise SchemeError(f'class {i + 1} needs a "name" and a "color"')
            names.append(str(entry["name"]))
            colors.append(parse_color(entry["color"]))
        rest = data.get("rest")
        rest_index = None
        if rest is not None:
            if rest not in names:
                raise SchemeError(f'"rest" names {rest!r}, which is not one of the classes')
            rest_index = names.index(rest)
        return cls(tuple(names), tuple(colors), rest_index)

    @classmethod
    def from_json(cls, path) -> ClassScheme:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SchemeError(f"class scheme file {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SchemeError(f"cannot read class scheme {path}: {exc}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SchemeError(f"class scheme {path} is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    # -- colour overlay codec --------------------------------------------
    def decode_colors(self, rgb: np.ndarray) -> np.ndarray:
        """Colour overlay (H, W, 3) uint8 -> integer labels (H, W) uint8."""
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[-1] != 3:
            raise SchemeError(f"a colour overlay must be (height, width, 3), got shape {rgb.shape}")
        packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
        fill = 0 if self.rest is None else self.rest + 1
        out = np.full(packed.shape, fill, dtype=np.uint8)
        matched = np.zeros(packed.shape, dtype=bool)
        for label, (r, g, b) in enumerate(self.colors, start=1):
            hit = packed == ((r << 16) | (g << 8) | b)
            out[hit] = label
            matched |= hit
        if self.rest is None and not matched.all():
            values, counts = np.unique(packed[~matched], return_counts=True)
            worst = values[np.argmax(counts)]
            pos = np.argwhere(packed == worst)[0]
            colour = color_hex(((worst >> 16) & 255, (worst >> 8) & 255, worst & 255))
            raise SchemeError(
                f"colour {colour} ({counts.max()} pixels, first at row {pos[0]}, column {pos[1]}) "
                f"is not in the class scheme ({len(values)} unknown colour(s) in all); "
                "add it to the scheme or set a \"rest\" class"
            )
        return out

    def encode_colors(self, labels: np.ndarray, background=(0, 0, 0)) -> np.ndarray:
        """Integer labels -> colour overlay (H, W, 3) uint8; 0 gets ``background``."""
        labels = np.asarray(labels)
        lut = np.zeros((256, 3), dtype=np.uint8)
        lut[0] = background
        lut[1 : self.n_classes + 1] = self.colors
        return lut[np.clip(labels, 0, 255).astype(np.uint8)]

    def check_labels(self, labels: np.ndarray, what: str = "labels") -> None:
        top = int(labels.max()) if labels.size else 0
        if top > self.n_classes:
            raise SchemeError(
                f"{what} contain value {top}, but the class scheme has only {self.n_classes} "
                f"classes ({', '.join(self.names)}); give the matching scheme with --classes"
            )
        if labels.size and int(labels.min()) < 0:
            raise SchemeError(f"{what} contain negative values")


# Mineral grain is the "rest" class of the original annotations; its display
# colour (sand) is not a painted colour in the sample data.
SHALE = ClassScheme(
    names=("mineral grain", "organic matter", "pores", "clay"),
    colors=((230, 200, 120), (255, 0, 0), (0, 255, 0), (0, 0, 0)),
    rest=0,
)


def load_scheme(path=None) -> ClassScheme:
    return SHALE if path is None else ClassScheme.from_json(path)
