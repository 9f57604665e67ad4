"""Registering serial sections: known drifts are found, undone and cropped away."""

from pathlib import Path

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_rockseg.engine.align import (
    Alignment,
    align,
    align_steps,
    apply_shifts,
    register,
    shift_slice,
    valid_box,
)
from napari_rockseg.engine.errors import InputError
from napari_rockseg.engine.events import Progress
from napari_rockseg.engine.io.volume import read_volume

FIBSEM = Path(__file__).resolve().parents[2] / "shared" / "data" / "fibsem-stack" / "slices"

#: drift of each slice (content moved by +drift); slice 0 is the reference
DRIFT = np.array([[0, 0], [2, -3], [3.5, -1.25], [1.2, 0.7], [-4, 5], [-2.6, 2.3], [-1, 6]])
SIZE, MARGIN = 160, 24


def _texture(seed=0, size=SIZE + 2 * MARGIN):
    """Smooth random texture, like grains at a few pixels' scale."""
    noise = np.random.default_rng(seed).normal(size=(size, size))
    return ndi.gaussian_filter(noise, 3).astype(np.float32)


def _drifted(drift, noise=0.0, seed=0):
    """Slices cut from one texture moved by ``drift``; whole-pixel moves copy exactly."""
    big = _texture(seed)
    window = (slice(MARGIN, MARGIN + SIZE),) * 2
    planes = [
        np.roll(big, d.astype(int), (0, 1))[window]
        if np.all(d == np.round(d))
        else ndi.shift(big, d, order=3)[window]
        for d in drift
    ]
    vol = np.stack(planes)
    if noise:
        vol = vol + np.random.default_rng(seed + 1).normal(0, noise * vol.std(), vol.shape)
    return vol.astype(np.float32)


@pytest.mark.parametrize("reference", ["previous", "first"])
def test_known_integer_and_subpixel_shifts_are_recovered(reference):
    vol = _drifted(DRIFT, noise=0.3)
    result = align(vol, reference=reference)
    assert isinstance(result, Alignment)
    np.testing.assert_allclose(result.shifts, -DRIFT, atol=0.2)  # undoing the drift


def test_aligned_slices_match_each_other_inside_the_box():
    vol = _drifted(DRIFT)
    result = align(vol)
    ref = result.aligned[0]
    for plane in result.aligned[1:]:
        assert np.abs(plane - ref).mean() < 0.06 * vol.std()  # only interpolation error left
    unaligned = vol[:, : ref.shape[0], : ref.shape[1]]
    assert np.abs(unaligned[4] - unaligned[0]).mean() > 0.5 * vol.std()


def test_whole_pixel_drift_is_undone_exactly_and_cropped_to_the_common_region():
    drift = np.array([[0, 0], [3, -2], [-1, 4], [2, 1]])
    vol = _drifted(drift)
    result = align(vol)
    np.testing.assert_array_equal(result.shifts, -drift)
    # slice i holds big[y - d] at y: undone by -d, valid where y + d stays inside
    y0, y1 = max(0, -drift[:, 0].min()), SIZE - drift[:, 0].max()
    x0, x1 = max(0, -drift[:, 1].min()), SIZE - drift[:, 1].max()
    assert result.box == (y0, y1, x0, x1) == (1, SIZE - 3, 2, SIZE - 4)
    expected = vol[0, y0:y1, x0:x1]
    for plane in result.aligned:
        np.testing.assert_array_equal(plane, expected)


def test_without_crop_the_frame_is_kept_and_margins_filled():
    drift = np.array([[0, 0], [3, -2]])
    vol = _drifted(drift) + 10
    result = align(vol, crop=False, fill=-1)
    assert result.aligned.shape == vol.shape and result.box == (0, SIZE, 0, SIZE)
    moved = result.aligned[1]
    assert (moved[-3:] == -1).all() and (moved[:, :2] == -1).all()
    assert (moved[:-3, 2:] > 0).all()


def test_valid_box_rounds_fractional_shifts_inwards():
    shifts = np.array([[0, 0], [1.5, -0.25], [-2.0000001, 0.5]])
    assert valid_box(shifts, (50, 40)) == (2, 48, 1, 39)
    with pytest.raises(InputError, match="drifted apart"):
        valid_box(np.array([[0, 0], [60, 0]]), (50, 40))


