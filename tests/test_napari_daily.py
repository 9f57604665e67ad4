"""The plugin as a daily tool (issue 29): errors once and in plain words, cancel then train again,
class schemes in the GUI, honest feedback, a layout that fits a laptop screen."""

import json

import numpy as np
import pytest
from napari.utils.notifications import notification_manager

from napari_rockseg.engine.classes import SHALE, ClassScheme

pytestmark = pytest.mark.gui

ROCK4 = ClassScheme(
    ("quartz", "feldspar", "pore", "cement"),
    ((255, 255, 0), (255, 0, 255), (0, 0, 255), (0, 255, 0)),
)


@pytest.fixture
def viewer(make_napari_viewer):
    from napari_rockseg._widgets._state import SHIPPED_DEFAULT, STORE

    STORE.current, STORE.scheme = SHIPPED_DEFAULT, SHALE
    yield make_napari_viewer()
    STORE.current, STORE.scheme = SHIPPED_DEFAULT, SHALE


def errors():
    return [str(n.message) for n in notification_manager.records if n.severity == "error"]


def wait_for(qtbot, panel, timeout=120_000):
    qtbot.waitUntil(lambda: not panel.running, timeout=timeout)


def synthetic(viewer, scheme=SHALE):
    rng = np.random.default_rng(0)
    img = rng.normal(100, 5, (96, 96)).astype(np.float32)
    img[20:40, 20:40] += 60
    image = viewer.add_image(img, name="synthetic")
    lab = np.zeros((96, 96), np.uint8)
    lab[50:90, 50:90] = 1
    lab[24:36, 24:36] = 3
    return image, lab


@pytest.mark.parametrize(
    "exc",
    [
        RuntimeError("element 0 of tensors does not require grad"),
        MemoryError("Unable to allocate 138. GiB"),
    ],
)
def test_worker_exception_reaches_one_plain_notification_and_panel_stays_usable(viewer, qtbot, exc):
    from napari_rockseg._widgets._worker import RunPanel
    from napari_rockseg.engine.events import Progress

    panel = RunPanel("Go", "training")

    def job():
        yield Progress("unet", 1, 2)
        raise exc

    n = len(errors())
    panel.start(job, lambda r: None)
    wait_for(qtbot, panel, 10_000)
    qtbot.wait(50)
    new = errors()[n:]
    assert len(new) == 1, new  # not twice (napari's relay) and not zero (superqt swallowed it)
    assert not new[0].startswith(type(exc).__name__) and "Error:" not in new[0]
    assert panel.run_button.enabled and not panel.cancel_button.enabled
    assert panel.progress.value == 0 and panel.status.value.startswith("failed")


def _train_widget(viewer, method):
    from napari_rockseg._widgets.train import TrainWidget

    image, lab = synthetic(viewer)
    t = TrainWidget(viewer)
    viewer.window.add_dock_widget(t)
    t.image.value = image
    layer = t.new_corrections_layer()
    layer.data = lab
    t.method.value = method
    t.minutes.value = 0
    t.tile.value = 32
    t.batch_size.value = 2
    return t


@pytest.mark.parametrize("method", ["unet", "rf"])
def test_cancel_then_train_again(viewer, qtbot, method):
    from napari_rockseg._widgets._state import STORE

    t = _train_widget(viewer, method)
    t.steps.value = 100000
    t.run()
    t.panel.cancel()
    wait_for(qtbot, t.panel)
    assert t.panel.status.value.startswith("cancelled")
    assert STORE.current == "shipped default"  # a cancelled run is never silently current
    assert t.panel.run_button.enabled and t.panel.progress.value == 0
    t.steps.value = 10
    t.run()
    wait_for(qtbot, t.panel)
    assert t.panel.status.value.startswith("done"), t.panel.status.value
    assert STORE.current == STORE.trained[-1] and STORE.get(STORE.current) is t.model


