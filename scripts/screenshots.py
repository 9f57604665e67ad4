"""Screenshots of the plugin in use on the sample image, at 1366 x 768, for the README.

    xvfb-run -a -s "-screen 0 1600x1200x24" .venv/bin/python scripts/screenshots.py [docs] [volume]

The one RockSeg dock (tabs) sits in a real napari window of a laptop's size; each tab is run
on the sample image and the whole window is saved with ``viewer.screenshot(...,
canvas_only=False)``: segment.png, train.png, evaluate.png, report.png, classes.png and
overview.png (segmentation, legend and report side by side with the canvas); volume.png: the
real FIB-SEM stack (../shared/data/fibsem-stack) aligned, segmented by a random forest trained
on two painted slices, in napari's 3-D view (only this one with ``volume`` after the folder).
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


def main(out="docs", only=None):
    from napari_rockseg._widgets.main import RockSegDock

    out = Path(out)
    out.mkdir(exist_ok=True)
    volume_shot(out)
    if only == "volume":
        return
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


FIBSEM = Path(__file__).resolve().parents[2] / "shared" / "data" / "fibsem-stack" / "slices"
#: a part of the stack that keeps the shot quick: slices, and a 512 x 512 window of each
N_SLICES, WINDOW = 8, (slice(296, 808), slice(604, 1116))
#: the stack has no voxel size: z is drawn this many pixels per slice in the 3-D view only
Z_DRAWN = 6
#: camera of the 3-D view (napari's euler angles, degrees) and zoom relative to its fit
ANGLES, ZOOM = (-35, 40, 130), 0.9


def scribbles(plane, seed=0):
    """What a user paints on one slice: a few dark pores and patches of grain, found on a
    smoothed copy (the slices are noisy); everything else stays unpainted (0)."""
    from scipy import ndimage as ndi

    from napari_rockseg.engine.classes import SHALE

    smooth = ndi.gaussian_filter(plane.astype(np.float32), 3)
    lab = np.zeros(plane.shape, np.uint8)
    lab[ndi.binary_erosion(smooth < np.percentile(smooth, 1.5), iterations=1)] = SHALE.find("pore")
    rng = np.random.default_rng(seed)
    grain = np.abs(smooth - np.median(smooth)) < 0.5 * smooth.std()
    for y, x in rng.integers(20, plane.shape[0] - 20, (40, 2)):
        patch = (slice(y - 6, y + 6), slice(x - 6, x + 6))
        lab[patch][grain[patch]] = SHALE.find("mineral")
    return lab


def volume_shot(out):
    """volume.png: align the stack, paint two slices, train a forest, segment, view in 3-D."""
    from napari_rockseg._widgets.main import RockSegDock
    from napari_rockseg.engine.classes import SHALE
    from napari_rockseg.engine.io import read_volume

    if not FIBSEM.is_dir():
        print(f"skipped volume.png: {FIBSEM} is not here")
        return
    viewer = napari.Viewer(show=True)
    dock = RockSegDock(viewer)
    viewer.window.add_dock_widget(dock, name="RockSeg", area="right")
    viewer.window._qt_window.resize(*SIZE)
    data = np.asarray(read_volume(FIBSEM).data[:N_SLICES, WINDOW[0], WINDOW[1]])
    stack = viewer.add_image(data, name="FIB-SEM")
    seg = dock.segment
    seg.image.value = stack
    seg.volume.align()
    wait(seg.volume.align_panel)
    aligned = viewer.layers["FIB-SEM aligned"]

    train = dock.train
    train.image.value = aligned
    painted = train.new_corrections_layer()
    for z in (1, N_SLICES - 2):
        painted.data[z] = scribbles(np.asarray(aligned.data[z]), seed=z)
    train.method.value = "rf"
    train.run()
    wait(train.panel)
    viewer.layers.remove(painted)

    seg.model.value = last_trained()
    seg.want_uncertainty.value = False
    seg.image.value = aligned
    seg.run()
    wait(seg.panel)
    labels = viewer.layers["FIB-SEM aligned segmentation"]
    for layer in (aligned, labels):
        layer.scale = (Z_DRAWN, 1, 1)
    labels.show_selected_label = True  # the pores alone, as a 3-D body
    labels.selected_label = SHALE.find("pore")
    labels.opacity = 0.9
    aligned.depiction = "plane"  # the grey of the bottom slice under the pores
    aligned.plane.position = (0, 0, 0)
    viewer.dims.ndisplay = 3
    camera = getattr(viewer, "scene", viewer).camera
    camera.angles = ANGLES
    camera.zoom *= ZOOM
    dock.show_tab("Segment")
    scroll = dock.tabs.currentWidget().verticalScrollBar()
    scroll.setValue(scroll.maximum())  # the volume controls and the shifts of each slice
    viewer.layers.selection.active = labels
    close_toasts(viewer)
    shot(viewer, out / "volume.png")
    viewer.close()


def close_toasts(viewer):
    """Notifications of the steps above would cover the canvas."""
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.close()


def last_trained():
    from napari_rockseg._widgets._state import STORE

    return STORE.trained[-1]


if __name__ == "__main__":
    main(*sys.argv[1:])
