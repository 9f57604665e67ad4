"""Decoding mask files through a ClassScheme, and the one-line advice for a mask
that does not fit its scheme (which scheme form to give instead)."""

from __future__ import annotations

import json

import numpy as np

from .errors import SchemeError

#: unknown colours in at most this fraction of a mask's pixels are taken for
#: antialiasing or stray brush strokes and left unlabelled, not an error
STRAY_FRACTION = 0.001
#: channels of a "grey" pixel differ by at most this much (rest_grey_only)
GREY_SPREAD = 8
_SHOWN = 6  # unknown colours / values named in one error line


def _counts(values, counts, fmt) -> str:
    order = np.argsort(counts)[::-1][:_SHOWN]
    text = ", ".join(f"{fmt(values[i])} ({int(counts[i])} pixels)" for i in order)
    return text + (f" and {len(values) - _SHOWN} more" if len(values) > _SHOWN else "")


def _hex(packed) -> str:
    p = int(packed)
    return f"#{(p >> 16) & 255:02x}{(p >> 8) & 255:02x}{p & 255:02x}"


def _example(scheme, values) -> str:
    """A value scheme for ``values`` with the scheme's names where the count fits."""
    values = [int(v) for v in values][:8]
    names = (
        list(scheme.names)
        if len(scheme.names) == len(values)
        else [f"class {i + 1}" for i in range(len(values))]
    )
    classes = [{"name": n, "value": v} for n, v in zip(names, values)]
    return json.dumps({"classes": classes, "rest": None}, ensure_ascii=False)


def scheme_hint(scheme, mask: np.ndarray) -> str:
    """What to do when an integer mask does not fit ``scheme``."""
    values = np.unique(np.asarray(mask))
    shown = ", ".join(str(int(v)) for v in values[:8]) + (" ..." if len(values) > 8 else "")
    kind = "grey values" if len(values) <= 2 else "values"
    return (
        f'this mask holds {kind} {shown}: give a scheme with "value" entries, e.g. '
        f"{_example(scheme, values)}"
    )


def decode_colors(scheme, rgb: np.ndarray, what: str = "the mask") -> np.ndarray:
    """Colour overlay (H, W, 3) uint8 -> labels (H, W) uint8 through colour entries."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise SchemeError(f"a colour overlay must be (height, width, 3), got shape {rgb.shape}")
    if scheme.values is not None:
        grey = rgb.max(-1) == rgb.min(-1)
        if grey.all():  # a grey mask saved as RGB: its values are the grey levels
            return scheme.decode_values(rgb[..., 0], what)
        cols, counts = np.unique(_pack(rgb[~grey]), return_counts=True)
        raise SchemeError(
            f"{what} holds colours {_counts(cols, counts, _hex)}, but the class "
            'scheme gives values: give a scheme with "color" entries, e.g. '
            + _colour_example(cols, counts)
        )
    packed = _pack(rgb)
    out = np.zeros(packed.shape, dtype=np.uint8)
    matched = np.zeros(packed.shape, dtype=bool)
    for label, (r, g, b) in enumerate(scheme.colors, start=1):
        hit = packed == ((r << 16) | (g << 8) | b)
        out[hit] = label
        matched |= hit
    unknown = ~matched
    if scheme.rest is not None:
        takes = unknown
        if scheme.rest_grey_only:
            spread = rgb.max(-1).astype(np.int16) - rgb.min(-1)
            takes = unknown & (spread <= GREY_SPREAD)
        out[takes] = scheme.rest + 1
        unknown &= ~takes
    n_unknown = int(unknown.sum())
    if n_unknown and n_unknown > STRAY_FRACTION * unknown.size:
        _unknown_colours_error(scheme, packed, unknown, what)
    return out  # a few stray colours (antialiasing) stay 0 = unlabelled


def _pack(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    r, g, b = (rgb[..., i].astype(np.uint32) for i in range(3))
    return (r << 16) | (g << 8) | b


def _colour_example(cols, counts) -> str:
    order = np.argsort(counts)[::-1][:8]
    classes = [{"name": f"class {i + 1}", "color": _hex(cols[j])} for i, j in enumerate(order)]
    return json.dumps({"classes": classes, "rest": None})


def _unknown_colours_error(scheme, packed, unknown, what):
    cols, counts = np.unique(packed[unknown], return_counts=True)
    order = np.argsort(counts)[::-1]
    pos = np.argwhere(packed == cols[order[0]])[0]
    first = (
        f"{_hex(cols[order[0]])} ({counts[order[0]]} pixels, "
        f"first at row {pos[0]}, column {pos[1]})"
    )
    others = _counts(cols[order[1:]], counts[order[1:]], _hex) if len(cols) > 1 else ""
    listed = ", ".join(f"{_hex_rgb(c)} = {n}" for n, c in zip(scheme.names, scheme.colors))
    rest = (
        f'; "{scheme.names[scheme.rest]}" takes only grey pixels'
        if scheme.rest is not None
        else '; set a "rest" class to take them'
    )
    raise SchemeError(
        f"{what} holds colours outside the class scheme: {first}{', ' if others else ''}{others} "
        f"({len(cols)} unknown colour(s) in all; the scheme lists {listed}{rest}); "
        "give the mask's own scheme with --classes, "
        f"e.g. {_colour_example(cols, counts)}"
    )


def _hex_rgb(rgb) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def decode_values(scheme, mask: np.ndarray, what: str = "the mask") -> np.ndarray:
    """Integer mask (any width, any values) -> labels (H, W) uint8 through value entries."""
    mask = np.asarray(mask)
    if mask.dtype == bool:
        mask = mask.astype(np.uint8)
    if mask.dtype.kind == "f":
        if not np.isfinite(mask).all() or (mask != np.round(mask)).any():
            raise SchemeError(
                f"{what} holds fractional or non-finite values; a mask holds whole "
                "numbers (one per class)"
            )
        mask = mask.astype(np.int64)
    if mask.dtype.kind not in "iu":
        raise SchemeError(f"{what} has type {mask.dtype}; a mask holds whole numbers")
    if scheme.values is None:
        raise SchemeError('decode_values needs a scheme with "value" entries')
    found, inverse, counts = np.unique(mask, return_inverse=True, return_counts=True)
    lut = np.zeros(len(found), dtype=np.uint8)
    listed = {v: i + 1 for i, v in enumerate(scheme.values)}
    for i, v in enumerate(found):
        lut[i] = listed.get(int(v), 0)
    missing = (lut == 0) & ~np.isin(found, scheme.unlabelled)  # "unlabelled" values stay 0
    if missing.any():
        if scheme.rest is None:
            wants = ", ".join(f"{v} = {n}" for n, v in zip(scheme.names, scheme.values))
            raise SchemeError(
                f"{what} holds values the class scheme does not list: "
                f"{_counts(found[missing], counts[missing], lambda v: str(int(v)))} (the scheme "
                f'lists {wants}); add them to the scheme, set "rest" to a class name, or '
                'list the values of unpainted pixels in "unlabelled" (e.g. "unlabelled": 0)'
            )
        lut[missing] = scheme.rest + 1
    return lut[inverse.reshape(mask.shape)]
