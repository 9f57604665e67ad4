"""Pixel size that follows the data (#27) and bounded resampling (#32 item 8), and what
`rockseg train` does with its --out and when it is interrupted (#32 items 2, 6, 15)."""

import tracemalloc
from dataclasses import replace

import numpy as np
import pytest
import tifffile
import torch
from helpers import synthetic_scene

from napari_rockseg.cli import main
from napari_rockseg.engine.classes import ClassScheme
from napari_rockseg.engine.errors import InputError
from napari_rockseg.engine.events import drain
from napari_rockseg.engine.inference.segment import segment
from napari_rockseg.engine.io import SEMImage
from napari_rockseg.engine.models.bundle import load_model
from napari_rockseg.engine.models.ensemble import NetModel
from napari_rockseg.engine.models.info import ModelInfo
from napari_rockseg.engine.models.nets import UNet
from napari_rockseg.engine.training import sampler
from napari_rockseg.engine.training.config import TrainConfig
from napari_rockseg.engine.training.data import plan_pixel_size
from napari_rockseg.engine.training.trainer import Trainer

SCHEME = ClassScheme(
    ("background", "blob", "pore"), ((200, 200, 200), (255, 0, 0), (0, 255, 0)), rest=0
)


def tiny(**kw):
    base = dict(
        method="unet",
        tile=32,
        batch_size=2,
        width=4,
        depth=2,
        steps=2,
        val_fraction=0.0,
        device="cpu",
        data_bar=0,
        seed=0,
    )
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def scene():
    torch.set_num_threads(2)
    return synthetic_scene(64, seed=1)


def test_training_keeps_the_images_own_pixel_size_and_records_it(scene):
    image, labels = scene
    trainer = Trainer(tiny(), [SEMImage(image, 2230.0)], [labels], SCHEME)
    model = drain(trainer.run())
    assert model.info.pixel_size_nm == pytest.approx(2230.0)
    assert not trainer.notes


def test_images_at_different_pixel_sizes_go_to_their_median_with_a_note(scene):
    image, labels = scene
    images = [SEMImage(image, 10.0), SEMImage(image, 12.0), SEMImage(image, 15.0)]
    trainer = Trainer(tiny(), images, [labels] * 3, SCHEME)
    assert trainer.config.pixel_size_nm == pytest.approx(12.0)
    assert any("median" in n and "12 nm" in n for n in trainer.notes)
    assert drain(trainer.run()).info.pixel_size_nm == pytest.approx(12.0)


def test_a_requested_pixel_size_is_used_and_unknown_ones_train_as_they_are(scene):
    image, labels = scene
    size, notes = plan_pixel_size([SEMImage(image, 10.0), SEMImage(image)], 20.0)
    assert size == 20.0 and any("record no pixel size" in n for n in notes)
    assert plan_pixel_size([SEMImage(image)], None) == (
        None,
        [pytest.approx(plan_pixel_size([SEMImage(image)], None)[1][0])],
    )
    assert plan_pixel_size([SEMImage(image, 10.0), SEMImage(image, 30.0)], 0) == (None, [])


def test_training_notes_a_resampling_of_more_than_4x_and_refuses_one_that_cannot_fit(scene):
    image, labels = scene
    _, notes = plan_pixel_size([SEMImage(image, 50.0)], 10.0)
    assert any("resampled 5x" in n for n in notes)
    with pytest.raises(InputError, match="--pixel-size"):
        plan_pixel_size([SEMImage(np.zeros((512, 512), np.uint8), 2230.0)], 0.1)


