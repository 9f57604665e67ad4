"""Screenshots of every widget in use on the sample image, for the README.

    xvfb-run -a -s "-screen 0 1600x1200x24" .venv/bin/python scripts/screenshots.py [docs]

Each widget is docked in a real napari window, run on the sample image, and the
whole window is saved with ``viewer.screenshot(..., canvas_only=False)``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import napari
import numpy as np
from qtpy.QtWidgets import QApplication


def wait(panel, timeout=900):
    t0 = time.time()
    while panel.running and time.time() - t0 < timeout:
        QApplication.processEvents()
        time.sleep(0.02)
    for _ in range(20):
        QApplication.processEvents()


def shot(viewer, path):
    for _ in range(10):
        QApplication.processEvents()
    viewer.screenshot(str(path), canvas_only=False, flash=False)
    print("wrote", path)


def main(out="docs"):
    from napari_rockseg._widgets.evaluate import EvaluateWidget
    from napari_rockseg._widgets.report import PhaseReportWidget
    from napari_rockseg._widgets.segment import SegmentWidget
    from napari_rockseg._widgets.train import TrainWidget

    out = Path(out)
    out.mkdir(exist_ok=True)
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1500, 1000)
    viewer.open_sample("napari-rockseg", "shale")
    image = viewer.layers["shale SEM"]
    truth = viewer.layers["shale SEM ground truth"]
    truth.visible = False

    seg = SegmentWidget(viewer)
    dock = viewer.window.add_dock_widget(seg, name="Segment", area="right")
    seg.image.value = image
    seg.run()
    wait(seg.panel)
    viewer.layers["shale SEM uncertainty"].visible = False
    viewer.layers.selection.active = viewer.layers["shale SEM segmentation"]
    shot(viewer, out / "segment.png")
    viewer.window.remove_dock_widget(dock)

    train = TrainWidget(viewer)
    dock = viewer.window.add_dock_widget(train, name="Train and retrain", area="right")
    crop = viewer.add_image(np.asarray(image.data)[:512, :512], name="crop", scale=image.scale, units=image.units)
    crop_truth = viewer.add_labels(np.asarray(truth.data)[:512, :512], name="crop truth", scale=image.scale,
                                   units=image.units, colormap=truth.colormap, features=truth.features,
                                   opacity=0.5)
    train.image.value, train.labels_layer.value = crop, crop_truth
    train.method.value = "unet"
    train.minutes.value = 0
    train.steps.value = 60
    train.tile.value = 96
    train.batch_size.value = 4
    train.run()
    wait(train.panel)
    shot(viewer, out / "train.png")
    viewer.window.remove_dock_widget(dock)
    viewer.layers.remove(crop)
    viewer.layers.remove(crop_truth)

    ev = EvaluateWidget(viewer)
    dock = viewer.window.add_dock_widget(ev, name="Evaluate and compare", area="right")
    ev.prediction.value = viewer.layers["shale SEM segmentation"]
    ev.truth.value = truth
    ev.run()
    ev.image.value = image
    ev.compare()
    wait(ev.compare_panel)
    viewer.layers.selection.active = viewer.layers["shale SEM segmentation"]
    shot(viewer, out / "evaluate.png")
    viewer.window.remove_dock_widget(dock)

    rep = PhaseReportWidget(viewer)
    dock = viewer.window.add_dock_widget(rep, name="Phase report", area="right")
    rep.labels_layer.value = viewer.layers["shale SEM segmentation"]
    rep.run()
    shot(viewer, out / "report.png")
    viewer.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
