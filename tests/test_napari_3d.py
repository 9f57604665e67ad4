"""Volumes in the napari plugin (issue 28): Segment, Align slices, the 3-D phase report and
training from painted slices, on tiny synthetic (z, y, x) volumes."""

import json

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from napari_rockseg.engine.classes import SHALE

pytestmark = pytest.mark.gui
torch.set_num_threads(1)

#: (z, y, x) nm: FIB-SEM-like, slices thicker than the pixels
ANISO = (30.0, 10.0, 10.0)


@pytest.fixture
def viewer(make_napari_viewer):
    from napari_rockseg._widgets._state import SHIPPED_DEFAULT, SHIPPED_LDA, STORE

    STORE.current, STORE.scheme = SHIPPED_LDA, SHALE
    yield make_napari_viewer()
    STORE.current, STORE.scheme = SHIPPED_DEFAULT, SHALE


def wait_for(qtbot, panel, timeout=60_000):
    qtbot.waitUntil(lambda: not panel.running, timeout=timeout)


def grains(shape=(4, 64, 64), seed=0):
    """Grey rock: mid-grey grains, dark pores (a channel along z and round pores), bright
    specks; grey values like an 8-bit SEM image."""
    rng = np.random.default_rng(seed)
    vol = rng.normal(120, 6, shape).astype(np.float32)
    vol[:, 28:36, 28:36] = rng.normal(25, 4, (shape[0], 8, 8))
    vol[:, 8:14, 40:46] = 30
    vol[:, 50:56, 10:16] = 230
    return np.clip(vol, 0, 255).astype(np.uint8)


def segment_widget(viewer, vol, scale=ANISO, name="stack"):
    from napari_rockseg._widgets._state import SHIPPED_LDA
    from napari_rockseg._widgets.segment import SegmentWidget

    layer = viewer.add_image(vol, name=name, scale=scale, units=("nm",) * 3)
    seg = SegmentWidget(viewer)
    seg.model.value = SHIPPED_LDA
    seg.image.value = layer
    return seg, layer


def test_segment_a_3d_layer_gives_a_3d_labels_layer_with_its_scale_and_scheme(viewer, qtbot):
    from napari_rockseg._widgets._state import SHIPPED_LDA, STORE

    seg, layer = segment_widget(viewer, grains())
    assert not seg.volume.native.isHidden()  # the volume controls show for a 3-D layer
    assert seg.pixel_size.value == 10.0 and seg.volume.depth.value == 30.0
    assert "triplanar" not in seg.volume.mode.choices  # anisotropic voxels
    seg.want_uncertainty.value = True
    seg.run()
    assert seg.panel.running  # in the worker
    wait_for(qtbot, seg.panel)
    assert seg.panel.last_error is None, seg.panel.status.value
    out = viewer.layers["stack segmentation"]
    assert out.data.shape == (4, 64, 64) and tuple(out.scale) == ANISO
    scheme = STORE.get(SHIPPED_LDA).info.scheme
    pore = SHALE.find("pore")
    assert out.metadata["rockseg_scheme"] == scheme.to_dict()
    assert list(out.features["class"]) == ["unlabelled", *scheme.names]
    np.testing.assert_allclose(out.colormap.map(pore)[..., :3].ravel(), (0, 1, 0))  # green pores
    assert out.metadata["voxel_size_nm"] == ANISO and seg.result.mode == "slices"
    assert (out.data[:, 30:34, 30:34] == pore).all()  # the dark channel, on every slice
    assert (out.data[:, 2:6, 2:6] != pore).all()
    unc = viewer.layers["stack uncertainty"]
    assert unc.data.shape == (4, 64, 64) and tuple(unc.scale) == ANISO


def test_slices_of_a_volume_match_segmenting_each_slice_alone_in_the_widget(viewer, qtbot):
    vol = grains()
    seg, _ = segment_widget(viewer, vol)
    seg.run()
    wait_for(qtbot, seg.panel)
    three_d = np.asarray(viewer.layers["stack segmentation"].data)
    plane = viewer.add_image(vol[2], name="plane", scale=ANISO[1:], units=("nm", "nm"))
    seg.reset_choices()
    seg.image.value = plane
    assert seg.volume.native.isHidden()  # 2-D: no volume controls
    seg.run()
    wait_for(qtbot, seg.panel)
    np.testing.assert_array_equal(viewer.layers["plane segmentation"].data, three_d[2])


