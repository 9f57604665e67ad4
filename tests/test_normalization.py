"""Per-image intensity normalisation (ModelInfo.normalization)."""

import numpy as np
import pytest

from napari_rockseg.engine import io
from napari_rockseg.engine.models.info import ModelInfo, nominal_range


@pytest.fixture(scope="module")
def grey(test_pair):
    img = io.read_image(test_pair[0]).data
    return img[: img.shape[0] - io.detect_data_bar(img)]


def test_median_normalisation_ignores_brightness_offsets_and_keeps_contrast(grey):
    info = ModelInfo()
    assert info.normalization == "median"
    x = info.normalize(grey)
    assert abs(float(np.median(x))) < 1e-6
    # a brighter detector setting (offset) gives the same network input
    brighter = np.clip(grey.astype(np.int32) + 40, 0, 255).astype(np.uint8)
    unclipped = grey <= 215
    assert np.allclose(info.normalize(brighter)[unclipped], x[unclipped], atol=1e-5)
    # grey-level differences between phases stay as measured: 255 grey levels span 4 units
    assert np.isclose(
        float(x.max() - x.min()), (int(grey.max()) - int(grey.min())) * 4 / 255, atol=1e-5
    )


def test_percentile_normalisation_stretches_contrast(grey):
    x = ModelInfo(normalization="percentile").normalize(grey)
    lo, hi = np.percentile(x, [0.5, 99.5])
    assert np.isclose(lo, -2, atol=0.05) and np.isclose(hi, 2, atol=0.05)


def test_bit_depth_sets_the_scale():
    assert nominal_range(np.array([[0.2, 0.9]], np.float32)) == 1.0
    assert nominal_range(np.array([[3, 200]], np.uint8)) == 255.0
    assert nominal_range(np.array([[3, 4000]], np.uint16)) == 4095.0
    assert nominal_range(np.array([[3, 40000]], np.uint16)) == 65535.0
    info = ModelInfo()
    img8 = np.array([[100, 120, 140]], np.uint8)
    img16 = img8.astype(np.uint16) * 257 + 5000  # the same picture recorded at 16 bits, brighter
    assert np.allclose(info.normalize(img8), info.normalize(img16), atol=1e-3)


def test_block_uses_whole_image_statistics(grey):
    info = ModelInfo()
    stats = info.stats(grey)
    block = grey[:100, :100]
    assert np.array_equal(info.normalize(block, stats), info.normalize(grey)[:100, :100])
    assert not np.array_equal(info.normalize(block), info.normalize(grey)[:100, :100])
    # statistics of the rows above a data bar, without slicing the (lazy) image first
    bright_bar = np.vstack([grey, np.full((80, grey.shape[1]), 255, grey.dtype)])
    assert info.stats(bright_bar, rows=grey.shape[0]) == stats
    assert ModelInfo(normalization="percentile").stats(bright_bar, rows=grey.shape[0]) == ModelInfo(
        normalization="percentile"
    ).stats(grey)


def test_normalisation_is_recorded_and_old_bundles_keep_theirs():
    assert (
        ModelInfo.from_dict(ModelInfo(normalization="median").to_dict()).normalization == "median"
    )
    d = ModelInfo().to_dict()
    del d["normalization"]  # bundles written before the median normalisation existed
    assert ModelInfo.from_dict(d).normalization == "percentile"
    with pytest.raises(ValueError, match="normalization"):
        ModelInfo.from_dict({**d, "normalization": "zscore"})
