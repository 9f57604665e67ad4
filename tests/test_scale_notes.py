"""What prediction says about an image's scale: a lower magnification than the model's
(pixels 1.5x the model's or more) is enlarged, with a note that says what that costs."""

import pytest

from napari_rockseg.engine import io
from napari_rockseg.engine.condition import scale_factor
from napari_rockseg.engine.events import drain
from napari_rockseg.engine.inference.segment import segment
from napari_rockseg.engine.models import bundle
from napari_rockseg.models import default_model_path


@pytest.fixture(scope="module")
def shipped():
    return bundle.load_model(default_model_path())


@pytest.mark.parametrize(
    "pixel_nm, noted",
    [(25.0, True), (16.8, True), (16.0, False), (13.96, False), (11.16, False), (4.466, False)],
)
def test_coarser_pixels_than_the_models_get_a_note(shipped, pixel_nm, noted):
    factor, note = scale_factor(shipped, pixel_nm)
    assert factor == pytest.approx(pixel_nm / 11.16)
    assert (note is not None) == noted
    if noted:
        assert f"{factor:.2g}x the model's" in note and "train a model at their pixel size" in note


def test_the_note_reaches_the_segmentation_and_rescale_off_silences_it(shipped, test_pair):
    grey = io.read_image(test_pair[0]).data[:96, :128]
    seg = drain(segment(shipped, io.SEMImage(grey, 25.0), data_bar=0, device="cpu"))
    assert seg.scale == pytest.approx(25.0 / 11.16) and seg.labels.shape == grey.shape
    assert len(seg.notes) == 1 and "train a model at their pixel size" in seg.notes[0]
    plain = drain(
        segment(shipped, io.SEMImage(grey, 25.0), data_bar=0, device="cpu", rescale=False)
    )
    assert plain.scale == 1.0 and not plain.notes