def test_prediction_refuses_a_200x_zoom_before_allocating_anything():
    info = ModelInfo(SCHEME, 11.0, "median")
    model = NetModel(UNet(1, 3, 4, 2), info)
    image = SEMImage(np.zeros((256, 256), np.uint8), 2230.0)
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match="--no-rescale") as err:
            drain(segment(model, image, data_bar=0, device="cpu"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "203x coarser" in str(err.value) and len(str(err.value).splitlines()) == 1
    assert peak < 50 * 2**20
    # within the range it still resamples, and --no-rescale segments as is
    near = replace(image, pixel_size_nm=22.0)
    assert drain(segment(model, near, data_bar=0, device="cpu")).scale == 2
    assert drain(segment(model, image, data_bar=0, device="cpu", rescale=False)).scale == 1


# -- rockseg train: --out, interruption, checkpoint ---------------------------------------------


@pytest.fixture
def data_dir(tmp_path, scene):
    image, labels = scene
    (tmp_path / "d" / "images").mkdir(parents=True)
    (tmp_path / "d" / "labels").mkdir()
    tifffile.imwrite(tmp_path / "d" / "images" / "a.tif", image)
    tifffile.imwrite(tmp_path / "d" / "labels" / "a.tif", labels)  # classes 1-3 of the shale scheme
    return tmp_path


def train_args(root, *extra):
    return [
        "train",
        "--data-dir",
        str(root / "d"),
        "--tile",
        "32",
        "--width",
        "4",
        "--depth",
        "2",
        "--batch-size",
        "2",
        "--data-bar",
        "0",
        "--device",
        "cpu",
        *extra,
    ]


def interrupt_at(monkeypatch, call):
    """Ctrl-C during the ``call``-th training batch (as the terminal would raise it)."""
    original = sampler.TileSampler.batch
    count = [0]

    def batch(self, n):
        count[0] += 1
        if count[0] == call:
            raise KeyboardInterrupt
        return original(self, n)

    monkeypatch.setattr(sampler.TileSampler, "batch", batch)


def test_ctrl_c_before_any_validation_leaves_an_existing_out_untouched(
    data_dir, monkeypatch, capsys
):
    out = data_dir / "m.safetensors"
    out.write_bytes(b"an earlier model")
    interrupt_at(monkeypatch, 3)
    code = main(train_args(data_dir, "--out", str(out), "--overwrite", "--steps", "100"))
    assert code == 130
    assert out.read_bytes() == b"an earlier model"
    assert "nothing written" in capsys.readouterr().err


def test_ctrl_c_later_saves_the_best_validated_model_with_its_own_step(data_dir, monkeypatch):
    out = data_dir / "m.safetensors"
    interrupt_at(monkeypatch, 56)  # validations at steps 50, 100, ...: the best is step 50
    code = main(train_args(data_dir, "--out", str(out), "--steps", "200", "--method", "unet"))
    assert code == 130
    assert load_model(out).info.provenance["steps"] == {"unet": 50}


def test_out_must_be_a_new_safetensors_file_that_is_no_input(data_dir, capsys):
    image = data_dir / "d" / "images" / "a.tif"
    before = image.read_bytes()
    assert main(train_args(data_dir, "--out", str(image), "--steps", "1")) == 2
    assert main(train_args(data_dir, "--out", str(data_dir / "m.pt"), "--steps", "1")) == 2
    existing = data_dir / "old.safetensors"
    existing.write_bytes(b"keep")
    assert main(train_args(data_dir, "--out", str(existing), "--steps", "1")) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and ".safetensors" in err and "training inputs" in err
    assert image.read_bytes() == before and existing.read_bytes() == b"keep"


def test_the_checkpoint_is_removed_after_a_save_unless_kept(data_dir):
    out = data_dir / "m.safetensors"
    assert main(train_args(data_dir, "--out", str(out), "--steps", "2")) == 0
    assert out.exists() and not (data_dir / "m.safetensors.ckpt.pt").exists()
    assert (
        main(
            train_args(
                data_dir, "--out", str(out), "--steps", "2", "--overwrite", "--keep-checkpoint"
            )
        )
        == 0
    )
    assert (data_dir / "m.safetensors.ckpt.pt").exists()
