"""Pixel-scale texture before the networks see an image: white noise given back up to 4
grey levels when they enlarge it 1.4-2.5x (a lower magnification), up to 6 when they do
not enlarge it that much and it has less (blurred or shrunk images); nothing above 2.5x,
nothing for other kinds of model; and an image with more than 9 (pixel noise) smoothed
down to 9 first."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from napari_rockseg.engine import io
from napari_rockseg.engine.condition import (
    REFERENCE_TEXTURE,
    TEXTURE_CEILING,
    TEXTURE_FLOOR,
    TEXTURE_TARGET,
    _texture_scale,
    _texture_target,
    restore_texture,
    smooth_texture,
    texture,
)
from napari_rockseg.engine.events import drain
from napari_rockseg.engine.inference import segment as segment_module
from napari_rockseg.engine.inference.segment import region_probabilities
from napari_rockseg.engine.models import bundle
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

    def recording(x, target=TEXTURE_TARGET, *a, **k):
        calls.append((x.shape, target))
        return x

    monkeypatch.setattr(segment_module, "restore_texture", recording)
    return calls


@pytest.mark.parametrize(
    "factor, target",
    [
        (1.4, TEXTURE_TARGET),
        (2.0, TEXTURE_TARGET),
        (2.5, TEXTURE_TARGET),
        (1.25, TEXTURE_FLOOR),
        (1.0, TEXTURE_FLOOR),
        (0.4, TEXTURE_FLOOR),
        (3.0, None),
    ],
)
def test_texture_target_by_resampling_factor(shipped, spy, factor, target):
    region = (np.random.default_rng(0).random((48, 64)) * 255).astype(np.uint8)
    probs = drain(region_probabilities(shipped, region, factor, tile=256, overlap=16, device="cpu"))
    assert probs.shape == (4, 48, 64)
    if target is None:
        assert not spy
    else:  # at the model's scale, after resampling
        shape = (48, 64) if factor == 1.0 else (round(48 * factor), round(64 * factor))
        assert spy == [(shape, target)]


def test_a_blurred_image_gets_texture_up_to_the_floor_and_a_sharp_one_is_untouched(
    shipped, train_dir
):
    """A sharp micrograph at its own scale has more texture than the floor and is left
    alone; blurred by 2 px it has less, and gets white noise up to the floor."""
    sharp = io.read_image(sorted((train_dir / "images").iterdir())[0]).data[:256, :320]
    x = shipped.info.normalize(sharp)
    assert texture(x) > TEXTURE_FLOOR and restore_texture(x, TEXTURE_FLOOR) is x
    blurred = shipped.info.normalize(gaussian_filter(sharp.astype(np.float32), 2.0))
    assert texture(blurred) < 0.5 * TEXTURE_FLOOR
    assert texture(restore_texture(blurred, TEXTURE_FLOOR)) == pytest.approx(TEXTURE_FLOOR, rel=0.1)


def test_the_grey_value_baseline_gets_no_texture(spy):
    region = (np.random.default_rng(0).random((48, 64)) * 255).astype(np.uint8)
    drain(region_probabilities(bundle.load_model(model_path(LDA)), region, 2.0))
    assert not spy


def test_texture_changes_what_the_shipped_model_sees_only_where_it_lacks_some(
    shipped, test_pair, monkeypatch
):
    """The test image shrunk 2x (a lower magnification than the model's): enlarged 2x for
    the model, its probabilities change with the texture restored; enlarged 3x, they do not."""
    grey = io.read_image(test_pair[0]).data[:256, :320].astype(np.float32)
    small = grey[::2, ::2]

    def both(factor):
        on = drain(region_probabilities(shipped, small, factor, device="cpu"))
        monkeypatch.setattr(segment_module, "_texture_target", lambda model, f: None)
        off = drain(region_probabilities(shipped, small, factor, device="cpu"))
        monkeypatch.undo()
        return on, off

    on, off = both(2.0)
    assert np.abs(on - off).max() > 0.05
    on, off = both(3.0)
    np.testing.assert_array_equal(on, off)
    # at the model's scale: the micrograph as recorded (7.5 grey levels of texture, between
    # the floor and the ceiling) is seen as it is, a blurred copy gets the floor
    assert TEXTURE_FLOOR < texture(shipped.info.normalize(grey)) < TEXTURE_CEILING
    small = grey
    on, off = both(1.0)
    np.testing.assert_array_equal(on, off)
    small = gaussian_filter(grey, 2.0)
    on, off = both(1.0)
    assert np.abs(on - off).max() > 0.05


def test_the_rule_covers_unets_and_bags_with_median_normalisation_only():
    from types import SimpleNamespace

    from napari_rockseg.engine.models.ensemble import Bag, Ensemble, NetModel
    from napari_rockseg.engine.models.forest import PixelForest
    from napari_rockseg.engine.models.lda import GreyLDA

    kinds = {c.kind: c for c in (NetModel, Bag, Ensemble, PixelForest, GreyLDA)}

    def model(kind, norm="median"):  # what each model class declares, without its weights
        return SimpleNamespace(
            kind=kind,
            texture_levels=kinds[kind].texture_levels,
            info=SimpleNamespace(normalization=norm),
        )

    assert _texture_target(model("unet"), 2.0) == TEXTURE_TARGET
    assert _texture_target(model("bag"), 1.0) == TEXTURE_FLOOR
    # the stacked ensemble lost with it on held-out images; forests and LDA see grey values
    for kind in ("ensemble", "rf", "lda"):
        assert (
            _texture_target(model(kind), 2.0) is None and _texture_target(model(kind), 1.0) is None
        )
    assert _texture_target(model("bag", "percentile"), 1.0) is None  # its units differ


def test_a_noisy_image_is_smoothed_down_to_the_ceiling_and_a_clean_one_is_untouched(
    shipped, train_dir, monkeypatch
):
    """White noise of sigma 12 grey levels on a training image lifts its texture above the
    ceiling; smoothing brings it back to it, and the networks see the smoothed image (their
    probabilities differ from those of the noisy one); the clean image is left alone."""
    clean = (
        io.read_image(sorted((train_dir / "images").iterdir())[0])
        .data[:256, :320]
        .astype(np.float32)
    )
    x = shipped.info.normalize(clean)
    assert texture(x) < TEXTURE_CEILING and smooth_texture(x) is x
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 12, clean.shape), 0, 255).astype(
        np.float32
    )
    y = shipped.info.normalize(noisy)
    assert texture(y) > 1.2 * TEXTURE_CEILING
    assert texture(smooth_texture(y)) == pytest.approx(TEXTURE_CEILING, rel=0.02)
    on = drain(region_probabilities(shipped, noisy, 1.0, device="cpu"))
    monkeypatch.setattr(segment_module, "smooth_texture", lambda x, *a, **k: x)
    off = drain(region_probabilities(shipped, noisy, 1.0, device="cpu"))
    assert np.abs(on - off).max() > 0.05


def test_texture_levels_follow_the_models_own_training_texture():
    """A model records its training images' texture; the floor, the window's target and the
    ceiling scale with it, so a model trained on noisier images is not smoothed down to the
    shipped default's levels (one that records none is taken to have the shipped default's)."""
    from types import SimpleNamespace

    def model(texture):
        return SimpleNamespace(
            kind="unet",
            texture_levels=True,
            info=SimpleNamespace(normalization="median", texture=texture),
        )

    assert _texture_target(model(None), 1.0) == TEXTURE_FLOOR
    assert _texture_target(model(REFERENCE_TEXTURE), 2.0) == pytest.approx(TEXTURE_TARGET)
    noisy = model(2 * REFERENCE_TEXTURE)
    assert _texture_target(noisy, 1.0) == pytest.approx(2 * TEXTURE_FLOOR)
    assert _texture_scale(noisy) * TEXTURE_CEILING == pytest.approx(2 * TEXTURE_CEILING)


def test_training_records_the_texture_of_its_images(scene, tmp_path):
    from napari_rockseg.engine.classes import ClassScheme
    from napari_rockseg.engine.models.info import ModelInfo
    from napari_rockseg.engine.training.data import prepare_items

    image, labels = scene
    info = ModelInfo(
        ClassScheme.from_dict(
            {
                "classes": [
                    {"name": n, "color": c}
                    for n, c in (("a", "#ff0000"), ("b", "#00ff00"), ("c", "#0000ff"))
                ],
                "rest": None,
            }
        ),
        None,
    )
    items = prepare_items([io.SEMImage(image)], [labels], info, data_bar=0)
    assert info.texture == pytest.approx(texture(items[0].image))
    assert ModelInfo.from_dict(info.to_dict()).texture == info.texture
