"""All results of a labels layer in one folder: labels TIFF with its class scheme, an overlay
PNG on the image, and the phase report as CSV and JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .._layers import scheme_of_layer
from .._writer import write_labels
from ..engine.analysis.rock import summary_row
from ..engine.io import overlay, write_png, write_text
from ._state import STORE


def export_results(folder, layer, image_layer, report: dict) -> list[str]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = layer.name.replace("/", "_")
    scheme = scheme_of_layer(layer, STORE.scheme)
    data = np.asarray(layer.data)
    paths = write_labels(
        str(folder / f"{stem}.tif"), data, {"scale": layer.scale, "metadata": layer.metadata}
    )
    if image_layer is not None and np.asarray(image_layer.data).shape[:2] == data.shape[:2]:
        from ..engine.io import to_grey

        grey = np.asarray(image_layer.data)
        grey = to_grey(grey) if image_layer.rgb else grey
        paths.append(str(write_png(folder / f"{stem} overlay.png", overlay(grey, data, scheme))))
    row = summary_row(report)
    text = ",".join(row) + "\n" + ",".join("" if v is None else str(v) for v in row.values())
    paths.append(str(write_text(folder / f"{stem} report.csv", text + "\n")))
    paths.append(
        str(
            write_text(
                folder / f"{stem} report.json", json.dumps(report, indent=1, default=float) + "\n"
            )
        )
    )
    return paths
