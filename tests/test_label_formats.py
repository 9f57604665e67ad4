"""Masks in the formats public data sets use, each through the scheme form that fits it:
grey 0/255 masks, 0 as a class, 16-bit values, palette TIFF / PNG indices (value
entries); colour overlays (colour entries); and one clear line when they do not fit."""

import json

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_rockseg.engine import io
from napari_rockseg.engine.classes import SHALE, ClassScheme, load_scheme
from napari_rockseg.engine.errors import SchemeError
from napari_rockseg.engine.models.info import ModelInfo

PORE_SOLID = {
    "classes": [{"name": "pore", "value": 0}, {"name": "solid", "value": 255}],
    "rest": None,
}
BATTERY_COLOURS = [(255, 0, 0), (79, 255, 130), (198, 118, 255)]  # NMC, CBD, pore


def _blobs(shape=(48, 64), n=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, shape)


def _palette_tiff(path, indices, colours):
    cmap = np.zeros((3, 256), np.uint16)
    for i, c in enumerate(colours):
        cmap[:, i] = np.array(c, np.uint16) * 257
    tifffile.imwrite(path, indices.astype(np.uint8), photometric="palette", colormap=cmap)


def test_grey_0_255_mask_reads_through_a_value_scheme(tmp_path):
    mask = (_blobs(n=2) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "m.tif", mask)
    scheme = ClassScheme.from_dict(PORE_SOLID)
    labels = io.read_labels(tmp_path / "m.tif", scheme, mask.shape)
    assert np.array_equal(labels, np.where(mask == 0, 1, 2))
    Image.fromarray(mask).save(tmp_path / "m.png")
    assert np.array_equal(io.read_labels(tmp_path / "m.png", scheme), labels)
    # the same mask saved as grey RGB
    Image.fromarray(np.repeat(mask[..., None], 3, -1)).save(tmp_path / "rgb.png")
    assert np.array_equal(io.read_labels(tmp_path / "rgb.png", scheme), labels)


def test_grey_mask_with_a_colour_scheme_says_which_form_to_use(tmp_path):
    mask = (_blobs(n=2) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "m.tif", mask)
    with pytest.raises(SchemeError) as err:
        io.read_labels(tmp_path / "m.tif", SHALE)
    msg = str(err.value)
    assert "\n" not in msg and 'grey values 0, 255: give a scheme with "value" entries' in msg
    example = json.loads(msg.split("e.g. ", 1)[1])  # the example is a usable scheme
    assert ClassScheme.from_dict(example).values == (0, 255)


def test_zero_as_a_class_in_palette_tiff_and_png(tmp_path):
    """Palette masks where index 0 is a class (the battery nano-CT labels): a value
    scheme reads the indices, the colour scheme the palette colours; both agree."""
    idx = _blobs(n=3)
    _palette_tiff(tmp_path / "p.tif", idx, BATTERY_COLOURS)
    by_value = ClassScheme.from_dict(
        {
            "classes": [
                {"name": "NMC", "value": 0},
                {"name": "CBD", "value": 1},
                {"name": "pore", "value": 2},
            ],
            "rest": None,
        }
    )
    by_colour = ClassScheme(("NMC", "CBD", "pore"), tuple(BATTERY_COLOURS))
    assert np.array_equal(io.read_labels(tmp_path / "p.tif", by_value), idx + 1)
    assert np.array_equal(io.read_labels(tmp_path / "p.tif", by_colour), idx + 1)
    im = Image.fromarray(idx.astype(np.uint8), mode="P")
    im.putpalette([v for c in BATTERY_COLOURS for v in c])
    im.save(tmp_path / "p.png")
    assert np.array_equal(io.read_labels(tmp_path / "p.png", by_value), idx + 1)
    assert np.array_equal(io.read_labels(tmp_path / "p.png", by_colour), idx + 1)


def test_16_bit_values_unlisted_value_error_and_rest(tmp_path):
    mask = (_blobs(n=3) * 1000 + 1000).astype(np.uint16)  # 1000, 2000, 3000
    mask[0, :5] = 7
    tifffile.imwrite(tmp_path / "m.tif", mask)
    two = {"classes": [{"name": "grain", "value": 1000}, {"name": "pore", "value": 2000}]}
    with pytest.raises(
        SchemeError,
        match=r"values the class scheme does not list: 3000 \(\d+ "
        r"pixels\), 7 \(5 pixels\).*set \"rest\"",
    ):
        io.read_labels(tmp_path / "m.tif", ClassScheme.from_dict({**two, "rest": None}))
    labels = io.read_labels(tmp_path / "m.tif", ClassScheme.from_dict({**two, "rest": "grain"}))
    assert np.array_equal(labels, np.where(mask == 2000, 2, 1))


