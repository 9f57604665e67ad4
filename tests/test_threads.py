"""Threads per process from the cores it may use, and tile/batch from a GPU's free memory."""

import torch

from napari_rockseg.engine import threads
from napari_rockseg.engine.events import drain
from napari_rockseg.engine.inference.window import (
    BATCH,
    MAX_BATCH,
    TILE,
    choose_tiling,
    predict_proba,
)
from napari_rockseg.engine.models.ensemble import Bag
from napari_rockseg.engine.models.info import ModelInfo
from napari_rockseg.engine.models.nets import UNet


def test_threads_from_cores_quota_and_workers():
    assert threads.choose_threads(8) == 8
    assert threads.choose_threads(8, quota=2.0) == 2
    assert threads.choose_threads(8, quota=0.5) == 1  # a fraction of a core: one thread
    assert threads.choose_threads(8, quota=None, workers=2) == 4
    assert threads.choose_threads(2, workers=2) == 1
    assert threads.choose_threads(2, workers=4) == 1  # never 0
    assert threads.choose_threads(16, quota=6.5, workers=2, threads_per_worker=2) == 1
    assert threads.choose_threads(16, workers=2, threads_per_worker=2) == 4
    assert threads.choose_threads(16, quota=4, workers=2, requested=3) == 3


def test_cgroup_quota_read_from_v2_ancestors_and_v1(tmp_path):
    assert threads.parse_cpu_max("max 100000\n") is None
    assert threads.parse_cpu_max("150000 100000\n") == 1.5
    root = tmp_path / "cg"
    leaf = root / "a" / "b"
    leaf.mkdir(parents=True)
    (root / "a" / "cpu.max").write_text("200000 100000\n")
    (leaf / "cpu.max").write_text("max 100000\n")
    proc = tmp_path / "cgroup"
    proc.write_text("0::/a/b\n")
    assert threads.cgroup_quota(root, proc) == 2.0  # the parent's limit binds
    v1 = root / "cpu" / "job"
    v1.mkdir(parents=True)
    (v1 / "cpu.cfs_quota_us").write_text("50000\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    proc.write_text("4:cpu,cpuacct:/job\n")
    assert threads.cgroup_quota(root, proc) == 0.5
    proc.write_text("0::/\n")
    assert threads.cgroup_quota(tmp_path / "none", proc) is None


def test_configure_threads_applies_the_request():
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # changed behind its back, as another library may do
    try:
        assert threads.configure_threads(1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
        threads._applied = None


def test_tiling_from_free_memory():
    mib = 2**20
    assert choose_tiling((768, 1024), 2000, None) == (TILE, BATCH)  # CPU: unchanged
    assert choose_tiling((768, 1024), 2000, 8000 * mib) == (1024, 1)  # whole image fits
    tile, batch = choose_tiling((8192, 8192), 2000, 8000 * mib)
    assert TILE <= tile < 8192 and 1 <= batch <= MAX_BATCH
    assert tile * tile * batch * 2000 <= 0.5 * 8000 * mib
    assert choose_tiling((8192, 8192), 2000, 100 * mib) == (TILE, 1)  # never below the default tile
    assert choose_tiling((8192, 8192), 10, 80000 * mib)[1] <= MAX_BATCH


def test_predict_proba_channels_last_is_a_parameter_with_the_same_numbers():
    torch.manual_seed(0)
    bag = Bag([UNet(1, 4, 4, 2), UNet(1, 4, 4, 2)], ModelInfo()).eval()
    x = torch.randn(40, 48).numpy()
    a = drain(predict_proba(bag, x, tile=32, overlap=8, device="cpu", channels_last=True))
    b = drain(predict_proba(bag, x, tile=32, overlap=8, device="cpu", channels_last=False))
    assert a.shape == (4, 40, 48)
    assert abs(a - b).max() < 2e-2


def _spin(code: str, **env) -> str:
    import os
    import subprocess
    import sys

    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    run = subprocess.run(
        [sys.executable, "-c", code], env={**base, **env}, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


def test_the_cli_makes_openmp_spin_briefly_before_torch_loads():
    # what libgomp reads when torch is imported: the CLI's entry sets it first
    probe = (
        "import os, sys; from napari_rockseg.cli import main; "
        "sys.argv = ['rockseg', 'predict', '--help']\n"
        "try: main()\nexcept SystemExit: pass\n"
        "print(os.environ.get('GOMP_SPINCOUNT'), 'torch' in sys.modules)"
    )
    assert _spin(probe).endswith("10000 False")
    assert _spin(probe, GOMP_SPINCOUNT="5").endswith("5 False")  # the user's wins
    assert _spin(probe, OMP_WAIT_POLICY="ACTIVE").endswith("None False")  # and the policy too
    late = "import torch, os; from napari_rockseg.engine.threads import spin_briefly; "
    late += "print(spin_briefly(), os.environ.get('GOMP_SPINCOUNT'))"
    assert _spin(late) == "False None"  # too late once torch is loaded: left alone
    widgets = "import os, napari_rockseg._widgets; print(os.environ.get('GOMP_SPINCOUNT'))"
    assert _spin(widgets) == "10000"


def test_rockseg_processes_on_one_machine_share_its_cores(tmp_path, monkeypatch):
    import os
    import subprocess
    import sys

    monkeypatch.setattr(threads, "registry", lambda: tmp_path)
    monkeypatch.setattr(threads, "_registered", False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        threads.register_process()
        assert (tmp_path / str(os.getpid())).exists()
        assert threads.active_processes() == 1
        (tmp_path / str(other.pid)).write_text(threads._start_time(other.pid) or "")
        (tmp_path / "999999999").write_text("1")  # a process that is gone
        (tmp_path / str(os.getppid())).write_text("-1")  # a live id, reused since: not counted
        assert threads.active_processes() == 2
        assert not (tmp_path / "999999999").exists()
        cores = threads.choose_threads(threads.affinity_cores(), threads.cgroup_quota())
        assert threads.configure_threads() == max(1, cores // 2)
        assert threads.configure_threads(3) == 3  # --threads wins
        other.kill()
        other.wait()
        assert threads.active_processes() == 1
        threads._checked = 0.0  # as if REFRESH_SECONDS had passed
        assert threads.refresh_threads() == 3  # the request is kept
        threads._requested, threads._checked = None, 0.0
        assert threads.refresh_threads() == cores  # alone again: every core
    finally:
        other.kill()
        torch.set_num_threads(before)
        threads._applied = None