def test_triplanar_only_for_isotropic_voxels_and_cancel_stops_it(viewer, qtbot):
    seg, _ = segment_widget(viewer, grains((12, 48, 48)), scale=(10.0, 10.0, 10.0))
    assert "triplanar" in seg.volume.mode.choices
    seg.volume.depth.value = 25.0
    assert "triplanar" not in seg.volume.mode.choices
    seg.volume.depth.value = 10.0
    seg.volume.mode.value = "triplanar"
    seg.run()
    wait_for(qtbot, seg.panel)
    assert seg.result.mode == "triplanar"
    assert viewer.layers["stack segmentation"].data.shape == (12, 48, 48)
    seg.tile.value = 32  # many windows per plane: time to cancel
    seg.overlap.value = 16
    seg.run()
    seg.panel.cancel()
    wait_for(qtbot, seg.panel)
    assert seg.panel.status.value == "cancelled" and seg.panel.run_button.enabled


def drifted(drift, size=64, margin=12):
    big = ndi.gaussian_filter(np.random.default_rng(1).normal(size=(size + 2 * margin,) * 2), 2)
    window = (slice(margin, margin + size),) * 2
    return np.stack([np.roll(big, d, (0, 1))[window] for d in drift]).astype(np.float32)


def test_align_slices_adds_the_aligned_volume_and_shows_the_shifts(viewer, qtbot):
    drift = np.array([[0, 0], [2, -3], [4, -1], [1, 2]])
    seg, layer = segment_widget(viewer, drifted(drift))
    seg.volume.align()
    wait_for(qtbot, seg.volume.align_panel)
    assert seg.volume.align_panel.last_error is None, seg.volume.align_panel.status.value
    np.testing.assert_allclose(seg.volume.result.shifts, -drift, atol=0.2)
    new = viewer.layers["stack aligned"]
    y0, y1, x0, x1 = seg.volume.result.box
    assert new.data.shape == (4, y1 - y0, x1 - x0) and tuple(new.scale) == ANISO
    np.testing.assert_allclose(new.translate, (0, 10 * y0, 10 * x0))
    for plane in np.asarray(new.data)[1:]:  # the slices now show one structure
        np.testing.assert_allclose(plane, new.data[0], atol=1e-3)
    table = seg.volume.shifts.value
    assert list(table["columns"]) == ["slice", "dy px", "dx px"] and len(table["data"]) == 4
    assert seg.volume.shifts.native.item(1, 1).text() == "-2.00"
    assert "largest shift dy 4.00, dx 3.00" in seg.volume.align_panel.status.value
    assert seg.image.value is new  # Segment goes on with the aligned volume


def channel_and_closed_pore(shape=(8, 32, 32)):
    """Mineral grain with a straight 4 x 4 pore channel along z and a closed 2 x 4 x 4 pore."""
    lab = np.full(shape, SHALE.find("mineral"), np.uint8)
    lab[:, 10:14, 10:14] = SHALE.find("pore")
    lab[3:5, 22:26, 22:26] = SHALE.find("pore")
    return lab


