"""The plugin in a real napari viewer under Xvfb: reader, writer, sample data, widgets."""

import numpy as np
import pytest

from napari_rockseg.engine import io
from napari_rockseg.engine.analysis.metrics import evaluate
from napari_rockseg.engine.classes import SHALE

pytestmark = pytest.mark.gui


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def open_sample(viewer):
    viewer.open_sample("napari-rockseg", "shale")
    image = viewer.layers["shale SEM"]
    truth = viewer.layers["shale SEM ground truth"]
    return image, truth


def wait_for(qtbot, panel, timeout=300_000):
    qtbot.waitUntil(lambda: not panel.running, timeout=timeout)


def test_reader_keeps_scale_and_reads_labels(viewer, test_pair):
    layers = viewer.open(str(test_pair[0]), plugin="napari-rockseg")
    image = layers[0]
    assert image.data.shape == (768, 1024)
    assert image.scale[-1] == pytest.approx(4.466)
    labels = viewer.open(str(test_pair[1]), plugin="napari-rockseg")[0]
    assert labels.__class__.__name__ == "Labels"
    assert set(np.unique(labels.data)) == {1, 2, 3, 4}
    assert list(labels.features["class"]) == ["unlabelled", *SHALE.names]


def test_writer_round_trip(viewer, tmp_path):
    data = np.zeros((50, 60), np.uint8)
    data[10:20, 5:30] = 3
    layer = viewer.add_labels(data, name="painted", scale=(4.466, 4.466))
    path = tmp_path / "out.tif"
    layer.save(str(path), plugin="napari-rockseg")
    back = io.read_labels(path, SHALE)
    assert np.array_equal(back, data)
    assert io.read_image(path).pixel_size_nm == pytest.approx(4.466, rel=1e-4)


def test_sample_data(viewer):
    image, truth = open_sample(viewer)
    assert image.data.shape == truth.data.shape == (768, 1024)
    assert truth.colormap.color_dict[2][:3].tolist() == [1.0, 0.0, 0.0]


def test_widgets_appear_from_the_manifest(viewer):
    from napari_rockseg._widgets import evaluate, report, segment, train

    expected = {
        "Segment": segment.SegmentWidget,
        "Train and retrain": train.TrainWidget,
        "Evaluate and compare": evaluate.EvaluateWidget,
        "Phase report": report.PhaseReportWidget,
    }
    for name, cls in expected.items():
        dock, widget = viewer.window.add_plugin_dock_widget("napari-rockseg", name)
        assert isinstance(widget, cls) and widget.viewer is not None
        assert dock.widget() is not None


def test_segment_produces_labels_and_keeps_painted_layers(viewer, qtbot):
    from napari_rockseg._widgets._state import SHIPPED_DEFAULT, STORE
    from napari_rockseg._widgets.segment import SegmentWidget
    from napari_rockseg.engine.models.ensemble import Ensemble
    from napari_rockseg.engine.models.info import ModelInfo

    image, truth = open_sample(viewer)
    w = SegmentWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.image.value = image
    w.model.value = "shipped default"
    assert not w.fusion.enabled  # a bag of U-Nets: no fusion to choose
    STORE.add(Ensemble.new(ModelInfo(SHALE, 11.16), width=4, depth=2), "tiny ensemble")
    assert w.model.value == "tiny ensemble" and w.fusion.enabled
    w.model.value = "shipped LDA baseline"
    assert not w.fusion.enabled
    STORE.current = SHIPPED_DEFAULT
    w.run()
    wait_for(qtbot, w.panel)
    out = viewer.layers["shale SEM segmentation"]
    assert out.data.shape == (768, 1024)
    assert set(np.unique(out.data[:688])) <= {1, 2, 3, 4} and (out.data[688:] == 0).all()
    assert tuple(out.scale) == tuple(image.scale)
    assert list(out.features["class"]) == ["unlabelled", *SHALE.names]
    assert "shale SEM uncertainty" in viewer.layers
    # the user paints on it: the next run must not overwrite it
    out.paint((100, 100), 3)
    painted = out.data.copy()
    w.run()
    wait_for(qtbot, w.panel)
    assert np.array_equal(viewer.layers["shale SEM segmentation"].data, painted)
    assert "shale SEM segmentation (2)" in viewer.layers


