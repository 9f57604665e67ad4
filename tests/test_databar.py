"""Data bar detection measured on images with and without one: no rows are cut from
CT, nano-CT or FIB-SEM slices (flat padding outside a circular field of view
included), and the right rows from SEM images with a bar (real and drawn)."""

import functools
import io as _io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage as ndi

from napari_rockseg.engine import io

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@functools.lru_cache(maxsize=8)
def _rock(h, w, seed):
    """Rock-like grey 0..1: grains (overlapping discs of varied size and brightness),
    dark pores, smoothed noise and blur."""
    rng = np.random.default_rng(seed)
    seeds = np.zeros((h, w), bool)
    seeds[rng.integers(0, h, h * w // 400), rng.integers(0, w, h * w // 400)] = True
    dist, (iy, ix) = ndi.distance_transform_edt(~seeds, return_indices=True)
    radius = rng.uniform(5, 16, (h, w))[iy, ix]
    tone = rng.uniform(0.5, 0.85, (h, w))[iy, ix]
    texture = ndi.gaussian_filter(rng.normal(0, 1, (h, w)), 3) * 0.3
    img = np.where(dist < radius, tone, 0.2 + 0.1 * texture) + rng.normal(0, 0.06, (h, w))
    return ndi.gaussian_filter(img, 1.2)


def ct_slice(size=(500, 560), seed=0, dtype=np.uint16, fov=None, pad=0):
    """A micro-CT-like slice; ``fov`` = radius of a circular field of view whose
    outside is the constant ``pad``, as in reconstructions."""
    h, w = size
    top = 60000 if dtype == np.uint16 else 250
    out = np.clip(_rock(h, w, seed) * top, 1, top)
    if fov:
        yy, xx = np.mgrid[:h, :w]
        out[(yy - h / 2) ** 2 + (xx - w / 2) ** 2 > fov**2] = pad
    return out.astype(dtype)


def sem_with_bar(bar=70, h=600, w=800, bg=0, ink=255, seed=1, jpeg=False):
    """An SEM-like image with a drawn data bar: text fields and a scale bar on a flat strip."""
    rock = ct_slice((h - bar, w), seed=seed, dtype=np.uint8)
    strip = Image.new("L", (w, bar), bg)
    draw = ImageDraw.Draw(strip)
    draw.text((10, 8), "EHT = 5.00 kV   WD = 6.1 mm   Mag = 20.00 K X", fill=ink)
    draw.text((10, bar // 2), "Signal A = SE2   Sample: shale 14b", fill=ink)
    draw.rectangle((w - 200, bar // 2, w - 60, bar // 2 + 4), fill=ink)
    draw.text((w - 180, bar // 2 + 10), "1 um", fill=ink)
    img = np.vstack([rock, np.asarray(strip)])
    if jpeg:
        buf = _io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=90)
        img = np.asarray(Image.open(buf))
    return img


def _grid(h, rows):
    return h - ((h - rows) // io.DATA_BAR_GRID) * io.DATA_BAR_GRID


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("fov, pad", [(None, 0), (250, 0), (280, 0), (200, 0), (230, 65535)])
def test_no_rows_cut_from_ct_like_slices(dtype, fov, pad):
    img = ct_slice(
        seed=3,
        dtype=dtype,
        fov=fov,
        pad=min(pad, np.iinfo(np.uint8).max) if dtype == np.uint8 else pad,
    )
    assert io.detect_data_bar(img) == 0


def test_no_rows_cut_from_float_ct_with_nan_outside_the_field_of_view():
    img = ct_slice(seed=4, dtype=np.float32, fov=240).astype(np.float32) / 60000 * 4 - 1
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]
    img[(yy - 250) ** 2 + (xx - 280) ** 2 > 240**2] = np.nan
    assert io.detect_data_bar(img) == 0


@pytest.mark.parametrize(
    "bg, ink, jpeg", [(0, 255, False), (255, 0, False), (40, 230, False), (0, 255, True)]
)
def test_drawn_data_bar_is_found(bg, ink, jpeg):
    img = sem_with_bar(bar=70, bg=bg, ink=ink, jpeg=jpeg)
    assert io.detect_data_bar(img) == _grid(600, 70)
    assert io.detect_data_bar(img[:530]) == 0  # the same rock without its bar


def _real(pattern):
    return sorted(DATA.glob(pattern))


def test_real_non_sem_images_lose_no_rows(test_pair):
    """Battery nano-CT (float32, normalised and raw detector values) and FIB-SEM slices;
    where ../shared/data is missing, the shale test image cropped above its bar."""
    paths = _real("battery-nanoct/*/images/*.tif") + _real("fibsem-stack/slices/*.tif")[::4]
    cut = {p.name: io.detect_data_bar(io.read_image(p).data) for p in paths}
    assert all(v == 0 for v in cut.values()), {k: v for k, v in cut.items() if v}
    assert io.detect_data_bar(io.read_image(test_pair[0]).data[:680]) == 0


def test_real_sem_images_lose_their_80_row_bar(test_pair):
    paths = _real("shale-sem/*/images/*.tif") or [test_pair[0]]
    for path in paths:
        assert io.detect_data_bar(io.read_image(path).data) == 80, path