def test_phase_report_of_a_labels_volume_runs_in_the_worker_and_exports(viewer, qtbot, tmp_path):
    from napari_rockseg._layers import labels_kwargs
    from napari_rockseg._widgets.report import PhaseReportWidget

    lab = channel_and_closed_pore()
    layer = viewer.add_labels(lab, **labels_kwargs(SHALE, "vol", scale=(10.0, 10.0, 10.0)))
    rep = PhaseReportWidget(viewer)
    rep.labels_layer.value = layer
    assert rep.result is None and not rep.volume.native.isHidden()  # not run on selection
    assert rep.update_button.native.isHidden()
    assert rep.volume.pore_sizes.value and rep.volume.tortuosity.value
    assert not rep.volume.network.value  # the slow pore network is off by default
    rep.volume.panel.run_button.changed.emit(True)  # Compute 3-D report
    assert rep.volume.panel.running
    wait_for(qtbot, rep.volume.panel)
    assert rep.volume.panel.last_error is None, rep.volume.panel.status.value
    r = rep.result
    total = lab.size
    assert r["porosity"] == pytest.approx((8 * 16 + 2 * 16) / total)
    assert r["connected_porosity_axes"]["z"] == pytest.approx(8 * 16 / total)
    assert r["connected_porosity_axes"]["y"] == 0 and r["connected_porosity_axes"]["x"] == 0
    assert r["isolated_porosity"] == pytest.approx(2 * 16 / total)
    assert r["tortuosity"]["z"] == pytest.approx(1.0, abs=0.02)
    assert r["permeability_assumptions"] is None  # network was not asked for
    table = rep.table.value
    cells = {row[0]: row[1:] for row in table["data"]}
    assert list(table["columns"]) == ["quantity", "all", "z", "y", "x"]
    assert cells["porosity %"][0] == f"{100 * r['porosity']:.2f}"
    assert cells["connected porosity %"][1] == f"{100 * 8 * 16 / total:.2f}"
    assert cells["isolated porosity %"][0] == f"{100 * 2 * 16 / total:.2f}"
    assert cells["pore d50 (nm)"][0] == f"{r['pore_sizes']['d50']:.4g}"
    assert cells["tortuosity"][1:] == ["1", "no path", "no path"]
    assert not any(k.startswith("permeability") for k in cells)
    assert rep.table.native.item(0, 1).text() == f"{100 * r['porosity']:.2f}"
    rep.csv_path.value = tmp_path / "vol.csv"
    rep.export()
    header, values = (tmp_path / "vol.csv").read_text().splitlines()
    row = dict(zip(header.split(","), values.split(",")))
    assert float(row["porosity"]) == pytest.approx(r["porosity"])
    assert float(row["tortuosity_z"]) == pytest.approx(r["tortuosity"]["z"])
    rep.results_dir.value = tmp_path / "all"
    paths = rep.export_all()
    saved = json.loads((tmp_path / "all" / "vol report.json").read_text())
    assert saved["connected_porosity_axes"] == r["connected_porosity_axes"]
    from napari_rockseg.engine.io import read_volume

    back = read_volume(tmp_path / "all" / "vol.tif")
    np.testing.assert_array_equal(back.data, lab)
    assert back.voxel_size_nm == pytest.approx((10.0, 10.0, 10.0)) and len(paths) == 4


def test_phase_report_of_a_volume_with_the_pore_network_gives_permeability(viewer, qtbot):
    from napari_rockseg._layers import labels_kwargs
    from napari_rockseg._widgets.report import PhaseReportWidget

    g = np.mgrid[:16, :16, :16]
    lab = np.full((16, 16, 16), SHALE.find("mineral"), np.uint8)
    lab[(g[1] - 8) ** 2 + (g[2] - 8) ** 2 <= 9] = SHALE.find("pore")  # a round tube along z
    layer = viewer.add_labels(lab, **labels_kwargs(SHALE, "vol", scale=(10.0, 10.0, 10.0)))
    rep = PhaseReportWidget(viewer)
    rep.labels_layer.value = layer
    rep.volume.pore_sizes.value = rep.volume.tortuosity.value = False
    rep.volume.network.value = True
    rep.run()
    wait_for(qtbot, rep.volume.panel)
    assert rep.volume.panel.last_error is None, rep.volume.panel.status.value
    cells = {row[0]: row[1:] for row in rep.table.value["data"]}
    k = rep.result["permeability_mD"]
    assert k["z"] > 0 and k["y"] is None
    assert cells["permeability (mD)"][1:] == [f"{k['z']:.4g}", "no path", "no path"]
    assert "pore d50 (nm)" not in cells and "tortuosity" not in cells


