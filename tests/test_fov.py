"""The region outside a CT/FIB-SEM field of view: found where it is, never in rock."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_rockseg.engine.align import shift_slice
from napari_rockseg.engine.errors import InputError
from napari_rockseg.engine.fov import (
    VolumeView,
    outside_values,
    outside_view,
    outside_view_volume,
    view_note,
)
from napari_rockseg.engine.io import read_image

SAMPLE = Path(__file__).parents[1] / "src" / "napari_rockseg" / "data" / "shale_test.tif"
DATA = Path(__file__).parents[2] / "shared" / "data"
RIM = 2  # pixels from a disc's rim where the mask may differ from the drawn disc


def _radius(n: int, size: float = 0.45) -> tuple[np.ndarray, float]:
    yy, xx = np.mgrid[:n, :n]
    return np.hypot(yy - (n - 1) / 2, xx - (n - 1) / 2), size * n


def _ct_slice(n: int = 256, seed: int = 0, size: float = 0.45) -> tuple[np.ndarray, np.ndarray]:
    """A 16-bit CT slice: a noisy rock disc with dark pores (one of them clipped to 0
    and touching the rim), 0 outside; and the drawn outside."""
    rng = np.random.default_rng(seed)
    r, big = _radius(n, size)
    grey = rng.normal(30000, 2500, (n, n))
    pores = ndi.gaussian_filter(rng.normal(size=(n, n)), 3) > 0.25
    grey[pores] = rng.normal(6000, 1500, np.count_nonzero(pores))
    yy, xx = np.mgrid[:n, :n]
    rim_pore = np.hypot(yy - (n - 1) / 2, xx - (n - 1) / 2 - big) < 0.06 * n
    grey[rim_pore] = 0
    outside = r > big
    grey[outside] = 0
    return grey.clip(0, 65535).astype(np.uint16), outside


def _assert_disc_outside(mask, outside, n: int, size: float = 0.45) -> None:
    r, big = _radius(n, size)
    assert mask is not None
    wrong = mask != outside
    assert np.all(np.abs(r[wrong] - big) <= RIM), "mask differs from the disc away from its rim"
    assert np.count_nonzero(wrong) < 0.01 * outside.sum()


def _sem(n: int = 256, seed: int = 1) -> np.ndarray:
    """8-bit SEM-like rock: grains of mid grey with noise."""
    rng = np.random.default_rng(seed)
    grains = ndi.gaussian_filter(rng.normal(size=(n, n)), 4)
    return (
        (128 + 40 * grains / grains.std() + rng.normal(0, 12, (n, n))).clip(1, 254).astype(np.uint8)
    )


def test_disc_of_a_16_bit_ct_slice_is_found_and_rim_pores_stay_in_view():
    grey, outside = _ct_slice()
    mask = outside_view(grey)
    _assert_disc_outside(mask, outside, grey.shape[0])
    # the rim pore of value 0 touches the outside, yet lies within the disc: it is rock
    n = grey.shape[0]
    assert not mask[n // 2, n // 2 + int(0.45 * n) - 4]
    assert outside_values(grey, mask) == (0,)


def test_disc_wider_than_the_image_leaves_its_corners_outside():
    grey, outside = _ct_slice(seed=2, size=0.6)
    assert 0.02 < outside.mean() < 0.1 and not outside[128].any()
    _assert_disc_outside(outside_view(grey), outside, 256, size=0.6)


def test_float_slice_with_nan_outside_is_found():
    grey, outside = _ct_slice(seed=3)
    grey = grey.astype(np.float32) / 65535
    grey[outside] = np.nan
    _assert_disc_outside(outside_view(grey), outside, grey.shape[0])


def test_only_border_connected_nan_is_outside():
    grey = _sem().astype(np.float32)
    grey[100:110, 100:110] = np.nan  # a bad patch inside the image is no border
    assert outside_view(grey) is None
    grey[:2, 50:60] = np.nan
    mask = outside_view(grey)
    assert mask is not None and mask[:2, 50:60].all() and mask.sum() == 20


@pytest.mark.parametrize("pad", [255, 128])
def test_constant_pad_around_the_rock_is_found(pad):
    rock = _sem(200)
    grey = np.pad(rock, ((10, 30), (25, 5)), constant_values=pad)
    expected = np.pad(np.zeros_like(rock, bool), ((10, 30), (25, 5)), constant_values=True)
    mask = outside_view(grey)
    # a mid-grey pad equals some rock pixels at the edge: they stay in the view
    np.testing.assert_array_equal(mask, expected)


def test_margins_of_an_aligned_slice_are_found():
    rock = read_image(SAMPLE).data[:512, :512]  # real SEM texture, with clipped black pores
    moved = shift_slice(rock, (9.4, -14.2), fill=0)
    mask = outside_view(moved)
    assert mask is not None
    expected = np.zeros(rock.shape, bool)
    expected[:9], expected[:, -15:] = True, True
    wrong = mask != expected
    assert not wrong[12:, :-18].any() and not wrong[:8, :].any() and not wrong[:, -14:].any()


def test_rotated_rectangle_is_found():
    rock = _sem(160).astype(np.float32) + 1
    turned = ndi.rotate(rock, 17, order=0, reshape=True, cval=0)
    view = ndi.rotate(np.ones_like(rock), 17, order=0, reshape=True, cval=0) > 0
    mask = outside_view(turned)
    assert mask is not None
    assert np.count_nonzero(mask != ~view) < 0.005 * view.size


def test_the_shale_sample_has_no_border():
    assert outside_view(read_image(SAMPLE).data) is None


def _real_images() -> list[Path]:
    images = sorted(DATA.glob("battery-nanoct/*/images/*.tif"))
    images += sorted(DATA.glob("shale-sem/*/images/*.tif"))
    images += sorted(DATA.glob("fibsem-stack/slices/*.tif"))
    return images or [SAMPLE]  # without the shared data, the packaged sample still counts


def test_real_images_without_a_field_of_view_border_get_none():
    found = [p.name for p in _real_images() if outside_view(read_image(p).data) is not None]
    assert found == []


def test_black_pores_touching_the_border_are_not_outside():
    grey = _sem(256, seed=5)
    yy, xx = np.mgrid[:256, :256]
    pores = (
        (np.hypot(yy, xx) < 40)  # a pore over a corner, so the corner is black
        | (np.hypot(yy - 128, xx - 255) < 25)
        | (np.hypot(yy - 255, xx - 60) < 20)
        | (np.hypot(yy - 90, xx - 140) < 15)
    )
    grey[pores] = 0
    assert np.count_nonzero(pores) > 0.05 * grey.size
    assert outside_view(grey) is None


@pytest.mark.parametrize(
    "grey",
    [
        np.zeros((64, 64), np.uint8),
        np.full((64, 64), 0.5, np.float32),
        np.full((64, 64), np.nan, np.float32),
        np.arange(9, dtype=np.uint16).reshape(3, 3),
        np.zeros((3, 3), np.uint16),
        np.zeros((4, 64, 64), np.uint8),
    ],
    ids=["zeros", "one-float", "all-nan", "tiny", "tiny-zeros", "not-2d"],
)
def test_no_border_for_single_valued_tiny_or_non_planar_input(grey):
    assert outside_view(grey) is None


def _cylinder(n_slices: int = 6, n: int = 96) -> tuple[np.ndarray, np.ndarray]:
    planes = [_ct_slice(n, seed=z) for z in range(n_slices)]
    return np.stack([p[0] for p in planes]), planes[0][1]


@pytest.mark.parametrize("lazy", [False, True], ids=["numpy", "dask"])
def test_cylinder_volume_has_one_fixed_view(lazy):
    volume, outside = _cylinder()
    data = da.from_array(volume, chunks=(1, 96, 96)) if lazy else volume
    view = outside_view_volume(data)
    assert isinstance(view, VolumeView) and view.fixed is not None
    assert view.values == (0,)
    for z in range(volume.shape[0]):
        _assert_disc_outside(view[z], outside, 96)
        np.testing.assert_array_equal(view.plane(z, volume[z]), view[z])


def test_a_slice_that_does_not_fit_the_fixed_view_gets_its_own():
    volume, outside = _cylinder()
    view = outside_view_volume(volume)
    plane = _sem(96)  # a slice of rock with no border at all
    assert not view.plane(0, plane).any()


def test_aligned_stack_gets_a_mask_per_slice():
    rock = read_image(SAMPLE).data[:256, :256]
    shifts = [(0, 0), (6.0, 3.0), (-5.0, 8.0), (3.0, -7.0), (-8.0, -4.0)]
    stack = np.stack([shift_slice(rock, s, fill=0) for s in shifts])
    view = outside_view_volume(stack)
    assert view is not None and view.fixed is None
    assert not view[0].any()  # the reference slice is not moved
    for z, (dy, dx) in enumerate(shifts[1:], start=1):
        expected = np.ones(rock.shape, bool)
        expected[
            max(0, int(dy)) : 256 + min(0, int(dy)), max(0, int(dx)) : 256 + min(0, int(dx))
        ] = False
        np.testing.assert_array_equal(view[z], expected)


def test_volume_without_border_gives_none_and_planes_are_refused():
    assert outside_view_volume(np.stack([_sem(64, seed=s) for s in range(3)])) is None
    with pytest.raises(InputError, match="outside_view"):
        outside_view_volume(_sem(64))


def test_note_says_how_much_and_which_constant():
    grey, _ = _ct_slice()
    mask = outside_view(grey)
    note = view_note(mask, grey)
    assert f"{100 * mask.mean():.1f} % of the image" in note
    assert "(constant value 0)" in note and "out of the phase fractions" in note
    assert "constant" not in view_note(mask)
    volume, _ = _cylinder()
    assert "% of the volume" in view_note(outside_view_volume(volume))
    nan_grey = grey.astype(np.float32)
    nan_grey[mask] = np.nan
    assert "(constant value NaN)" in view_note(outside_view(nan_grey), nan_grey)
