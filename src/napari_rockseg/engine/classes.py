"""Class schemes: names, colours or values, label values, and the mask codecs.

Labels are integers: 0 = unlabelled (ignored by training and metrics),
1..K = the scheme's classes in list order.  A mask file decodes through the
scheme in one of two forms:

- colour entries (``{"name": "pore", "color": "#00ff00"}``): colour overlays,
  RGB or palette images; ``rest`` names the class of every unlisted colour
  (with ``rest_grey_only`` only unlisted *grey* pixels, as in annotations
  painted over a grey copy of the image, where any other colour is a mistake);
- value entries (``{"name": "pore", "value": 0}``): integer masks of any width
  with any values, 0 included (grey 0/255 masks, 16-bit masks, palette
  indices); ``rest`` names the class of every unlisted value.

With ``rest`` null an unlisted colour or value is an error that names it.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import SchemeError

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]")
_VALUE_LIMIT = 2**32  # 32-bit masks, signed or not


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
        except (TypeError, ValueError, OverflowError):
            raise SchemeError(f"colour {value!r} must be three integers 0-255") from None
        if all(0 <= v <= 255 for v in rgb) and all(float(v) == int(v) for v in value):
            return rgb
    raise SchemeError(f"colour {value!r} must be '#rrggbb' or three integers 0-255")


def parse_value(value, index: int) -> int:
    """A class's mask value: a whole number that fits a 32-bit mask."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and isinstance(value, float):
        ok = math.isfinite(value) and value == int(value)
    if not ok or not -_VALUE_LIMIT < int(value) < _VALUE_LIMIT:
        raise SchemeError(
            f'class {index + 1}: "value" {value!r} must be a whole number '
            "(the pixel value of that class in the mask)"
        )
    return int(value)


def color_hex(rgb) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def clean_name(name) -> str:
    """A class name safe to print: no ANSI escapes or control characters, one line."""
    text = _ANSI.sub("", str(name))
    text = "".join(" " if unicodedata.category(c).startswith("C") else c for c in text)
    return " ".join(text.split())[:100]


#: display colours of value schemes whose entries give none (distinct, then HSV steps)
_PALETTE = (
    (230, 200, 120),
    (255, 0, 0),
    (0, 255, 0),
    (0, 0, 255),
    (255, 255, 0),
    (255, 0, 255),
    (0, 255, 255),
    (255, 128, 0),
    (128, 0, 255),
    (0, 128, 64),
)


