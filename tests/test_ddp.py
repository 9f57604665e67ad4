"""Distributed data-parallel training: 2 CPU processes (gloo) launched by torchrun."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

HERE = Path(__file__).resolve().parent


@pytest.mark.parametrize("method", ["unet", "ensemble"])
def test_two_processes_keep_identical_weights(tmp_path, method):
    env = dict(
        os.environ,
        PYTHONPATH=str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        OMP_NUM_THREADS="1",
    )
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port=0",
        "--rdzv_backend=c10d",
        "--rdzv_endpoint=localhost:0",
        str(HERE / "ddp_worker.py"),
        str(tmp_path),
        method,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    a, b = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    assert a.keys() == b.keys() and a
    for k in a:
        assert torch.equal(a[k], b[k]), k
    start = load_file(tmp_path / "start0.safetensors")
    assert all(
        torch.equal(start[k], v) for k, v in load_file(tmp_path / "start1.safetensors").items()
    )
    assert any(not torch.equal(start[k], a[k]) for k in a)  # training moved the weights
