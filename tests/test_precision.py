"""Reduced-precision prediction: bfloat16 on CPUs that compute it natively, float16 on CUDA,
float32 when asked (ROCKSEG_PRECISION / rockseg predict --precision)."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from napari_rockseg.engine import io
from napari_rockseg.engine.analysis.metrics import evaluate
from napari_rockseg.engine.classes import SHALE
from napari_rockseg.engine.errors import InputError
from napari_rockseg.engine.events import drain
from napari_rockseg.engine.inference.device import autocast_dtype, cpu_has_bf16
from napari_rockseg.engine.inference.segment import segment
from napari_rockseg.engine.models.bundle import load_model
from napari_rockseg.models import default_model_path


def test_precision_setting_resolves_per_device(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.delenv("ROCKSEG_PRECISION", raising=False)
    assert autocast_dtype(cuda) == torch.float16
    assert autocast_dtype(cpu) == (torch.bfloat16 if cpu_has_bf16() else None)
    assert autocast_dtype(torch.device("mps")) is None
    monkeypatch.setenv("ROCKSEG_PRECISION", "fp32")
    assert autocast_dtype(cpu) is None and autocast_dtype(cuda) is None
    monkeypatch.setenv("ROCKSEG_PRECISION", "bf16")
    assert autocast_dtype(cpu) == torch.bfloat16 and autocast_dtype(cuda) == torch.bfloat16
    monkeypatch.setenv("ROCKSEG_PRECISION", "fp8")
    with pytest.raises(InputError, match="unknown precision 'fp8'"):
        autocast_dtype(cpu)


def test_bfloat16_prediction_is_really_used_and_keeps_the_labels(monkeypatch, test_pair):
    """The shipped default on the test image: bfloat16 changes the probabilities (so it is
    in effect, not overridden by an inner float32 context) but almost no label."""
    model = load_model(default_model_path())
    image = io.read_image(test_pair[0])
    truth = io.read_labels(test_pair[1], SHALE, image.data.shape)
    runs = {}
    for mode in ("fp32", "bf16"):
        monkeypatch.setenv("ROCKSEG_PRECISION", mode)
        seg = drain(segment(model, image, device="cpu", probabilities=True))
        mask = io.valid_mask(truth.shape, seg.data_bar)
        runs[mode] = (seg, evaluate(seg.labels, truth, SHALE.n_classes, mask))
    p32, p16 = runs["fp32"][0].probabilities, runs["bf16"][0].probabilities
    assert not np.array_equal(p32, p16)
    assert np.abs(p32 - p16).max() < 0.5
    assert np.mean(runs["fp32"][0].labels == runs["bf16"][0].labels) > 0.999
    assert abs(runs["fp32"][1]["miou"] - runs["bf16"][1]["miou"]) < 0.002


def test_cli_precision_option(tmp_path, test_pair):
    predict = [sys.executable, "-m", "napari_rockseg.cli", "predict", str(test_pair[0])]
    code = subprocess.run(
        [*predict, "--precision", "fp64", "--out", str(tmp_path)], capture_output=True, text=True
    )
    assert code.returncode == 2 and "invalid choice: 'fp64'" in code.stderr
    labels = {}
    for mode in ("fp32", "bf16"):
        proc = subprocess.run(
            [*predict, "--precision", mode, "--out", str(tmp_path / mode), "--quiet"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr
        labels[mode] = io.read_labels(tmp_path / mode / f"{test_pair[0].stem}_labels.tif", SHALE)
    assert 0 < np.mean(labels["fp32"] != labels["bf16"]) < 0.001
