"""engine.filters: prediction's Gaussian filter and linear resize with torch and numpy, held to
scipy.ndimage's and scikit-image's results (what they replace on the command line's path)."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter as scipy_gaussian
from skimage.transform import resize as skimage_resize

from napari_rockseg.engine import filters

SHAPES = [(1, 5), (5, 1), (2, 2), (3, 7), (17, 33), (96, 80)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mode", ["reflect", "mirror"])
def test_gaussian_filter_equals_scipy(shape, mode):
    """Every sigma, both boundary modes, images smaller than the kernel (the reflection
    repeats), one sigma per axis with 0 leaving an axis alone."""
    x = np.random.default_rng(1).random(shape, dtype=np.float32)
    for sigma in (0.4, 1.0, 2.5, 7.5, (0.0, 1.5), (2.0, 0.0)):
        ours = filters.gaussian_filter(x, sigma, mode=mode)
        assert ours.dtype == np.float32 and ours.shape == x.shape
        np.testing.assert_allclose(ours, scipy_gaussian(x, sigma, mode=mode), atol=1e-6)
    x64 = x.astype(np.float64)
    ours = filters.gaussian_filter(x64, 1.5, mode=mode)
    assert ours.dtype == np.float64
    np.testing.assert_allclose(ours, scipy_gaussian(x64, 1.5, mode=mode), atol=1e-12)
    short = filters.gaussian_filter(x, 0.75, mode=mode)  # summed in float64, as scipy does
    assert (short != scipy_gaussian(x, 0.75, mode=mode)).mean() < 1e-3


def _targets(h, w):
    return [
        (1, 1),
        (2 * h + 1, 3 * w),
        (max(1, h // 3), max(1, w // 2)),
        (h + 1, max(1, w - 1)),
        (max(1, h // 16), max(1, w // 16)),
        (int(h * 1.37) + 1, int(w * 0.71) + 1),
    ]


@pytest.mark.parametrize("shape", SHAPES + [(768, 1024)])
def test_linear_resize_equals_scikit_image(shape):
    """Linear resize, up and down (anti-aliased where the last axis shrinks, as prediction
    calls scikit-image), in float32 and float64."""
    x = np.random.default_rng(2).random(shape, dtype=np.float32)
    for target in _targets(*shape):
        want = skimage_resize(
            x, target, order=1, preserve_range=True, anti_aliasing=target[-1] < shape[-1]
        ).astype(np.float32)
        ours = filters.resize(x, target, 1)
        assert ours.dtype == np.float32 and ours.shape == target
        np.testing.assert_allclose(ours, want, atol=2e-6)
    x64 = x.astype(np.float64)
    target = (shape[0] * 2, max(1, shape[1] // 2))
    want = skimage_resize(x64, target, order=1, preserve_range=True, anti_aliasing=True)
    np.testing.assert_allclose(filters.resize(x64, target, 1), want, atol=1e-12)


@pytest.mark.parametrize("shape", SHAPES + [(999, 1001)])
def test_nearest_resize_of_labels_equals_scikit_image(shape):
    labels = np.random.default_rng(3).integers(0, 5, shape).astype(np.uint8)
    for target in _targets(*shape) + [(shape[0] * 3 // 2 + 1, shape[1] * 5 // 4 + 1)]:
        want = skimage_resize(
            labels, target, order=0, preserve_range=True, anti_aliasing=False
        ).astype(np.uint8)
        np.testing.assert_array_equal(filters.resize(labels, target, 0), want)


def test_resize_refuses_what_it_does_not_do():
    with pytest.raises(ValueError, match="order must be 0 or 1"):
        filters.resize(np.zeros((4, 4), np.float32), (8, 8), 3)
    with pytest.raises(ValueError, match="2-D"):
        filters.resize(np.zeros((2, 4, 4), np.float32), (8, 8), 1)
