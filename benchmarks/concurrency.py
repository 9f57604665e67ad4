"""Sharing the machine: whole `rockseg` processes run one at a time and several at once.

    python benchmarks/concurrency.py [--processes 1 2 4] [--steps 40] [--images 8]
                                     [--parts predict train dask] [--out DIR]

Each row starts N identical processes together and reports their mean wall time against
one process alone with the same setting (on a 2-core machine 2x is a fair share for two
processes; threads that spin while they wait for each other cost more).  Settings:

* ``rockseg``: the command as shipped: its processes share the cores (each counts the
  rockseg processes beside it and takes its share of threads, again every few seconds),
  and their OpenMP threads spin only briefly before they sleep (``GOMP_SPINCOUNT``);
* ``every core each, OpenMP default``: as before both: ``--threads`` = the machine's
  cores in every process, torch imported before the CLI starts so that libgomp keeps its
  default (threads spin for a long while between parallel regions).

``predict``: the bundled sample, whole process.  ``train``: ``rockseg train --method unet
--steps S`` on the bundled sample, whole process.  ``dask``: ``rockseg predict --cluster
local`` of IMAGES copies of the sample with 1 and 2 workers, seconds per image.
Run it on a quiet machine: the table is only as good as the machine is idle.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "src/napari_rockseg/data/shale_test.tif"
SAMPLE_LABELS = ROOT / "src/napari_rockseg/data/shale_test_labels.tif"
RESULTS = ROOT / "benchmarks/results"
# the CLI with torch (and so libgomp) loaded first: OpenMP's own default wait policy
DEFAULT_OMP = "import sys, torch; from napari_rockseg.cli import main; sys.exit(main())"
SHIPPED = "import sys; from napari_rockseg.cli import main; sys.exit(main())"
SETTINGS = {
    "rockseg": (SHIPPED, []),
    "every core each, OpenMP default": (DEFAULT_OMP, ["--threads", str(os.cpu_count() or 1)]),
}


def _run_together(commands: list[list[str]], env: dict) -> list[float]:
    """Start ``commands`` at once; the wall seconds of each (all must succeed)."""
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for c in commands
    ]
    secs = []
    for p in procs:
        _, err = p.communicate()
        secs.append(time.perf_counter() - t0)
        if p.returncode != 0:
            raise SystemExit(f"a benchmark process failed: {err.strip().splitlines()[-1:]}")
    return secs


def _env() -> dict:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    env.pop("OMP_NUM_THREADS", None)
    return env


def predict_args(work: Path, i: int) -> list[str]:
    return ["predict", str(SAMPLE), "--out", str(work / f"p{i}"), "--overwrite", "-q"]


def train_args(work: Path, i: int, steps: int) -> list[str]:
    out = work / f"m{i}.safetensors"
    return [
        "train",
        "--images",
        str(SAMPLE),
        "--labels",
        str(SAMPLE_LABELS),
        "--method",
        "unet",
        "--steps",
        str(steps),
        "--out",
        str(out),
        "--overwrite",
    ]


def table(part: str, make_args, processes, work: Path, say) -> list[dict]:
    rows = []
    for setting, (code, extra) in SETTINGS.items():
        alone = None
        for n in processes:
            commands = [[sys.executable, "-c", code, *make_args(work, i), *extra] for i in range(n)]
            secs = _run_together(commands, _env())
            mean = float(np.mean(secs))
            alone = alone or mean
            rows.append({"part": part, "setting": setting, "processes": n, "seconds": secs})
            say(f"| {part} | {setting} | {n} | {mean:.2f} | {mean / alone:.2f}x |")
    return rows


def dask_table(n_images: int, work: Path, say) -> list[dict]:
    folder = work / "images"
    folder.mkdir(exist_ok=True)
    for i in range(n_images):  # copies: rockseg segments a file named twice (links) once
        copy = folder / f"sample_{i}.tif"
        if not copy.exists():
            shutil.copyfile(SAMPLE, copy)
    rows, one = [], None
    for workers in (1, 2):
        out = work / f"dask{workers}"
        args = ["predict", str(folder), "--out", str(out), "--overwrite", "-q"]
        args += ["--cluster", "local", "--workers", str(workers)]
        (secs,) = _run_together([[sys.executable, "-c", SHIPPED, *args]], _env())
        per_image = secs / n_images
        one = one or per_image
        rows.append({"workers": workers, "seconds": secs, "per_image": per_image})
        say(
            f"| dask local cluster | {workers} workers | {per_image:.2f} s/image | "
            f"{per_image / one:.2f}x |"
        )
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--images", type=int, default=8)
    p.add_argument("--parts", nargs="+", default=["predict", "train", "dask"])
    p.add_argument("--out", type=Path, default=RESULTS / "concurrency_cpu")
    args = p.parse_args(argv)
    lines = []

    def say(line=""):
        print(line, flush=True)
        lines.append(line)

    load = os.getloadavg()[0]
    say(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {load:.1f} at the start"
    )
    say("\n| what | setting | processes at once | seconds each (mean) | vs one alone |")
    say("|---|---|---|---|---|")
    result = {"cpus": os.cpu_count(), "load_at_start": load, "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "predict" in args.parts:
            result["rows"] += table("predict", predict_args, args.processes, work, say)
        if "train" in args.parts:
            make = lambda w, i: train_args(w, i, args.steps)  # noqa: E731
            result["rows"] += table(f"train {args.steps} steps", make, args.processes, work, say)
        if "dask" in args.parts:
            result["dask"] = dask_table(args.images, work, say)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