def test_cancel_a_bag_fine_tune_then_fine_tune_the_cancelled_bag(viewer, qtbot):
    """The reported lock: Cancel during stage 2 of the shipped bag, then Train again from the
    cancelled model; one progress bar that never goes back."""
    from napari_rockseg._widgets._state import STORE

    t = _train_widget(viewer, "unet")
    t.start_from.value = "current model"
    assert t.method.value == "bag" and not t.method.enabled
    assert "fine-tunes 'shipped default'" in t.start_info.value and "6 U-Nets" in t.start_info.value
    t.steps.value = 600
    seen = []
    t.panel.progress.changed.connect(seen.append)
    t.run()
    qtbot.waitUntil(lambda: "stage 2/6" in t.panel.status.value, timeout=120_000)
    t.panel.cancel()
    wait_for(qtbot, t.panel)
    assert seen[:-1] == sorted(seen[:-1]) and 10 <= max(seen) <= 40  # one bar for six stages
    assert "not selected" in t.panel.status.value and STORE.current == "shipped default"
    cancelled = STORE.trained[-1]
    assert "cancelled" in cancelled
    assert all(p.requires_grad for p in STORE.get(cancelled).parameters())
    STORE.select(cancelled)
    t.steps.value = 6
    t.run()
    wait_for(qtbot, t.panel)
    assert t.panel.status.value.startswith("done"), t.panel.status.value
    assert t.panel.run_button.enabled and t.save_button.enabled


def test_retrain_reports_per_class_share_of_painted_pixels(viewer, qtbot):
    t = _train_widget(viewer, "rf")
    t.steps.value = 10
    t.run()
    wait_for(qtbot, t.panel)
    rows = {r[0]: r for r in t.feedback.data}
    assert rows["pores"][1] == f"{12 * 12:,}" and rows["pores"][2].endswith("%")
    assert int(rows["pores"][2][:-2]) > 80
    assert rows["clay"][2] == "not painted"


def test_trainer_warnings_keep_a_model_from_being_announced_ready(viewer, qtbot, monkeypatch):
    from napari_rockseg._widgets._state import STORE
    from napari_rockseg.engine.training.trainer import Trainer

    t = _train_widget(viewer, "rf")
    t.steps.value = 10
    real = Trainer.run

    def run_and_warn(self):
        model = yield from real(self)
        self.warnings = ["validation IoU is 0 for every class: the model learned nothing"]
        return model

    monkeypatch.setattr(Trainer, "run", run_and_warn)
    t.run()
    wait_for(qtbot, t.panel)
    assert "learned nothing" in t.panel.status.value and "not selected" in t.panel.status.value
    assert STORE.current == "shipped default"


def test_field_checks_in_plain_words(viewer):
    t = _train_widget(viewer, "unet")
    t.alpha.value = "abc"
    n = len(errors())
    assert t.run() is None
    msg = errors()[n:]
    assert len(msg) == 1 and "alpha must be" in msg[0] and "could not convert" not in msg[0]
    assert t.panel.run_button.enabled


def test_start_from_current_model_follows_segment(viewer):
    from napari_rockseg._widgets.segment import SegmentWidget
    from napari_rockseg._widgets.train import TrainWidget

    s, t = SegmentWidget(viewer), TrainWidget(viewer)
    t.start_from.value = "current model"
    s.model.value = "shipped LDA baseline"
    assert t.method.value == "lda" and "refitted" in t.start_info.value
    s.model.value = "shipped default"
    assert t.method.value == "bag"


def test_evaluate_refuses_a_layer_compared_with_itself(viewer):
    from napari_rockseg._widgets.evaluate import EvaluateWidget

    lab = viewer.add_labels(np.ones((20, 20), np.uint8), name="a")
    w = EvaluateWidget(viewer)
    w.prediction.value = w.truth.value = lab
    n = len(errors())
    assert w.run() is None and "same layer" in errors()[n:][0]


def test_evaluate_compares_the_model_segment_shows(viewer):
    """The model box of Evaluate follows Segment's choice and a newly trained model, and
    keeps a model picked in it until the current model changes again."""
    from napari_rockseg._widgets._state import SHIPPED_DEFAULT, SHIPPED_LDA, STORE
    from napari_rockseg._widgets.evaluate import EvaluateWidget
    from napari_rockseg._widgets.segment import SegmentWidget

    seg, ev = SegmentWidget(viewer), EvaluateWidget(viewer)
    assert ev.model.value == SHIPPED_DEFAULT
    seg.model.value = SHIPPED_LDA
    assert STORE.current == SHIPPED_LDA and ev.model.value == SHIPPED_LDA
    ev.model.value = SHIPPED_DEFAULT  # picked here: Segment keeps its own
    assert seg.model.value == SHIPPED_LDA and ev.model.value == SHIPPED_DEFAULT
    # kept in the session's list (widgets of earlier tests stay subscribed to it)
    name = STORE.add(STORE.get(SHIPPED_LDA), "trained in the evaluate test")
    assert ev.model.value == name == seg.model.value