def test_segment_shows_the_pixel_size_and_takes_one_for_images_without_it(viewer, qtbot):
    """The field shows the sample's 4.466 nm; an image added without a scale shows 0 and is
    segmented as it is, with a note; given 4.466 nm it is segmented like the sample."""
    from napari_rockseg._widgets.segment import SegmentWidget

    image, _ = open_sample(viewer)
    plain = viewer.add_image(np.asarray(image.data), name="plain")
    w = SegmentWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.model.value = "shipped default"
    w.image.value = image
    assert w.pixel_size.value == pytest.approx(4.466, abs=1e-3)
    w.run()
    wait_for(qtbot, w.panel)
    w.image.value = plain
    assert w.pixel_size.value == 0
    w.run()
    wait_for(qtbot, w.panel)
    assert "pixel size is unknown" in w.panel.status.value
    # the long note wraps at the dock's width instead of widening the dock over the canvas
    hint = w.panel.status.native.minimumSizeHint().width()  # 1924 px when it did not wrap
    assert hint < 400, hint
    unknown = viewer.layers["plain segmentation"].data.copy()
    w.pixel_size.value = 4.466
    w.run()
    wait_for(qtbot, w.panel)
    sample = viewer.layers["shale SEM segmentation"].data
    assert np.array_equal(viewer.layers["plain segmentation"].data, sample)
    assert np.mean(unknown != sample) > 0.01


def test_segment_reads_the_pixel_size_beside_a_png_opened_by_napari(viewer, tmp_path, test_pair):
    """A PNG opened by napari's own reader has no scale; the Segment widget finds the
    pixel size in the Hitachi .txt beside the file, and none without it."""
    from PIL import Image

    from napari_rockseg._widgets.segment import SegmentWidget
    from napari_rockseg.engine.io import read_image

    grey = read_image(test_pair[0]).data
    for name in ("with.png", "without.png"):
        Image.fromarray(grey).save(tmp_path / name)
    (tmp_path / "with.txt").write_text("[SemImageFile]\nPixelSize=4.466\n", encoding="latin-1")
    w = SegmentWidget(viewer)
    viewer.window.add_dock_widget(w)
    for name, expected in (("with.png", 4.466), ("without.png", 0.0)):
        layer = viewer.open(str(tmp_path / name), plugin="napari")[0]
        assert float(layer.scale[-1]) == 1.0 and not layer.metadata.get("pixel_size_nm")
        w.image.value = layer
        assert w.pixel_size.value == pytest.approx(expected, abs=1e-3)


def test_train_changes_the_model_and_plot_then_cancel(viewer, qtbot):
    from napari_rockseg._widgets._state import STORE
    from napari_rockseg._widgets.train import TrainWidget

    image, truth = open_sample(viewer)
    crop_img = viewer.add_image(np.asarray(image.data)[:256, :256], name="crop")
    crop_lab = viewer.add_labels(np.asarray(truth.data)[:256, :256], name="crop truth")
    w = TrainWidget(viewer)
    assert not w.keep_unpainted.enabled  # training from scratch: nothing to keep
    viewer.window.add_dock_widget(w)
    w.image.value, w.labels_layer.value = crop_img, crop_lab
    w.method.value = "unet"
    w.minutes.value = 0
    w.steps.value = 12
    w.tile.value = 64
    w.batch_size.value = 2
    n_before = len(STORE.trained)
    w.run()
    wait_for(qtbot, w.panel)
    assert len(STORE.trained) == n_before + 1 and w.model is not None
    assert len(w.plot.loss) == 12 and w.plot.iou
    # a long run, cancelled: stops within a step, keeps a model, leaves layers alone
    before = np.asarray(crop_lab.data).copy()
    w.steps.value = 100000
    w.run()
    qtbot.waitUntil(lambda: len(w.plot.loss) >= 3, timeout=120_000)
    assert w.panel.running  # the viewer processed events while training ran
    w.panel.cancel()
    wait_for(qtbot, w.panel, timeout=60_000)
    assert w.panel.status.value.startswith("cancelled")
    assert len(w.plot.loss) < 100
    assert np.array_equal(crop_lab.data, before)


