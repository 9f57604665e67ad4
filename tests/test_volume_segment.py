"""Volumes segmented by 2-D models (slices, tri-planar) and trained from painted slices."""

import tracemalloc

import numpy as np
import pytest
import torch
from helpers import synthetic_scene, tiny_config

from napari_rockseg.engine.analysis.metrics import per_class_iou
from napari_rockseg.engine.classes import ClassScheme
from napari_rockseg.engine.errors import InputError
from napari_rockseg.engine.events import Progress, drain
from napari_rockseg.engine.inference import volume as vseg
from napari_rockseg.engine.inference.segment import segment
from napari_rockseg.engine.inference.volume import segment_volume
from napari_rockseg.engine.io import SEMImage, Volume, read_volume, write_volume
from napari_rockseg.engine.training.trainer import Trainer
from napari_rockseg.engine.training.volume_data import load_pairs, training_slices

SCHEME = ClassScheme(
    ("background", "blob", "pore"), ((200, 200, 200), (255, 0, 0), (0, 255, 0)), rest=0
)
VOXEL = 10.0
PAINTED = (6, 18)


def synthetic_volume(n=24, size=64, seed=0):
    """Grey volume and its true labels: background (1), big bright balls (2) and small dark
    balls (3), isotropic, with noise; every class shows in every slice's neighbourhood."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.mgrid[:n, :size, :size]
    labels = np.ones((n, size, size), np.uint8)
    for _ in range(6):
        c = rng.uniform((0, 8, 8), (n, size - 8, size - 8))
        labels[(zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 < 11**2] = 2
    for _ in range(24):
        c = rng.uniform((0, 4, 4), (n, size - 4, size - 4))
        labels[(zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 < 4**2] = 3
    means = np.array([0, 120, 200, 30], np.float32)
    grey = np.clip(means[labels] + rng.normal(0, 12, labels.shape), 0, 255).astype(np.uint8)
    return grey, labels


@pytest.fixture(scope="module")
def scene_volume():
    # one thread: on a loaded machine, torch's threads spin-wait for each other (50x slower)
    torch.set_num_threads(1)
    return synthetic_volume()


@pytest.fixture(scope="module")
def volume_model(scene_volume):
    """A tiny U-Net trained only on the labels painted on two xy slices of the volume."""
    grey, truth = scene_volume
    painted = np.zeros_like(truth)
    for z in PAINTED:
        painted[z] = truth[z]
    images, labels = training_slices(Volume(grey, (VOXEL,) * 3), painted)
    return drain(Trainer(tiny_config(), images, labels, SCHEME).run())


# -- training data from a volume ------------------------------------------------------
def test_training_slices_are_the_painted_planes_of_any_axis():
    grey = np.arange(6 * 8 * 10, dtype=np.uint16).reshape(6, 8, 10)
    painted = np.zeros(grey.shape, np.uint8)
    painted[2, 1:6, 2:9] = 1  # a stroke on xy slice 2, crossing y=5
    painted[:, 5, 3] = 2  # a line along z, in xz plane y=5 (and yz plane x=3)
    vol = Volume(grey, (30.0, 10.0, 10.0))
    images, labels = training_slices(vol, painted)
    where = {
        (im.metadata["axis"], im.metadata["index"]): (im, lab) for im, lab in zip(images, labels)
    }
    assert set(where) == {("z", 2), ("y", 5)}
    xy, xy_labels = where[("z", 2)]
    np.testing.assert_array_equal(xy.data, grey[2])
    np.testing.assert_array_equal(xy_labels, painted[2])
    assert xy.pixel_size_nm == 10.0
    xz, xz_labels = where[("y", 5)]
    assert xz.pixel_size_nm == 10.0 and xz.data.shape == (18, 10)  # z resampled 3x to square
    assert (xz_labels == 2).sum() == 18 and (xz_labels[:, 3] == 2).all()
    assert set(np.unique(xz_labels)) == {0, 1, 2}  # unpainted stays 0; the xy stroke crosses it


def test_training_slices_refuse_unpainted_or_mismatched_labels():
    vol = Volume(np.zeros((3, 4, 4), np.uint8), (1.0, 1.0, 1.0))
    with pytest.raises(InputError, match="no painted voxel"):
        training_slices(vol, np.zeros((3, 4, 4), np.uint8))
    with pytest.raises(InputError, match="shape"):
        training_slices(vol, np.ones((2, 4, 4), np.uint8))


def test_load_pairs_takes_painted_slices_of_volume_files(scene_volume, tmp_path):
    grey, truth = scene_volume
    painted = np.zeros_like(truth)
    painted[PAINTED[0]] = truth[PAINTED[0]]
    write_volume(tmp_path / "vol.tif", grey, (None, VOXEL, VOXEL))
    write_volume(tmp_path / "vol_labels.tif", painted)
    images, labels = load_pairs(
        [tmp_path / "vol.tif"], [tmp_path / "vol_labels.tif"], SCHEME, voxel_depth_nm=VOXEL
    )
    assert len(images) == 1 and images[0].metadata["index"] == PAINTED[0]
    np.testing.assert_array_equal(images[0].data, grey[PAINTED[0]])
    np.testing.assert_array_equal(labels[0], truth[PAINTED[0]])
    assert images[0].pixel_size_nm == pytest.approx(VOXEL)


def test_volume_painted_on_two_slices_trains_a_model(volume_model, scene_volume):
    grey, truth = scene_volume
    z = 12  # between the painted slices, never seen in training
    seg = drain(segment(volume_model, SEMImage(grey[z], VOXEL), data_bar=0, device="cpu"))
    iou = per_class_iou(seg.labels, truth[z], 3)
    assert iou.mean() > 0.7, iou  # chance (one class everywhere) is about 0.25


# -- slices mode ------------------------------------------------------------------------
def test_slice_by_slice_equals_each_slice_alone(volume_model):
    # rolled copies of one image: different slices with one histogram, so the volume's
    # intensity statistics are each slice's own and segmenting alone must agree exactly
    image, _ = synthetic_scene(64, seed=3)
    stack = np.stack([np.roll(image, (7 * i, -5 * i), (0, 1)) for i in range(5)])
    events = []
    gen = segment_volume(volume_model, stack, (VOXEL,) * 3, "slices", batch_slices=2, device="cpu")
    while True:
        try:
            events.append(next(gen))
        except StopIteration as stop:
            result = stop.value
            break
    assert result.mode == "slices" and result.labels.shape == stack.shape
    assert result.labels.dtype == np.uint8
    for z, plane in enumerate(stack):
        alone = drain(segment(volume_model, SEMImage(plane, VOXEL), data_bar=0, device="cpu"))
        np.testing.assert_array_equal(result.labels[z], alone.labels)
    slice_events = [e for e in events if isinstance(e, Progress) and e.stage == "slices"]
    assert [e.step for e in slice_events] == [2, 4, 5]  # per chunk of batch_slices
    assert result.counts.sum() == stack.size


def test_uncertainty_and_probabilities_of_a_volume(volume_model, scene_volume):
    grey = scene_volume[0][:4]
    res = drain(
        segment_volume(
            volume_model,
            grey,
            (VOXEL,) * 3,
            "slices",
            device="cpu",
            probabilities=True,
            uncertainty=True,
        )
    )
    assert res.probabilities.shape == (3, *grey.shape)
    np.testing.assert_allclose(res.probabilities.sum(axis=0), 1.0, atol=1e-4)
    np.testing.assert_array_equal(res.labels, res.probabilities.argmax(axis=0) + 1)
    assert res.uncertainty.shape == grey.shape
    assert 0.0 <= res.uncertainty.min() and res.uncertainty.max() <= 1.0


# -- tri-planar and the default ---------------------------------------------------------
def test_triplanar_runs_on_isotropic_volume(volume_model, scene_volume):
    grey, truth = scene_volume
    res = drain(segment_volume(volume_model, grey, (VOXEL,) * 3, "triplanar", device="cpu"))
    assert res.mode == "triplanar" and res.labels.shape == grey.shape
    assert set(np.unique(res.labels)) == {1, 2, 3}
    assert per_class_iou(res.labels, truth, 3).mean() > 0.7


def test_triplanar_refused_for_anisotropic_voxels_and_auto_picks_slices(volume_model):
    grey = np.zeros((3, 32, 32), np.uint8)
    with pytest.raises(InputError, match="isotropic"):
        drain(segment_volume(volume_model, grey, (30.0, 10.0, 10.0), "triplanar"))
    with pytest.raises(InputError, match="isotropic"):
        drain(segment_volume(volume_model, grey, (None, 10.0, 10.0), "triplanar"))
    res = drain(segment_volume(volume_model, grey, (30.0, 10.0, 10.0), "auto", device="cpu"))
    assert res.mode == "slices"


def test_auto_mode_choice_is_measured(volume_model, scene_volume):
    """The isotropic default is the mode measured better here (a toss-up: slices, faster)."""
    grey, truth = scene_volume
    unseen = np.ones(len(grey), bool)
    unseen[list(PAINTED)] = False
    miou = {}
    for mode in ("slices", "triplanar"):
        res = drain(segment_volume(volume_model, grey, (VOXEL,) * 3, mode, device="cpu"))
        miou[mode] = per_class_iou(res.labels[unseen], truth[unseen], 3).mean()
    print(f"mean IoU on unpainted slices: {miou}")
    better = "triplanar" if miou["triplanar"] > miou["slices"] + 0.01 else "slices"
    assert vseg.AUTO_ISOTROPIC == better, miou
    auto = drain(segment_volume(volume_model, grey[:4], (VOXEL,) * 3, "auto", device="cpu"))
    assert auto.mode == better


# -- lazy volumes -------------------------------------------------------------------------
def _lazy_peak(model, tmp_path, n, size=192):
    """Peak traced memory (bytes) of segmenting an n-slice float32 volume read lazily."""
    rng = np.random.default_rng(n)
    base, _ = synthetic_scene(size, seed=5)
    grey = np.stack([np.roll(base, (i, 2 * i), (0, 1)) for i in range(n)]).astype(np.float32)
    grey += rng.normal(0, 2, grey.shape).astype(np.float32)
    src = write_volume(tmp_path / f"grey{n}.zarr", grey, (VOXEL,) * 3)
    del grey
    tracemalloc.start()
    try:
        report = drain(
            vseg.predict_volume_file(
                model, src, tmp_path / f"out{n}", device="cpu", batch_slices=4, lazy=True
            )
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    out = read_volume(tmp_path / f"out{n}" / f"grey{n}_labels.zarr")
    assert out.shape == (n, size, size) and out.voxel_size_nm == (VOXEL,) * 3
    assert report["lazy"] and report["mode"] == "slices"
    assert set(np.unique(np.asarray(out.data[::8]))) <= {1, 2, 3}
    return peak, n * size * size


def test_lazy_volume_is_segmented_with_flat_memory(volume_model, tmp_path):
    _lazy_peak(volume_model, tmp_path, 4)  # first use imports zarr / dask modules: not counted
    small, small_voxels = _lazy_peak(volume_model, tmp_path, 12)
    big, big_voxels = _lazy_peak(volume_model, tmp_path, 48)
    # 4x the slices: the peak grows only by the lazy reader's per-slice bookkeeping (dask
    # tasks, ~5 kB a slice); holding even the uint8 labels in memory would add a byte a voxel
    assert big - small < (big_voxels - small_voxels) / 3, (small, big)


# -- field of view ----------------------------------------------------------------------
def _in_a_cylinder(grey, radius=None):
    """The volume as a micro-CT reconstruction shows it: a cylinder of rock, 0 outside."""
    n, h, w = grey.shape
    yy, xx = np.mgrid[:h, :w]
    r = h / 2 - 3 if radius is None else radius
    outside = (yy - h / 2 + 0.5) ** 2 + (xx - w / 2 + 0.5) ** 2 > r**2
    ct = grey.copy()
    ct[:, outside] = 0
    return ct, outside


def test_outside_a_ct_field_of_view_is_unlabelled_in_volumes_and_slices(volume_model, scene_volume):
    ct, outside = _in_a_cylinder(scene_volume[0][:6])
    res = drain(segment_volume(volume_model, ct, (VOXEL,) * 3, "slices", device="cpu"))
    assert (res.labels[:, outside] == 0).all()  # not "pore", as the dark outside looked
    assert (res.labels[:, ~outside] > 0).all()
    assert res.counts.sum() == 6 * (~outside).sum()  # fractions of the view only
    assert any("outside the field of view" in n for n in res.notes)
    plain = drain(segment_volume(volume_model, scene_volume[0][:6], (VOXEL,) * 3, "slices"))
    same = (res.labels[:, ~outside] == plain.labels[:, ~outside]).mean()
    assert same > 0.97  # the view segmented as the uncut volume was (context differs at the rim)
    tri = drain(segment_volume(volume_model, ct, (VOXEL,) * 3, "triplanar", device="cpu"))
    assert (tri.labels[:, outside] == 0).all() and (tri.labels[:, ~outside] > 0).all()

    one = drain(segment(volume_model, SEMImage(ct[2], VOXEL), data_bar=0, device="cpu"))
    assert (one.labels[outside] == 0).all() and (one.labels[~outside] > 0).all()
    assert any("outside the field of view" in n for n in one.notes)


def test_no_field_of_view_is_found_in_an_ordinary_volume(volume_model, scene_volume):
    res = drain(segment_volume(volume_model, scene_volume[0][:4], (VOXEL,) * 3, "slices"))
    assert (res.labels > 0).all()
    assert not any("field of view" in n for n in res.notes)


def test_a_model_trained_on_a_ct_volume_leaves_the_outside_out(scene_volume):
    # most of each slice outside a narrow cylinder: with the outside's zeros in the training
    # statistics the model learned shifted grey values and called grain pore (66 % porosity
    # against 27 % on a user's CT volume)
    grey, truth = scene_volume
    ct, outside = _in_a_cylinder(grey, radius=20)
    assert outside.mean() > 0.6
    painted = np.zeros_like(truth)
    for z in PAINTED:
        painted[z] = np.where(outside, 0, truth[z])
    images, labels = training_slices(Volume(ct, (VOXEL,) * 3), painted)
    model = drain(Trainer(tiny_config(method="rf", trees=10), images, labels, SCHEME).run())
    res = drain(segment_volume(model, ct, (VOXEL,) * 3, "slices", device="cpu"))
    view = np.broadcast_to(~outside, ct.shape)
    assert per_class_iou(res.labels, truth, 3, view).mean() > 0.8
