"""Lower magnifications: an image the networks enlarge 1.4-2.5x gets its pixel-scale
texture back (white noise) before the networks see it; nothing else is touched."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from napari_rockseg.engine import bundle, io, predict
from napari_rockseg.engine.events import drain
from napari_rockseg.engine.predict import TEXTURE_TARGET, region_probabilities, restore_texture, texture
from napari_rockseg.models import LDA, default_model_path, model_path


@pytest.fixture(scope="module")
def shipped():
    return bundle.load_model(default_model_path())


def test_restore_texture_reaches_its_target_the_same_way_every_time():
    x = gaussian_filter(np.random.default_rng(0).normal(0, 1, (200, 240)).astype(np.float32), 3)
    assert texture(x) < 0.2 * TEXTURE_TARGET
    y = restore_texture(x)
    assert texture(y) == pytest.approx(TEXTURE_TARGET, rel=0.1)
    assert np.array_equal(y, restore_texture(x))  # a fixed seed: the same labels every run
    assert abs(float(np.mean(y - x))) < 0.01 * TEXTURE_TARGET  # noise only, no offset
    rough = x + np.random.default_rng(1).normal(0, 2 * TEXTURE_TARGET, x.shape).astype(np.float32)
    assert restore_texture(rough) is rough  # enough texture already: unchanged


@pytest.fixture
def spy(monkeypatch):
    calls = []

    def recording(x, *a, **k):
        calls.append(x.shape)
        return x

    monkeypatch.setattr(predict, "restore_texture", recording)
    return calls


@pytest.mark.parametrize("factor, restored", [(1.4, True), (2.0, True), (2.5, True), (1.25, False), (1.0, False),
                                              (0.4, False), (3.0, False)])
def test_only_enlargements_of_1_4_to_2_5x_get_texture(shipped, spy, factor, restored):
    region = (np.random.default_rng(0).random((48, 64)) * 255).astype(np.uint8)
    probs = drain(region_probabilities(shipped, region, factor, tile=256, overlap=16, device="cpu"))
    assert probs.shape == (4, 48, 64)
    assert bool(spy) == restored
    if restored:  # at the model's scale, after enlarging
        assert spy[0] == (round(48 * factor), round(64 * factor))


def test_the_grey_value_baseline_gets_no_texture(spy):
    region = (np.random.default_rng(0).random((48, 64)) * 255).astype(np.uint8)
    drain(region_probabilities(bundle.load_model(model_path(LDA)), region, 2.0))
    assert not spy


def test_texture_changes_what_the_shipped_model_sees_only_inside_its_window(shipped, test_pair, monkeypatch):
    """The test image shrunk 2x (a lower magnification than the model's): enlarged 2x for
    the model, its probabilities change with the texture restored; enlarged 3x, they do not."""
    grey = io.read_image(test_pair[0]).data[:256, :320].astype(np.float32)
    small = grey[::2, ::2]

    def both(factor):
        on = drain(region_probabilities(shipped, small, factor, device="cpu"))
        monkeypatch.setattr(predict, "TEXTURE_FACTORS", (np.inf, np.inf))
        off = drain(region_probabilities(shipped, small, factor, device="cpu"))
        monkeypatch.undo()
        return on, off

    on, off = both(2.0)
    assert np.abs(on - off).max() > 0.05
    on, off = both(3.0)
    np.testing.assert_array_equal(on, off)


def test_the_rule_covers_unets_and_bags_with_median_normalisation_only():
    from types import SimpleNamespace

    def model(kind, norm="median"):
        return SimpleNamespace(kind=kind, info=SimpleNamespace(normalization=norm))

    assert predict._restores_texture(model("unet"), 2.0) and predict._restores_texture(model("bag"), 1.4)
    # the stacked ensemble lost with it on held-out images; forests and LDA see grey values
    for kind in ("ensemble", "rf", "lda"):
        assert not predict._restores_texture(model(kind), 2.0)
    assert not predict._restores_texture(model("bag", "percentile"), 2.0)  # its units differ