@pytest.mark.parametrize("method", ["unet", "rf"])
def test_retrain_on_painted_pixels_changes_prediction_there(viewer, qtbot, method):
    from napari_rockseg._widgets._state import STORE
    from napari_rockseg._widgets.segment import SegmentWidget
    from napari_rockseg._widgets.train import TrainWidget

    rng = np.random.default_rng(0)
    img = rng.normal(100, 5, (96, 96)).astype(np.float32)
    img[20:40, 20:40] += 60  # a bright square
    image = viewer.add_image(img, name="synthetic")
    t = TrainWidget(viewer)
    viewer.window.add_dock_widget(t)
    t.image.value = image
    layer = t.new_corrections_layer()
    layer.data[50:90, 50:90] = 1  # paint background as mineral grain
    layer.data[24:36, 24:36] = 3  # paint the square as pores
    layer.refresh()
    t.method.value = method
    t.minutes.value = 0
    t.steps.value = 60
    t.tile.value = 32
    t.run()
    wait_for(qtbot, t.panel)
    s = SegmentWidget(viewer)
    viewer.window.add_dock_widget(s)
    s.image.value = image
    s.model.value = STORE.current
    s.want_uncertainty.value = False
    s.run()
    wait_for(qtbot, s.panel)
    pred = viewer.layers["synthetic segmentation"].data
    assert (pred[26:34, 26:34] == 3).mean() > 0.9
    assert (pred[60:80, 60:80] == 1).mean() > 0.9


def test_evaluate_matches_cli_numbers(viewer, qtbot, test_pair):
    from napari_rockseg._widgets.evaluate import EvaluateWidget
    from napari_rockseg.engine.models.bundle import load_model
    from napari_rockseg.models import LDA, model_path

    image, truth = open_sample(viewer)
    lda = load_model(model_path(LDA))
    pred = lda.predict(np.asarray(image.data))
    pred[688:] = 0
    player = viewer.add_labels(pred, name="pred")
    w = EvaluateWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.prediction.value, w.truth.value = player, truth
    result = w.run()
    t = io.read_labels(test_pair[1], SHALE)
    expected = evaluate(pred, t, 4, io.valid_mask(t.shape, 80))
    assert result["miou"] == pytest.approx(expected["miou"])
    assert w.table.data[3][1] == f"{expected['iou'][3]:.3f}"
    w.image.value = image
    w.model.value = "shipped LDA baseline"
    w.compare()
    wait_for(qtbot, w.compare_panel)
    assert w.comparison["LDA baseline"]["miou"] == pytest.approx(expected["miou"])
    assert w.compare_table.data[4][0] == f"{expected['miou']:.3f}"


def test_phase_report_matches_cli_and_follows_painting(viewer, test_pair, tmp_path, qtbot):
    import json

    from napari_rockseg._widgets.report import PhaseReportWidget
    from napari_rockseg.cli import main

    image, truth = open_sample(viewer)
    truth.metadata["data_bar_rows"] = 80
    w = PhaseReportWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.labels_layer.value = truth
    result = w.run()
    assert result["pixel_size_nm"] == pytest.approx(4.466)
    assert (
        main(
            [
                "analyze",
                str(test_pair[1]),
                "--image",
                str(test_pair[0]),
                "--out",
                str(tmp_path / "r"),
            ]
        )
        == 0
    )
    cli = next(iter(json.loads((tmp_path / "r.json").read_text()).values()))
    for key in ("porosity", "organic_fraction", "organic_hosted_pore_share"):
        assert result[key] == pytest.approx(cli[key])
    assert result["pores"]["d50"] == pytest.approx(cli["pores"]["d50"])
    assert "porosity" in w.summary.value
    # painting pores updates the report
    before = result["porosity"]
    truth.paint((300, 300), 3)
    qtbot.waitUntil(lambda: w.result["porosity"] > before, timeout=5000)
    w.csv_path.value = tmp_path / "phase.csv"
    assert w.export() and "porosity" in (tmp_path / "phase.csv").read_text()