def test_phase_report_follows_undo_and_formats_areas(viewer, qtbot):
    from napari_rockseg._widgets.report import PhaseReportWidget, format_area

    data = np.ones((64, 64), np.uint8)
    lab = viewer.add_labels(
        data, name="seg", scale=(4.466, 4.466), metadata={"rockseg_scheme": SHALE.to_dict()}
    )
    w = PhaseReportWidget(viewer)
    w.labels_layer.value = lab
    assert w.result["porosity"] == 0
    lab.brush_size = 10
    lab.paint((30, 30), 3)
    qtbot.waitUntil(lambda: w.result["porosity"] > 0, timeout=5000)
    lab.undo()
    qtbot.waitUntil(lambda: w.result["porosity"] == 0, timeout=5000)
    assert "e-0" not in "".join(str(r) for r in w.table.data)
    from qtpy.QtCore import QLocale

    delegate, text = w.table.native.itemDelegate(), w.table.native.item(0, 1).text()
    assert delegate.displayText(text, QLocale()) == text == "100.00"  # not "100.0000"
    assert format_area(0.016) == "0.016" and format_area(1234.5) == "1,234.50"


def test_scheme_travels_with_saved_labels_and_scale(viewer, tmp_path):
    from napari_rockseg._widgets._state import STORE

    STORE.set_scheme(ROCK4)
    data = np.zeros((40, 50), np.uint8)
    data[5:15, 5:30] = 4
    layer = viewer.add_labels(
        data, name="painted", scale=(7.4, 7.4), metadata={"rockseg_scheme": ROCK4.to_dict()}
    )
    layer.save(str(tmp_path / "rock.tif"), plugin="napari-rockseg")
    assert (tmp_path / "rock.classes.json").exists()
    STORE.set_scheme(SHALE)
    back = viewer.open(str(tmp_path / "rock.tif"), plugin="napari-rockseg")[0]
    assert list(back.features["class"]) == ["unlabelled", *ROCK4.names]
    assert back.scale[-1] == pytest.approx(7.4, rel=1e-3)
    assert np.array_equal(back.data, data)


def test_colour_mask_rock_trains_and_segments_with_its_names(viewer, qtbot, tmp_path):
    import tifffile

    from napari_rockseg._widgets._state import STORE
    from napari_rockseg._widgets.classes import SchemeEditor
    from napari_rockseg._widgets.segment import SegmentWidget
    from napari_rockseg._widgets.train import TrainWidget

    (tmp_path / "rock4.json").write_text(json.dumps(ROCK4.to_dict()))
    ed = SchemeEditor(viewer)
    ed.file.value = tmp_path / "rock4.json"
    ed.load()
    assert STORE.scheme == ROCK4
    rng = np.random.default_rng(1)
    lab = np.repeat(np.repeat(rng.integers(1, 5, (6, 6)), 16, 0), 16, 1).astype(np.uint8)
    img = (lab * 40 + rng.normal(0, 4, lab.shape)).astype(np.float32)
    tifffile.imwrite(tmp_path / "mask.tif", ROCK4.encode_colors(lab), photometric="rgb")
    mask = viewer.open(str(tmp_path / "mask.tif"), plugin="napari-rockseg")[0]
    assert mask.__class__.__name__ == "Labels" and np.array_equal(mask.data, lab)
    image = viewer.add_image(img, name="rock")
    t = TrainWidget(viewer)
    t.image.value, t.labels_layer.value = image, mask
    t.method.value, t.minutes.value, t.steps.value = "rf", 0, 10
    t.run()
    wait_for(qtbot, t.panel)
    s = SegmentWidget(viewer)
    s.image.value = image
    assert s.model.value == STORE.current
    s.run()
    wait_for(qtbot, s.panel)
    out = viewer.layers["rock segmentation"]
    assert list(out.features["class"]) == ["unlabelled", *ROCK4.names]
    assert (out.data == lab).mean() > 0.9
    new = t.new_corrections_layer()
    assert list(new.features["class"]) == ["unlabelled", *ROCK4.names]


