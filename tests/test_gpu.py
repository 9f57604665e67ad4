"""On a CUDA machine: mixed-precision training and prediction give the CPU's results, and the
shipped default segments the sample test image on the GPU as on the CPU."""

import numpy as np
import pytest
import tifffile
from helpers import synthetic_scene

from napari_rockseg.engine.analysis.metrics import per_class_iou
from napari_rockseg.engine.classes import ClassScheme
from napari_rockseg.engine.events import drain
from napari_rockseg.engine.inference.segment import segment
from napari_rockseg.engine.io import SEMImage
from napari_rockseg.engine.training.config import TrainConfig
from napari_rockseg.engine.training.trainer import Trainer

pytestmark = pytest.mark.gpu
SCHEME = ClassScheme(
    ("background", "blob", "pore"), ((200, 200, 200), (255, 0, 0), (0, 255, 0)), rest=0
)


def test_cuda_training_with_mixed_precision_learns_and_predicts_like_cpu():
    image, labels = synthetic_scene(64, seed=1)
    cfg = TrainConfig(
        method="ensemble",
        tile=32,
        batch_size=8,
        width=8,
        depth=2,
        steps=240,
        lr=1e-2,
        val_fraction=0.0,
        patience=None,
        device="cuda",
        scale_jitter=0.0,
        noise=0.0,
        data_bar=0,
    )
    model = drain(Trainer(cfg, [SEMImage(image)], [labels], SCHEME).run())
    gpu = drain(
        segment(model, SEMImage(image), data_bar=0, tile=64, overlap=0, device="cuda")
    ).labels
    cpu = drain(
        segment(model, SEMImage(image), data_bar=0, tile=64, overlap=0, device="cpu")
    ).labels
    assert per_class_iou(gpu, labels, 3).min() > 0.9
    assert (gpu == cpu).mean() > 0.995
    assert np.array_equal(gpu.shape, labels.shape)


def test_shipped_default_segments_the_test_image_on_cuda_as_on_the_cpu(test_pair, tmp_path, capsys):
    """The command line on a GPU: `rockseg predict --device cuda` (float16) gives the CPU's
    labels on the sample test image, and the same score."""
    import json

    from napari_rockseg.cli import main

    scores, labels = {}, {}
    for dev in ("cuda", "cpu"):
        out = tmp_path / dev
        assert (
            main(["predict", str(test_pair[0]), "--out", str(out), "--device", dev, "--quiet"]) == 0
        )
        capsys.readouterr()
        pred = out / f"{test_pair[0].stem}_labels.tif"
        assert main(["evaluate", str(pred), str(test_pair[1]), "--json"]) == 0
        scores[dev] = json.loads(capsys.readouterr().out)
        labels[dev] = tifffile.imread(pred)
    assert (labels["cuda"] == labels["cpu"]).mean() > 0.99
    assert scores["cuda"]["miou"] == pytest.approx(scores["cpu"]["miou"], abs=0.005)
    assert scores["cuda"]["miou"] > 0.61 and min(scores["cuda"]["iou"]) > 0.40, scores


def test_forest_on_cuda_gives_the_cpu_probabilities(test_pair):
    """The shipped bag's forest computes its features and walks its trees on the GPU when
    the bag predicts there: the CPU's probabilities up to float32 rounding of the features
    (on the CPU, torch's features flip one tree's vote on 314 of 704,512 test pixels) and of
    the final division by the number of trees (a GPU multiplies by the reciprocal: one unit in
    the last place, 6e-8, on 45 % of the pixels of an H200; one tree's vote moved on 0.044 %)."""
    import torch

    from napari_rockseg.engine.io import read_image
    from napari_rockseg.engine.models.bundle import load_model
    from napari_rockseg.models import DEFAULT, model_path

    model = load_model(model_path(DEFAULT))
    x = model.info.normalize(read_image(test_pair[0]).data[:688], None)
    on_gpu = model.forest.probabilities(x, device=torch.device("cuda"))
    on_cpu = model.forest.probabilities(x, device=torch.device("cpu"))
    differ = np.abs(on_gpu - on_cpu).max(0) > 1e-6
    assert (
        differ.mean() < 0.002 and np.abs(on_gpu - on_cpu).max() <= 1 / 20 + 1e-6
    )  # one of 20 trees
