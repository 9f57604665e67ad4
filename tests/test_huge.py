"""Huge images: block-by-block prediction from lazy files, lazy napari labels, cluster batches."""

import json

import numpy as np
import pytest
import tifffile
import torch
from helpers import synthetic_scene, tiny_config

from napari_rockseg.engine import condition, io
from napari_rockseg.engine.classes import ClassScheme
from napari_rockseg.engine.events import drain
from napari_rockseg.engine.inference import batch
from napari_rockseg.engine.inference.inputs import expand_inputs
from napari_rockseg.engine.inference.segment import prepare, segment
from napari_rockseg.engine.inference.stream import lazy_labels, segment_to_file
from napari_rockseg.engine.io import SEMImage
from napari_rockseg.engine.models import bundle
from napari_rockseg.engine.training.trainer import Trainer

SCHEME = ClassScheme(
    ("background", "blob", "pore"), ((200, 200, 200), (255, 0, 0), (0, 255, 0)), rest=0
)


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(2)
    image, labels = synthetic_scene(96, seed=5)
    cfg = tiny_config(steps=120, pixel_size_nm=10.0)
    return drain(Trainer(cfg, [SEMImage(image, 10.0)], [labels], SCHEME).run())


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A 700 x 1300 scene written as a tiled, compressed TIFF with a pixel size."""
    rows = [
        np.concatenate([synthetic_scene(100, seed=10 * r + c)[0] for c in range(13)], axis=1)
        for r in range(7)
    ]
    img = np.concatenate(rows, axis=0)
    path = tmp_path_factory.mktemp("big") / "big.tif"
    tifffile.imwrite(
        path,
        img,
        tile=(128, 128),
        compression="zlib",
        imagej=True,
        resolution=(100.0, 100.0),
        metadata={"unit": "um"},
    )
    return path, img


@pytest.mark.parametrize("suffix", [".tif", ".zarr"])
def test_streaming_matches_in_memory(model, big, tmp_path, suffix):
    path, img = big
    lazy = io.open_lazy(path)
    assert not isinstance(lazy.data, np.ndarray) and lazy.pixel_size_nm == pytest.approx(10.0)
    out = tmp_path / f"labels{suffix}"
    summary = drain(segment_to_file(model, lazy, out, data_bar=0, block=256, tile=64, overlap=16))
    if suffix == ".tif":
        streamed = tifffile.imread(out)
    else:
        import zarr

        streamed = zarr.open(str(out), mode="r")[:]
    memory = drain(segment(model, SEMImage(img, 10.0), data_bar=0, tile=64, overlap=16)).labels
    assert streamed.shape == img.shape
    assert len(set(np.unique(memory))) == 3  # a real segmentation, not one class
    # blocks see half a tile of context, so only a tiny fraction of boundary pixels may differ
    assert (streamed != memory).mean() < 0.002
    assert sum(summary["counts"]) == img.size


class ReadSpy:
    """A lazy image that records how many pixels each read returns."""

    def __init__(self, arr):
        self.arr, self.shape, self.dtype, self.ndim = arr, arr.shape, arr.dtype, arr.ndim
        self.reads = []

    def __getitem__(self, key):
        out = self.arr[key]
        self.reads.append(out.size)
        return out


def test_streaming_never_reads_the_whole_image(model, big, tmp_path, monkeypatch):
    """Peak memory is flat because every read is one block with its halo (or a
    sparse sample for the intensity statistics), whatever the image size."""
    monkeypatch.setattr(
        condition, "SAMPLE_PIXELS", 50_000
    )  # this image stands for one of 20x the sample
    path, img = big
    spy = ReadSpy(io.open_lazy(path).data)
    drain(
        segment_to_file(
            model,
            SEMImage(spy, 10.0),
            tmp_path / "l.tif",
            data_bar=40,
            block=256,
            tile=64,
            overlap=16,
        )
    )
    halo = 64  # _block_halo(16, 1.0)
    assert len(spy.reads) > 4
    assert max(spy.reads) <= (256 + 2 * halo) * (4 * 256 + 2 * halo) < img.size / 2


def test_streaming_rescales_and_keeps_data_bar(model, big, tmp_path):
    path, img = big
    lazy = io.open_lazy(path)
    lazy.pixel_size_nm = 5.0  # twice the model's magnification: resampled block by block
    out = tmp_path / "l.tif"
    summary = drain(segment_to_file(model, lazy, out, data_bar=40, block=256, tile=64, overlap=16))
    labels = tifffile.imread(out)
    assert summary["scale"] == pytest.approx(0.5)
    assert (labels[-40:] == 0).all() and (labels[:-40] > 0).all()


def test_lazy_labels_for_napari(model, big):
    path, img = big
    lazy = io.open_lazy(path)
    lab = lazy_labels(model, lazy.data, lazy.pixel_size_nm, chunk=256, tile=64, overlap=16)
    memory = drain(segment(model, SEMImage(img, 10.0), data_bar=0, tile=64, overlap=16)).labels
    window = lab[256:512, 512:768].compute()  # only what is viewed is computed
    assert (window != memory[256:512, 512:768]).mean() < 0.005


@pytest.mark.slow
def test_batch_on_local_dask_cluster(model, big, tmp_path, test_pair):
    path, img = big
    model_path = bundle.save_model(model, tmp_path / "m.safetensors")
    small = tmp_path / "in"
    small.mkdir()
    for i in range(3):
        tifffile.imwrite(small / f"s{i}.tif", img[: 200 + 50 * i, :300])
    paths = expand_inputs([small])
    reports = drain(
        batch.predict_many(
            paths, tmp_path / "out", model_path, n_workers=2, tile=64, overlap=16, data_bar=0
        )
    )
    assert [r["image"] for r in reports] == [str(p) for p in paths]
    for p in paths:
        labels = tifffile.imread(tmp_path / "out" / f"{p.stem}_labels.tif")
        assert labels.shape == tifffile.imread(p).shape
        assert json.loads((tmp_path / "out" / f"{p.stem}.json").read_text())["model_kind"] == "unet"


def test_streaming_a_lower_magnification_restores_texture_block_by_block(
    model, big, tmp_path, monkeypatch
):
    """Pixels 2x the model's: every block is enlarged and gets the texture back (its own
    seeded noise), so the file's labels match the in-memory prediction except where
    the model is unsure."""
    from napari_rockseg.engine.condition import restore_texture
    from napari_rockseg.engine.inference import segment as segment_module

    calls = []
    real = restore_texture
    monkeypatch.setattr(
        segment_module,
        "restore_texture",
        lambda x, *a, **k: calls.append(x.shape) or real(x, *a, **k),
    )
    path, img = big
    lazy = io.open_lazy(path)
    lazy.pixel_size_nm = 20.0
    out = tmp_path / "low.tif"
    summary = drain(segment_to_file(model, lazy, out, data_bar=0, block=256, tile=64, overlap=16))
    assert (
        summary["scale"] == pytest.approx(2.0)
        and "train a model at their pixel size" in summary["notes"][0]
    )
    blocks = len(calls)
    assert (
        blocks >= 4 and max(h * w for h, w in calls) < 1400 * 2600 / 2
    )  # once per block, never whole
    memory = drain(segment(model, SEMImage(img, 20.0), data_bar=0, tile=64, overlap=16))
    assert len(calls) == blocks + 1 and calls[-1] == (
        1400,
        2600,
    )  # in memory: the whole image, enlarged 2x
    assert (tifffile.imread(out) == memory.labels).mean() > 0.95


def test_streamed_labels_keep_the_pixel_size(model, big, tmp_path):
    """The tiled labels TIFF of a streamed prediction reads back with the image's pixel size."""
    path, _ = big
    out = tmp_path / "l.tif"
    drain(
        segment_to_file(model, io.open_lazy(path), out, data_bar=0, block=256, tile=64, overlap=16)
    )
    assert io.read_image(out).pixel_size_nm == pytest.approx(10.0, rel=1e-4)


def test_lazy_labels_exclude_a_detected_data_bar(model, big, tmp_path):
    """napari's lazy labels of a huge image leave its data bar unlabelled, as every other
    prediction path does, without being told its height."""
    _, img = big
    with_bar = img.copy()
    with_bar[-48:] = 0  # a flat black strip ...
    with_bar[-40:-20, 100:400:3] = 255  # ... with text on it
    path = tmp_path / "bar.tif"
    tifffile.imwrite(path, with_bar, tile=(128, 128), compression="zlib")
    lazy = io.open_lazy(path)
    lab = lazy_labels(model, lazy.data, 10.0, chunk=256, tile=64, overlap=16)
    bar = prepare(model, lazy.data, 10.0).data_bar
    assert 48 <= bar < 64
    bottom = lab[-64:].compute()
    assert (bottom[64 - bar :] == 0).all() and (bottom[: 64 - bar] > 0).all()
