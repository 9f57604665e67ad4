"""Sample data: the shale SEM test image with its ground truth (BSD-3-Clause, Yin 2022)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from .engine import io
from .engine.classes import SHALE


def sample_path(name: str) -> Path:
    return Path(str(files("napari_rockseg").joinpath("data", name)))


def shale_sample():
    from ._layers import image_kwargs, labels_kwargs

    image = io.read_image(sample_path("shale_test.tif"))
    truth = io.read_labels(sample_path("shale_test_labels.tif"), SHALE, image.data.shape)
    ikw = image_kwargs(image, "shale SEM")
    return [
        (image.data, ikw, "image"),
        (
            truth,
            labels_kwargs(
                SHALE, "shale SEM ground truth", scale=ikw.get("scale"), units=ikw.get("units")
            ),
            "labels",
        ),
    ]
