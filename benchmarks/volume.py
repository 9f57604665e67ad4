"""Volume benchmark: slices-mode segmentation with the shipped default model and the 3-D
rock analysis, throughput (voxels/s) and peak memory for cubes of N^3 voxels.

    python benchmarks/volume.py [--sizes 128 256 512] [--threads N] [--no-network]
                                [--parts segment analyze]
                                [--json benchmarks/results/volume_cpu.json]

Each measurement runs in its own subprocess, so its peak RSS (``resource.getrusage``,
which includes torch's allocations) is its own; "extra" subtracts the RSS after the
imports and the synthetic volume were made.  The grey volume is real texture: slice i
is a crop of the shale SEM test image (or the packaged sample) moved by i pixels, at
the model's pixel size (not resampled, so voxels/s compare like with like).  The
analysis runs on the labels that segmentation produced.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
SHALE = HERE.parents[2] / "shared" / "data" / "shale-sem" / "test" / "images" / "1.tif"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def grey_volume(n: int) -> np.ndarray:
    """n^3 grey voxels of real shale texture (8-bit)."""
    from napari_rockseg.engine.io import read_image

    if SHALE.exists():
        image = read_image(SHALE).data
    else:
        from napari_rockseg._sample_data import sample_path

        image = read_image(sample_path("shale_test.tif")).data
    image = image[: image.shape[0] - 64]  # leave out the data bar rows
    if min(image.shape) < 2 * n:
        image = np.tile(image, (2 * n // image.shape[0] + 1, 2 * n // image.shape[1] + 1))
    return np.stack([image[i : i + n, i : i + n] for i in range(n)])


def _labels_for(n: int, model, voxel) -> np.ndarray:
    from napari_rockseg.engine.events import drain
    from napari_rockseg.engine.inference.volume import segment_volume

    return drain(segment_volume(model, grey_volume(n), voxel, "slices", device="cpu")).labels


def case(kind: str, n: int, network: bool) -> dict:
    """One measurement, in this process."""
    import torch

    from napari_rockseg.engine.events import drain
    from napari_rockseg.engine.inference.volume import segment_volume
    from napari_rockseg.engine.models.bundle import load_model
    from napari_rockseg.models import default_model_path

    model = load_model(default_model_path())
    px = model.info.pixel_size_nm or 10.0
    voxel = (px, px, px)
    if kind == "segment":
        data = grey_volume(n)
        base = _rss_mb()
        t0 = time.perf_counter()
        seg = drain(segment_volume(model, data, voxel, "slices", device="cpu"))
        seconds = time.perf_counter() - t0
        extra = {"fractions": (seg.counts / seg.counts.sum()).round(4).tolist()}
    else:
        from napari_rockseg.engine.analysis.volume import volume_report

        labels = _labels_for(n, model, voxel)
        del model
        base = _rss_mb()  # segmentation's own peak is in here: report the analysis above it
        t0 = time.perf_counter()
        rep = volume_report(
            labels, load_model(default_model_path()).info.scheme, voxel, network=network
        )
        seconds = time.perf_counter() - t0
        extra = {
            k: rep.get(k)
            for k in (
                "porosity",
                "connected_porosity",
                "isolated_porosity",
                "pore_diameter_d50_nm",
                "tortuosity",
            )
        }
    peak = _rss_mb()
    return {
        "case": kind,
        "n": n,
        "voxels": n**3,
        "seconds": round(seconds, 2),
        "voxels_per_s": round(n**3 / seconds),
        "peak_rss_mb": round(peak),
        "extra_rss_mb": round(peak - base) if peak > base else None,
        "threads": torch.get_num_threads(),
        **extra,
    }


def _run_case(kind: str, n: int, threads: int, network: bool) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cmd = [sys.executable, str(HERE), "--case", kind, str(n), "--threads", str(threads)]
    if not network:
        cmd.append("--no-network")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        return {"case": kind, "n": n, "error": out.stderr.strip().splitlines()[-1:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    p.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1))
    p.add_argument(
        "--no-network",
        action="store_true",
        help="leave the pore network and permeability out of the analysis",
    )
    p.add_argument(
        "--parts",
        nargs="+",
        choices=["segment", "analyze"],
        default=["segment", "analyze"],
        help="what to measure (analyze segments the volume first, untimed)",
    )
    p.add_argument("--json", type=Path, default=HERE.parent / "results" / "volume_cpu.json")
    p.add_argument("--case", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.case:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(case(args.case[0], int(args.case[1]), not args.no_network)))
        return 0
    rows = [
        _run_case(kind, n, args.threads, not args.no_network)
        for n in args.sizes
        for kind in args.parts
    ]
    print(
        f"{'case':<9} {'size':>6} {'seconds':>9} {'voxels/s':>11} {'peak RSS MB':>12} "
        f"{'extra MB':>9}"
    )
    for r in rows:
        if "error" in r:
            print(f"{r['case']:<9} {r['n']:>5}^3  failed: {r['error']}")
            continue
        print(
            f"{r['case']:<9} {r['n']:>5}^3 {r['seconds']:>9.2f} {r['voxels_per_s']:>11,} "
            f"{r['peak_rss_mb']:>12} {r['extra_rss_mb'] or '-':>9}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "machine": platform.processor() or platform.machine(),
                "cpus": os.cpu_count(),
                "threads": args.threads,
                "rows": rows,
            },
            indent=2,
        )
    )
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
