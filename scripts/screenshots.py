"""Screenshots of the plugin in use on the sample image, at 1366 x 768, for the README.

    xvfb-run -a -s "-screen 0 1600x1200x24" .venv/bin/python scripts/screenshots.py [docs]

The one RockSeg dock (tabs) sits in a real napari window of a laptop's size; each tab is run
on the sample image and the whole window is saved with ``viewer.screenshot(...,
canvas_only=False)``: segment.png, train.png, evaluate.png, report.png, classes.png and
overview.png (segmentation, legend and report side by side with the canvas).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import napari
import numpy as np
from qtpy.QtWidgets import QApplication

SIZE = (1366, 768)


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
    from napari_rockseg._widgets.main import RockSegDock

    out = Path(out)
    out.mkdir(exist_ok=True)
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(*SIZE)
    viewer.open_sample("napari-rockseg", "shale")
    image = viewer.layers["shale SEM"]
    truth = viewer.layers["shale SEM ground truth"]
    truth.visible = False
    dock = RockSegDock(viewer)
    viewer.window.add_dock_widget(dock, name="RockSeg", area="right")
    viewer.window._qt_window.resize(*SIZE)

    seg = dock.segment
    seg.image.value = image
    seg.run()
    wait(seg.panel)
    result = viewer.layers["shale SEM segmentation"]
    viewer.layers["shale SEM uncertainty"].visible = False
    viewer.layers.selection.active = result
    shot(viewer, out / "segment.png")

    dock.show_tab("Train")
    train = dock.train
    crop = viewer.add_image(
        np.asarray(image.data)[:512, :512], name="crop", scale=image.scale, units=image.units
    )
    crop_truth = viewer.add_labels(
        np.asarray(truth.data)[:512, :512],
        name="crop truth",
        scale=image.scale,
        units=image.units,
        colormap=truth.colormap,
        features=truth.features,
        metadata=dict(truth.metadata),
        opacity=0.5,
    )
    train.image.value, train.labels_layer.value = crop, crop_truth
    train.method.value = "unet"
    train.minutes.value = 0
    train.steps.value = 60
    train.tile.value = 96
    train.batch_size.value = 4
    train.run()
    wait(train.panel)
    shot(viewer, out / "train.png")
    viewer.layers.remove(crop)
    viewer.layers.remove(crop_truth)

    dock.show_tab("Evaluate")
    ev = dock.evaluate
    ev.prediction.value = result
    ev.truth.value = truth
    ev.run()
    ev.image.value = image
    ev.compare()
    wait(ev.compare_panel)
    viewer.layers.selection.active = result
    shot(viewer, out / "evaluate.png")

    dock.show_tab("Report")
    dock.report.labels_layer.value = result
    dock.report.run()
    shot(viewer, out / "report.png")

    dock.show_tab("Classes")
    dock.classes.layer.value = result
    shot(viewer, out / "classes.png")

    dock.show_tab("Report")
    viewer.camera.zoom *= 1.6
    shot(viewer, out / "overview.png")
    viewer.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