def test_max_shift_bounds_the_search():
    vol = _drifted(np.array([[0, 0], [7, 0]]))
    assert register(vol[0], vol[1]) == pytest.approx([-7, 0], abs=0.2)
    limited = register(vol[0], vol[1], max_shift=3)
    assert np.abs(limited).max() <= 3 + 1.5
    assert align(vol, max_shift=10).shifts[1] == pytest.approx([-7, 0], abs=0.2)


def test_steps_yield_progress_and_lazy_input_stays_lazy():
    vol = _drifted(DRIFT[:4])
    gen = align_steps(da.from_array(vol, chunks=(1, SIZE, SIZE)))
    events = []
    while True:
        try:
            events.append(next(gen))
        except StopIteration as stop:
            result = stop.value
            break
    assert all(isinstance(e, Progress) for e in events)
    assert [e.step for e in events if e.stage == "register"] == [1, 2, 3, 4]
    assert isinstance(result.aligned, da.Array)
    np.testing.assert_allclose(np.asarray(result.aligned), align(vol).aligned)


def test_blank_slice_is_kept_in_place_and_the_next_one_still_aligned():
    vol = _drifted(np.array([[0, 0], [2, 1], [0, 0], [4, -2]]))
    vol[2] = 0
    result = align(vol)
    np.testing.assert_allclose(result.shifts[[0, 1, 3]], [[0, 0], [-2, -1], [-4, 2]], atol=0.2)
    assert np.allclose(result.shifts[2], result.shifts[1])


def test_labels_move_by_the_grey_shifts_without_new_values():
    labels = np.zeros((3, 40, 40), np.uint8)
    labels[:, 10:20, 10:30] = 1
    labels[:, 25:35, 5:15] = 3
    moved = apply_shifts(labels, [[0, 0], [1.4, -2.6], [-3, 2]], order=0, crop=False)
    assert set(np.unique(moved.aligned)) <= {0, 1, 3}
    np.testing.assert_array_equal(moved.aligned[1], shift_slice(labels[1], (1, -3), order=0))
    assert shift_slice(labels[0], (0.5, 0)).dtype == np.uint8


def test_bad_input_is_one_clear_error():
    with pytest.raises(InputError, match="3-D volume"):
        align(np.zeros((32, 32)))
    with pytest.raises(InputError, match="'previous' or 'first'"):
        align(np.zeros((2, 32, 32)), reference="middle")
    with pytest.raises(InputError, match=r"\(slices, 2\)"):
        apply_shifts(np.zeros((2, 32, 32)), np.zeros((3, 2)))


def test_real_fibsem_stack_drift_is_found_and_removed():
    if not FIBSEM.is_dir():
        pytest.skip(f"{FIBSEM} is absent (the CI has it): no real stack to register")
    vol = read_volume(FIBSEM).data[:, 200:712, 300:1100]  # the drift is a translation
    result = align(vol)
    # the stack drifts by about a pixel per slice (checked by exhaustive search)
    steps = np.abs(np.diff(result.shifts, axis=0))
    assert steps.max() < 3 and steps[:, 0].mean() > 0.3

    def residual(stack):
        return np.mean([np.abs(register(stack[i], stack[i + 1])) for i in range(len(stack) - 1)])

    y0, y1, x0, x1 = result.box
    assert residual(result.aligned) < 0.1
    assert residual(vol[:, y0:y1, x0:x1]) > 0.3

    # a larger known drift added on top of the real one is recovered on real texture
    extra = np.array([(5 * np.sin(i), -4 * np.cos(i / 2)) for i in range(len(vol))]).round()
    extra -= extra[0]
    pad = 8
    moved = np.stack(
        [
            vol[
                i,
                pad + int(dy) : vol.shape[1] - pad + int(dy),
                pad + int(dx) : vol.shape[2] - pad + int(dx),
            ]
            for i, (dy, dx) in enumerate(extra)
        ]
    )
    again = align(moved)
    # compared step by step: each step's sub-pixel error is ~0.1 px; the chain sums them
    np.testing.assert_allclose(
        np.diff(again.shifts, axis=0), np.diff(result.shifts + extra, axis=0), atol=0.25
    )