def test_number_keys_pick_the_class_and_legend_shows_fractions(viewer):
    from napari_rockseg._layers import display_color
    from napari_rockseg._widgets.classes import SchemeEditor
    from napari_rockseg._widgets.train import TrainWidget

    image, lab = synthetic(viewer)
    t = TrainWidget(viewer)
    t.image.value = image
    layer = t.new_corrections_layer()
    from app_model.types import KeyBinding

    layer.keymap[KeyBinding.from_str("3")](layer)
    assert layer.selected_label == 3
    layer.keymap[KeyBinding.from_str("0")](layer)
    assert layer.selected_label == 0
    layer.data = lab
    ed = SchemeEditor(viewer)
    ed.layer.value = layer
    fr = ed.legend.fractions
    assert fr[2] == pytest.approx(144 / (144 + 1600 - 0), rel=0.1)
    assert "pores" in ed.legend.rows[2].value and "clay" in ed.legend.rows[3].value
    assert display_color((0, 0, 0)) != (0, 0, 0)  # clay is not drawn black
    assert layer.colormap.color_dict[4][:3].max() > 0.2


def test_one_dock_fits_a_1366_x_768_screen(viewer):
    from napari_rockseg._widgets.main import RockSegDock

    dock = RockSegDock(viewer)
    viewer.window.add_dock_widget(dock, name="RockSeg", area="right")
    assert dock.minimumSizeHint().height() < 600
    assert dock.minimumSizeHint().width() <= 420


def test_gui_messages_do_not_point_to_the_command_line(viewer, qtbot):
    from napari_rockseg._widgets.segment import SegmentWidget

    rng = np.random.default_rng(0)
    layer = viewer.add_image(rng.normal(100, 20, (64, 64)).astype(np.float32), name="plain")
    s = SegmentWidget(viewer)
    s.image.value = layer
    s.want_uncertainty.value = False
    s.run()
    wait_for(qtbot, s.panel)
    assert "pixel size is unknown" in s.panel.status.value
    assert "rockseg " not in s.panel.status.value and "docs/" not in s.panel.status.value


def test_export_results_writes_everything_in_one_action(viewer, tmp_path):
    from napari_rockseg._widgets.report import PhaseReportWidget

    image, lab = synthetic(viewer)
    layer = viewer.add_labels(lab, name="seg", metadata={"rockseg_scheme": SHALE.to_dict()})
    w = PhaseReportWidget(viewer)
    w.labels_layer.value, w.image.value = layer, image
    w.results_dir.value = tmp_path / "out"
    paths = w.export_all()
    names = sorted(p.split("/")[-1] for p in paths)
    assert names == [
        "seg overlay.png",
        "seg report.csv",
        "seg report.json",
        "seg.classes.json",
        "seg.tif",
    ]


def test_an_image_the_model_was_not_made_for_gives_one_plain_message(viewer, qtbot):
    """Micro-CT at 2231 nm per pixel with the shipped 11 nm model: one plain error, no layer,
    the widget usable (it was two toasts of 'Unable to allocate 138. GiB')."""
    from napari_rockseg._widgets.segment import SegmentWidget

    rng = np.random.default_rng(0)
    layer = viewer.add_image(rng.normal(100, 20, (64, 64)).astype(np.float32), name="ct")
    s = SegmentWidget(viewer)
    s.image.value = layer
    s.pixel_size.value = 2231.0
    n, layers = len(errors()), len(viewer.layers)
    s.run()
    wait_for(qtbot, s.panel)
    qtbot.wait(50)
    new = errors()[n:]
    assert len(new) == 1 and "coarser than the model's" in new[0], new
    assert "MemoryError" not in new[0] and "GiB" not in new[0]
    assert len(viewer.layers) == layers and s.panel.run_button.enabled