def default_colors(n: int) -> tuple[tuple[int, int, int], ...]:
    import colorsys

    colors = dict.fromkeys(_PALETTE)
    i = 0
    while len(colors) < n:  # golden-ratio hue steps never repeat; rounding may, so loop on
        hue, sat, val = (i * 0.618034) % 1, 0.9 - 0.4 * (i % 2), 0.95 - 0.3 * (i // 2 % 2)
        rgb = colorsys.hsv_to_rgb(hue, sat, val)
        colors.setdefault(tuple(round(255 * c) for c in rgb))
        i += 1
    return tuple(colors)[:n]


@dataclass(frozen=True)
class ClassScheme:
    """Names and display colours of classes 1..K, and how masks encode them:
    by colour (``values`` None) or by the integer ``values``.  ``rest`` is the
    0-based index of the class that takes unlisted colours / values (or None)."""

    names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...] = ()
    rest: int | None = None
    values: tuple[int, ...] | None = None
    rest_grey_only: bool = field(default=False)
    #: mask values that mean "unpainted" in a value scheme (decoded to 0)
    unlabelled: tuple[int, ...] = ()

    def __post_init__(self):
        if len(self.names) == 0:
            raise SchemeError("a class scheme needs at least one class")
        if len(self.names) > 255:
            raise SchemeError("a class scheme has at most 255 classes")
        names = tuple(clean_name(n) for n in self.names)
        object.__setattr__(self, "names", names)
        if not self.colors and self.values is not None:
            object.__setattr__(self, "colors", default_colors(len(names)))
        if len(names) != len(self.colors):
            raise SchemeError("a class scheme needs one colour per class")
        seen = set()
        for name in names:
            if not name:
                raise SchemeError("every class needs a non-empty name")
            if name.lower() in seen:
                raise SchemeError(f"class name {name!r} appears twice; names must be unique")
            seen.add(name.lower())
        if len(set(self.colors)) != len(self.colors):
            dup = next(c for c in self.colors if self.colors.count(c) > 1)
            raise SchemeError(
                f"colour {color_hex(dup)} is used by two classes; colours must be unique"
            )
        if self.values is not None:
            if len(self.values) != len(names):
                raise SchemeError("a value scheme needs one value per class")
            if len(set(self.values)) != len(self.values):
                dup = next(v for v in self.values if self.values.count(v) > 1)
                raise SchemeError(f"value {dup} is used by two classes; values must be unique")
        if self.rest is not None and not 0 <= self.rest < len(names):
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
        if self.values is None:
            classes = [{"name": n, "color": color_hex(c)} for n, c in zip(self.names, self.colors)]
        else:
            classes = [
                {"name": n, "value": v, "color": color_hex(c)}
                for n, v, c in zip(self.names, self.values, self.colors)
            ]
        out = {"classes": classes, "rest": None if self.rest is None else self.names[self.rest]}
        if self.rest_grey_only:
            out["rest_grey_only"] = True
        if self.unlabelled:
            out["unlabelled"] = list(self.unlabelled)
        return out

    @classmethod
    def from_dict(cls, data) -> ClassScheme:
        if not isinstance(data, dict) or not isinstance(data.get("classes"), list):
            raise SchemeError('a class scheme must be a JSON object with a "classes" list')
        entries = data["classes"]
        by_value = any(isinstance(e, dict) and "value" in e for e in entries)
        # names alone: labels 1..K in the scheme's order, 0 unpainted, colours chosen
        names_only = not by_value and not any(isinstance(e, dict) and "color" in e for e in entries)
        names, colors, values = [], [], []
        for i, entry in enumerate(entries):
            key = "value" if by_value else "name" if names_only else "color"
            if not isinstance(entry, dict) or "name" not in entry or key not in entry:
                raise SchemeError(
                    f'class {i + 1} needs a "name" and a "{key}" (give every class '
                    'a "value", or every class a "color")'
                )
            if not isinstance(entry["name"], (str, int, float)):
                raise SchemeError(f'class {i + 1}: "name" must be text')
            names.append(clean_name(entry["name"]))
            if by_value:
                values.append(parse_value(entry["value"], i))
            if "color" in entry:
                colors.append(parse_color(entry["color"]))
        if by_value and len(colors) not in (0, len(names)):
            raise SchemeError('give a "color" to every class of a value scheme or to none')
        rest = data.get("rest")
        rest_index = None
        if rest is not None:
            if not isinstance(rest, str) or clean_name(rest) not in names:
                raise SchemeError(
                    f'"rest" names {clean_name(rest)!r}, which is not one of the classes'
                )
            rest_index = names.index(clean_name(rest))
        unlabelled = data.get("unlabelled", [])
        unlabelled = [unlabelled] if not isinstance(unlabelled, list) else unlabelled
        unlabelled = tuple(parse_value(v, i) for i, v in enumerate(unlabelled))
        if names_only:
            values, unlabelled = list(range(1, len(names) + 1)), unlabelled or (0,)
        if unlabelled and not (by_value or names_only):
            raise SchemeError('"unlabelled" needs a scheme whose classes have "value" entries')
        if set(unlabelled) & set(values):
            raise SchemeError('a value is both a class\'s and "unlabelled"')
        return cls(
            tuple(names),
            tuple(colors),
            rest_index,
            tuple(values) if by_value or names_only else None,
            bool(data.get("rest_grey_only", False)),
            unlabelled,
        )

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
        except RecursionError:
            raise SchemeError(
                f"class scheme {path} is nested too deeply to be a class scheme"
            ) from None
        return cls.from_dict(data)

    # -- colour overlay codec --------------------------------------------
    def decode_colors(self, rgb: np.ndarray, what: str = "the mask") -> np.ndarray:
        """Colour overlay (H, W, 3) uint8 -> integer labels (H, W) uint8."""
        from ._maskcodec import decode_colors

        return decode_colors(self, rgb, what)

    def decode_values(self, mask: np.ndarray, what: str = "the mask") -> np.ndarray:
        """Integer mask (any width, any values) -> labels 1..K through ``values``."""
        from ._maskcodec import decode_values

        return decode_values(self, mask, what)

    def encode_colors(self, labels: np.ndarray, background=(0, 0, 0)) -> np.ndarray:
        """Integer labels -> colour overlay (H, W, 3) uint8; 0 gets ``background``."""
        labels = np.asarray(labels)
        lut = np.zeros((256, 3), dtype=np.uint8)
        lut[0] = background
        lut[1 : self.n_classes + 1] = self.colors
        return lut[np.clip(labels, 0, 255).astype(np.uint8)]

    def check_labels(self, labels: np.ndarray, what: str = "labels") -> None:
        """Labels 0..K (0 = unlabelled) or one line that says which scheme form fits."""
        from ._maskcodec import scheme_hint

        top = int(labels.max()) if labels.size else 0
        if top > self.n_classes or (labels.size and int(labels.min()) < 0):
            raise SchemeError(
                f"{what} contain value {top if top > self.n_classes else int(labels.min())}, but "
                f"the class scheme has only {self.n_classes} classes ({', '.join(self.names)}); "
                + scheme_hint(self, labels)
            )


# Mineral grain is the "rest" class of the original annotations, which are pure
# colours painted over a grey copy of the image: the rest class takes the grey
# pixels, and any other colour means the mask belongs to another scheme.
# Its display colour (sand) is not a painted colour in the sample data.
SHALE = ClassScheme(
    names=("mineral grain", "organic matter", "pores", "clay"),
    colors=((230, 200, 120), (255, 0, 0), (0, 255, 0), (0, 0, 0)),
    rest=0,
    rest_grey_only=True,
)


def scheme_path(labels_path) -> Path:
    """Where a labels file's class scheme is saved beside it: ``<name>.classes.json``."""
    labels_path = Path(labels_path)
    return labels_path.with_name(labels_path.name.split(".")[0] + ".classes.json")


def load_scheme(path=None) -> ClassScheme:
    return SHALE if path is None else ClassScheme.from_json(path)
