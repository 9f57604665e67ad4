"""Widgets built from the engine's one source of options (engine/options.py), so that the
GUI offers the command line's defaults, ranges and help."""

from __future__ import annotations

from magicgui.widgets import ComboBox, FloatSpinBox, LineEdit, SpinBox

from ..engine.options import Option


def option_widget(option: Option, label: str, default=None, step=None, tooltip: str = ""):
    """A control for ``option`` with its range and help; ``default`` replaces the option's
    where the GUI's use differs (e.g. a short fine-tuning budget)."""
    value = option.default if default is None else default
    tip = tooltip or option.help
    if option.unit:
        tip = f"{tip} ({option.unit})"
    if option.choices is not None:
        return ComboBox(label=label, choices=list(option.choices), value=value, tooltip=tip)
    if option.type in (int, float):
        kind = SpinBox if option.type is int else FloatSpinBox
        low = 0 if option.min is None else option.min
        high = 1_000_000 if option.max is None else option.max
        kw = {} if step is None else {"step": step}
        return kind(
            label=label,
            value=value if value is not None else low,
            min=low,
            max=high,
            tooltip=tip,
            **kw,
        )
    return LineEdit(label=label, value="" if value is None else str(value), tooltip=tip)


def parse_alpha(text: str, n_classes: int):
    """The focal alpha field: empty, one number, or one per class; a plain message otherwise."""
    text = text.strip()
    if not text:
        return None
    try:
        vals = [float(a) for a in text.split(",")]
    except ValueError:
        raise ValueError(
            f"alpha must be empty, one number, or {n_classes} numbers separated by "
            f"commas; '{text}' is not"
        ) from None
    if len(vals) not in (1, n_classes):
        raise ValueError(f"alpha has {len(vals)} values; give one, or one per class ({n_classes})")
    return vals[0] if len(vals) == 1 else vals