def test_paint_two_slices_of_a_new_3d_corrections_layer_and_train(viewer, qtbot):
    from napari_rockseg._widgets._state import STORE
    from napari_rockseg._widgets.train import TrainWidget

    vol = grains((6, 64, 64))
    image = viewer.add_image(vol, name="stack", scale=ANISO, units=("nm",) * 3)
    train = TrainWidget(viewer)
    train.image.value = image
    layer = train.new_corrections_layer()
    assert layer.data.shape == vol.shape and tuple(layer.scale) == ANISO
    assert train.labels_layer.value is layer
    mineral, pore = SHALE.find("mineral"), SHALE.find("pore")
    for z in (1, 4):  # two painted slices; the rest stays unpainted (0, ignored)
        layer.data[z, 2:20, 2:20] = mineral
        layer.data[z, 29:35, 29:35] = pore
    _, images, labels = train._inputs()
    assert [im.metadata["index"] for im in images] == [1, 4]
    assert all(im.data.shape == (64, 64) and im.pixel_size_nm == 10.0 for im in images)
    np.testing.assert_array_equal(labels[1], layer.data[4])
    before = list(STORE.trained)
    train.method.value = "rf"
    train.minutes.value = 0
    train.steps.value = 5
    train.run()
    wait_for(qtbot, train.panel)
    assert train.panel.last_error is None, train.panel.status.value
    assert train.model is not None and train.model.kind == "rf"
    assert len(STORE.trained) == len(before) + 1
    fb = {row[0]: row[2] for row in train.feedback.value["data"]}
    assert fb["pores"] != "not painted" and fb["organic matter"] == "not painted"
    seg = train.model  # the new model finds the channel on an unpainted slice
    from napari_rockseg.engine.events import drain
    from napari_rockseg.engine.inference.volume import segment_volume

    out = drain(segment_volume(seg, vol, ANISO, "slices"))
    assert (out.labels[2, 30:34, 30:34] == pore).all()
    assert (out.labels[2, 4:16, 4:16] == mineral).mean() > 0.9


def test_a_volume_with_2d_labels_is_refused_in_plain_words(viewer, qtbot):
    from napari_rockseg._widgets.train import TrainWidget

    image = viewer.add_image(grains(), name="stack", scale=ANISO)
    flat = viewer.add_labels(np.ones((64, 64), np.uint8), name="flat")
    train = TrainWidget(viewer)
    train.image.value, train.labels_layer.value = image, flat
    assert train.run() is None
    assert "is 2-D" in train.panel.status.value and not train.panel.running