def test_segment_lazy_image_gives_lazy_labels(viewer, qtbot):
    import dask.array as da

    from napari_rockseg._widgets.segment import SegmentWidget
    from napari_rockseg.engine.models.bundle import load_model
    from napari_rockseg.models import LDA, model_path

    image, _ = open_sample(viewer)
    big = da.from_array(np.tile(np.asarray(image.data)[:688], (2, 2)), chunks=(512, 512))
    layer = viewer.add_image(big, name="mosaic")
    w = SegmentWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.image.value = layer
    w.model.value = "shipped LDA baseline"
    w.run()
    out = viewer.layers["mosaic segmentation"]
    assert isinstance(out.data, da.Array) and out.data.shape == big.shape
    lda = load_model(model_path(LDA))
    window = np.asarray(out.data[100:300, 1100:1400])
    assert np.array_equal(window, lda.predict(np.asarray(big[100:300, 1100:1400])))


def test_fine_tune_the_shipped_default_on_painted_corrections(viewer, qtbot):
    import torch

    from napari_rockseg._widgets._state import SHIPPED_DEFAULT, STORE
    from napari_rockseg._widgets.train import TrainWidget

    image, truth = open_sample(viewer)
    crop = viewer.add_image(
        np.asarray(image.data)[:160, :160], name="crop", scale=image.scale, units=image.units
    )
    STORE.current = SHIPPED_DEFAULT
    shipped = STORE.get(SHIPPED_DEFAULT)
    before = {k: v.clone() for k, v in shipped.state_dict().items()}
    t = TrainWidget(viewer)
    viewer.window.add_dock_widget(t)
    t.image.value = crop
    layer = t.new_corrections_layer()
    painted = np.asarray(truth.data)[:160, :160]
    layer.data[::4, ::4] = painted[::4, ::4]  # sparse corrections, 1/16 of the pixels
    layer.refresh()
    t.start_from.value = "current model"
    t.minutes.value = 0
    t.steps.value = 6
    t.batch_size.value = 2
    t.run()
    wait_for(qtbot, t.panel)
    tuned = t.model
    assert tuned.kind == "bag" and tuned is not shipped
    # every member of the bag was fine-tuned, one after the other
    assert set(tuned.info.provenance["steps"]) == {
        f"net{k + 1}" for k in range(len(shipped.members))
    }
    assert len(shipped.members) == 6
    # the forest blended into the shipped bag is kept as it was
    assert tuned.forest_weight == shipped.forest_weight == 0.2
    assert all(np.array_equal(tuned.forest.arrays[k], v) for k, v in shipped.forest.arrays.items())
    assert tuned.info.provenance["fine_tuned_from"] is not None
    assert any(
        not torch.equal(before[k], v)
        for k, v in tuned.state_dict().items()
        if v.is_floating_point()
    )
    # the shipped model itself is untouched
    assert all(torch.equal(before[k], v) for k, v in shipped.state_dict().items())
    # the fine-tuning settings the widget passes: keep what was not painted (default), or strokes
    # only
    assert t.keep_unpainted.value and t.keep_unpainted.enabled
    cfg = t.config()
    assert cfg.keep_confident == 0.9 and cfg.stroke_share == 0.5
    assert tuned.info.provenance["settings"]["keep_confident"] == 0.9
    t.keep_unpainted.value = False
    assert t.config().keep_confident == 0.0
