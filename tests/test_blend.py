"""inference.blend: a bag's forest walked only where it can change a label gives the labels of
the full blend, through every resize the prediction makes."""

import numpy as np
import pytest

from napari_rockseg.engine import io
from napari_rockseg.engine.condition import resize
from napari_rockseg.engine.events import drain
from napari_rockseg.engine.inference.blend import blend_to_shape
from napari_rockseg.engine.inference.segment import segment
from napari_rockseg.engine.models.bundle import load_model
from napari_rockseg.models import default_model_path


@pytest.fixture(scope="module")
def bag():
    return load_model(default_model_path())


@pytest.fixture(scope="module")
def plane(bag, test_pair):
    """A conditioned 120 x 150 crop of the sample and networks' probabilities for it with
    many near-ties: smooth random logits, so classes meet along curves as in real maps."""
    grey = io.read_image(test_pair[0]).data[:480, :600].astype(np.float32)
    x = resize(bag.info.normalize(grey), (120, 150), order=1)
    rng = np.random.default_rng(0)
    logits = resize(rng.normal(0, 3, (4, 30, 38)).reshape(-1, 38), (4 * 120, 150), 1)
    logits = logits.reshape(4, 120, 150).astype(np.float32)
    nets = np.exp(logits) / np.exp(logits).sum(0)
    return x, nets.astype(np.float32)


def _full(bag, nets, x, shape):
    probs = bag.blend(nets, x, None)
    if shape != nets.shape[1:]:
        probs = np.stack([resize(c, shape, order=1) for c in probs])
    return probs


@pytest.mark.parametrize(
    "shape",
    [(120, 150), (300, 375), (307, 151), (61, 150), (241, 299), (120, 90), (40, 50)],
    ids=["same", "2.5x", "odd", "rows-down", "2x-1", "anti-aliased", "down-3x"],
)
def test_labels_only_equal_the_full_blend(bag, plane, shape, monkeypatch):
    x, nets = plane
    walked = []
    forest_probs = bag.forest.probabilities

    def spy(x, device=None, where=None, **kw):
        walked.append(x.size if where is None else int(where.sum()))
        return forest_probs(x, device=device, where=where, **kw)

    monkeypatch.setattr(bag.forest, "probabilities", spy)
    sparse = blend_to_shape(bag, nets, x, shape, None, labels_only=True)
    full = _full(bag, nets, x, shape)
    assert sparse.shape == full.shape == (4, *shape)
    np.testing.assert_array_equal(np.argmax(sparse, 0), np.argmax(full, 0))
    if shape[1] >= nets.shape[2]:  # no anti-aliasing: the trees walk a part of the plane
        assert 0 < walked[0] < nets[0].size
        undecided = np.partition(nets, -2, 0)
        assert walked[0] >= ((undecided[-1] - undecided[-2]) <= 0.25).sum()
    exact = blend_to_shape(bag, nets, x, shape, None, labels_only=False)
    np.testing.assert_array_equal(exact, full)


def test_segment_labels_alone_equal_those_with_probabilities(bag, test_pair, monkeypatch):
    """Through segment() on the sample (zoomed 0.4x for the model and back): the labels made
    without probability maps are those made with them, and the forest walked under a quarter
    of the pixels (18 %: those of uncertain networks and of the cells where two classes meet;
    all of them when the maps are asked for)."""
    image = io.read_image(test_pair[0])
    walked = []
    forest_probs = bag.forest.probabilities

    def spy(x, device=None, where=None, **kw):
        walked.append((x.size, x.size if where is None else int(where.sum())))
        return forest_probs(x, device=device, where=where, **kw)

    monkeypatch.setattr(bag.forest, "probabilities", spy)
    alone = drain(segment(bag, image, device="cpu"))
    with_maps = drain(segment(bag, image, device="cpu", probabilities=True, uncertainty=True))
    np.testing.assert_array_equal(alone.labels, with_maps.labels)
    (size, sparse), (_, full) = walked
    assert sparse < 0.25 * size and full == size