# -- lazy and big volumes: labels in a zarr store --------------------------------------------
def big_rock(shape=(64, 256, 256)):
    """``grains`` tiled in y and x: the same dark channel and pores every 64 pixels."""
    return np.tile(grains((shape[0], 64, 64)), (1, shape[1] // 64, shape[2] // 64))


def traced_run(seg, qtbot, layer) -> int:
    """Peak bytes that Python and numpy allocate while ``seg`` segments ``layer``: from Run
    until the result reaches the GUI thread (napari's drawing of the new layers is not the
    segmentation's, and its cost does not grow with the volume either)."""
    import tracemalloc

    start, peaks = seg.panel.start, []

    def traced_start(job, done, *args, **kw):
        def traced_done(result):
            peaks.append(tracemalloc.get_traced_memory()[1])
            done(result)

        return start(job, traced_done, *args, **kw)

    seg.reset_choices()
    seg.image.value = layer
    seg.panel.start = traced_start
    qtbot.wait(200)  # napari draws the new image layer (and re-slices the others) first
    tracemalloc.start()
    try:
        seg.run()
        wait_for(qtbot, seg.panel)
    finally:
        tracemalloc.stop()
        seg.panel.start = start
    assert seg.panel.last_error is None, seg.panel.status.value
    return peaks[0]


def test_a_dask_volume_is_segmented_into_a_zarr_backed_paintable_labels_layer(viewer, qtbot):
    import dask.array as da
    import zarr

    from napari_rockseg._widgets._layerio import work_folder
    from napari_rockseg._widgets._state import SHIPPED_LDA, STORE

    vol = big_rock()  # 64 x 256 x 256: labels 4 MiB, uncertainty 16 MiB

    def lazy_layer(z, name):
        return viewer.add_image(
            da.from_array(vol[:z], chunks=(8, 256, 256)), name=name, scale=ANISO
        )

    seg, _ = segment_widget(viewer, da.from_array(grains((2, 64, 64))), name="warm")
    seg.run()  # loads the model and what a run imports, untraced (tracing slows imports)
    wait_for(qtbot, seg.panel)
    half = traced_run(seg, qtbot, lazy_layer(32, "half"))  # new layers, as below: like for like
    peak = traced_run(seg, qtbot, lazy_layer(64, "lazy"))
    assert "on disk" in seg.panel.status.value
    out = viewer.layers["lazy segmentation"]
    assert isinstance(out.data, zarr.Array) and out.data.shape == vol.shape
    assert seg.result.labels is None  # nothing of the volume was kept in memory
    assert str(out.data.store.root).startswith(str(work_folder()))
    assert tuple(out.scale) == ANISO and out.metadata["voxel_size_nm"] == ANISO
    scheme = STORE.get(SHIPPED_LDA).info.scheme
    assert out.metadata["rockseg_scheme"] == scheme.to_dict()
    assert list(out.features["class"]) == ["unlabelled", *scheme.names]
    unc = viewer.layers["lazy uncertainty"]
    assert isinstance(unc.data, zarr.Array) and unc.data.dtype == np.float32

    mem_layer = viewer.add_image(vol, name="mem", scale=ANISO, units=("nm",) * 3)
    in_memory = traced_run(seg, qtbot, mem_layer)
    mem = viewer.layers["mem segmentation"]
    assert isinstance(mem.data, np.ndarray)  # small and in memory: as before
    np.testing.assert_array_equal(out.data[:], mem.data)
    np.testing.assert_allclose(unc.data[:], viewer.layers["mem uncertainty"].data, atol=1e-6)
    # flat memory: the engine's working set is a few slices (read ahead, segmented together),
    # so twice the slices cost less than a tenth of the labels volume more, while the run in
    # memory holds the labels and uncertainty volumes (4 + 16 MiB) on top of that working set
    print(
        f"peak MiB: 32 slices {half / 2**20:.2f}, 64 slices {peak / 2**20:.2f}, "
        f"64 in memory {in_memory / 2**20:.2f}"
    )
    assert abs(peak - half) < vol.size / 10
    assert in_memory - peak > 0.9 * 5 * vol.size

    before = int(out.data[5, 100, 100])
    out.selected_label = new = 1 + before % 4
    out.paint((5, 100, 100), new, refresh=True)  # a brush stroke, as the user paints
    assert out.data[5, 100, 100] == new and out.metadata["rockseg_painted"]
    assert zarr.open_array(out.data.store.root, mode="r")[5, 100, 100] == new  # on disk


def test_a_zarr_backed_labels_layer_saves_and_exports_and_a_rerun_frees_its_store(
    viewer, qtbot, tmp_path
):
    import dask.array as da

    from napari_rockseg._widgets.volume import export_volume_results
    from napari_rockseg.engine.analysis.volume import volume_report_steps
    from napari_rockseg.engine.events import drain
    from napari_rockseg.engine.io import read_volume

    vol = grains((6, 64, 64))
    seg, _ = segment_widget(viewer, da.from_array(vol, chunks=(2, 64, 64)), name="lazy")
    seg.want_probabilities.value = True  # a volume on disk keeps no probabilities
    assert seg.run() is None and "untick 'probability maps'" in seg.panel.status.value
    seg.want_probabilities.value = False
    seg.run()
    wait_for(qtbot, seg.panel)
    out = viewer.layers["lazy segmentation"]
    store = out.data.store.root
    lab = out.data[:]
    # the plugin's writer: one labels layer selected
    viewer.layers.selection = {out}
    saved = viewer.layers.save(str(tmp_path / "saved.tif"), selected=True, plugin="napari-rockseg")
    assert saved and (tmp_path / "saved.classes.json").exists()
    np.testing.assert_array_equal(read_volume(tmp_path / "saved.tif").data, lab)
    report = drain(volume_report_steps(lab, SHALE, ANISO, pore_sizes=False, tortuosity=False))
    paths = export_volume_results(tmp_path / "all", out, report)
    back = read_volume(tmp_path / "all" / "lazy segmentation.tif")
    np.testing.assert_array_equal(back.data, lab)
    assert back.voxel_size_nm == pytest.approx(ANISO) and len(paths) == 4
    seg.run()  # again: the layer shows the new store, the old one is deleted
    wait_for(qtbot, seg.panel)
    assert out.data.store.root != store and not store.exists()
    np.testing.assert_array_equal(out.data[:], lab)


def test_a_cancelled_volume_run_leaves_no_store_behind(viewer, qtbot):
    import dask.array as da

    from napari_rockseg._widgets._layerio import work_folder

    seg, _ = segment_widget(viewer, da.from_array(grains((40, 64, 64)), chunks=(1, 64, 64)))
    seg.tile.value, seg.overlap.value = 32, 16  # many windows per slice: time to cancel
    before = set(work_folder().iterdir())
    seg.run()
    qtbot.waitUntil(lambda: seg.panel.progress.value > 0, timeout=30_000)
    seg.panel.cancel()
    wait_for(qtbot, seg.panel)
    assert seg.panel.status.value == "cancelled"
    assert set(work_folder().iterdir()) == before
    assert "stack segmentation" not in viewer.layers