def test_shale_scheme_refuses_another_schemes_colour_mask(tmp_path):
    """#32 item 14: blue / purple / green painted colours are not read as mineral grain."""
    idx = _blobs(n=3)
    rgb = np.array(BATTERY_COLOURS, np.uint8)[idx]
    Image.fromarray(rgb).save(tmp_path / "c.png")
    with pytest.raises(
        SchemeError,
        match=r"colours outside the class scheme: #(4fff82|c676ff) "
        r"\(\d+ pixels, first at row",
    ):
        io.read_labels(tmp_path / "c.png", SHALE)
    # grey (unpainted) pixels are the rest class; a few antialiased pixels stay unlabelled
    grey = np.full((100, 100, 3), 120, np.uint8)
    grey[10:20, 10:20] = (255, 0, 0)
    grey[20, 10:15] = (200, 60, 60)
    labels = SHALE.decode_colors(grey)
    assert (labels[10:20, 10:20] == 2).all() and (labels[20, 10:15] == 0).all()
    assert (labels[50:] == 1).all()
    # a user scheme whose rest class takes every unlisted colour keeps doing so
    scheme = ClassScheme(("bg", "red"), ((0, 0, 0), (255, 0, 0)), rest=0)
    assert (scheme.decode_colors(rgb)[idx != 0] == 1).all()


def test_plain_integer_mask_without_scheme_still_works(tmp_path):
    lab = _blobs(n=5).astype(np.uint8)
    tifffile.imwrite(tmp_path / "l.tif", lab)
    assert np.array_equal(io.read_labels(tmp_path / "l.tif", SHALE), lab)


def test_value_scheme_round_trips_through_json_and_model_info(tmp_path):
    (tmp_path / "s.json").write_text(json.dumps({**PORE_SOLID, "rest": "solid"}))
    scheme = load_scheme(tmp_path / "s.json")
    assert scheme.values == (0, 255) and scheme.labels == (1, 2) and scheme.rest == 1
    assert ClassScheme.from_dict(scheme.to_dict()) == scheme
    info = ModelInfo(scheme)
    back = ModelInfo.from_dict(json.loads(json.dumps(info.to_dict())))
    assert back.scheme == scheme and back.scheme.values == (0, 255)
    assert ClassScheme.from_dict(SHALE.to_dict()) == SHALE


def test_class_names_are_sanitised_for_the_terminal():
    scheme = ClassScheme.from_dict(
        {
            "classes": [
                {"name": "\x1b[31mpore\x1b[0m\nspace\x07", "value": 0},
                {"name": "solid", "value": 1},
            ]
        }
    )
    assert scheme.names[0] == "pore space"
    with pytest.raises(SchemeError, match="non-empty name"):
        ClassScheme.from_dict({"classes": [{"name": "\x1b[2J\n", "value": 0}]})


@pytest.mark.parametrize(
    "data, message",
    [
        ({"classes": [{"name": "a", "value": 0}, {"name": "b", "color": "#ffffff"}]}, '"value"'),
        ({"classes": [{"name": "a", "value": 1.5}]}, "whole number"),
        ({"classes": [{"name": "a", "value": True}]}, "whole number"),
        ({"classes": [{"name": "a", "value": "0"}]}, "whole number"),
        ({"classes": [{"name": "a", "value": 1e300}]}, "whole number"),
        ({"classes": [{"name": "a", "value": 3}, {"name": "b", "value": 3}]}, "used by two"),
        ({"classes": [{"name": "a", "color": [float("inf"), 0, 0]}]}, "three integers"),
        ({"classes": [{"name": "a", "value": 0}], "rest": ["a"]}, "not one of the classes"),
    ],
)
def test_malformed_value_schemes_are_refused(data, message):
    with pytest.raises(SchemeError, match=message):
        ClassScheme.from_dict(data)


def test_deeply_nested_scheme_json_is_one_line(tmp_path):
    (tmp_path / "s.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(SchemeError, match="nested too deeply|not valid JSON"):
        load_scheme(tmp_path / "s.json")


def test_colour_mask_with_a_value_scheme_says_give_colours(tmp_path):
    rgb = np.array(BATTERY_COLOURS, np.uint8)[_blobs(n=3)]
    Image.fromarray(rgb).save(tmp_path / "c.png")
    with pytest.raises(SchemeError, match='holds colours #.*give a scheme with "color" entries'):
        io.read_labels(tmp_path / "c.png", ClassScheme.from_dict(PORE_SOLID))
