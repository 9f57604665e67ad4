"""Own-data benchmark: every method with `rockseg train` defaults on a user's data set.

    python benchmarks/own_data.py DIR [DIR ...] --minutes 15 [--json results.json]
        [--methods lda,rf,unet,bag,ensemble] [--threads N] [--seed 0]

Each DIR is laid out as ``train/{images,labels}``, ``test/{images,labels}`` and
``classes.json`` (colour or value scheme).  For each method the engine trains on
train/ with the defaults (only ``minutes``, the budget of the U-Net based methods,
and ``seed`` are set), segments every test image and scores it: IoU per class on
the labelled pixels outside the data bar, averaged over the test images (each
image scored on its own, as the battery set's reference), and training time.
Prints one table per data set; ``--json`` also writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from napari_rockseg.engine import io
from napari_rockseg.engine.analysis.metrics import evaluate
from napari_rockseg.engine.classes import load_scheme
from napari_rockseg.engine.events import drain
from napari_rockseg.engine.inference.segment import segment
from napari_rockseg.engine.options import METHODS
from napari_rockseg.engine.training.config import TrainConfig
from napari_rockseg.engine.training.data import load_training_pairs, pairs_in_dir
from napari_rockseg.engine.training.trainer import Trainer

ORDER = ("lda", "rf", "unet", "bag", "ensemble")


def score(model, images, labels, k: int) -> tuple[np.ndarray, float]:
    """Per-class IoU averaged over the test images, and seconds spent predicting."""
    t0 = time.perf_counter()
    per_image = []
    for img, truth in zip(images, labels):
        seg = drain(segment(model, img))
        mask = io.valid_mask(truth.shape, seg.data_bar)
        per_image.append(evaluate(seg.labels, truth, k, mask)["iou"])
    return np.mean(per_image, axis=0), time.perf_counter() - t0


def run_set(root: Path, methods, minutes: float, seed: int) -> dict:
    scheme_file = root / "classes.json"  # absent: the default (shale) scheme
    scheme = load_scheme(scheme_file if scheme_file.exists() else None)
    train = load_training_pairs(*pairs_in_dir(root / "train"), scheme)
    test = load_training_pairs(*pairs_in_dir(root / "test"), scheme)
    px = sorted({img.pixel_size_nm for img in train[0] + test[0]}, key=lambda v: (v is None, v))
    out = {
        "data": str(root),
        "classes": list(scheme.names),
        "pixel_size_nm": px,
        "train_images": len(train[0]),
        "test_images": len(test[0]),
        "minutes": minutes,
        "methods": {},
    }
    for method in methods:
        cfg = TrainConfig(method=method, minutes=minutes, seed=seed)
        t0 = time.perf_counter()
        trainer = Trainer(cfg, *train, scheme, data_source=str(root / "train"))
        model = drain(trainer.run())
        seconds = time.perf_counter() - t0
        iou, predict_s = score(model, *test, scheme.n_classes)
        out["methods"][method] = {
            "miou": float(iou.mean()),
            "iou": [float(v) for v in iou],
            "train_s": seconds,
            "predict_s": predict_s,
            "warnings": list(trainer.warnings),
        }
        print(f"  {method}: mIoU {iou.mean():.3f} ({seconds:.0f} s)", file=sys.stderr)
    return out


def table(result: dict) -> str:
    names = result["classes"]
    head = ["method", "mIoU", *names, "train s", "predict s"]
    rows = [
        [
            m,
            f"{r['miou']:.3f}",
            *(f"{v:.3f}" for v in r["iou"]),
            f"{r['train_s']:.0f}",
            f"{r['predict_s']:.1f}",
        ]
        for m, r in result["methods"].items()
    ]
    widths = [max(len(str(c)) for c in col) for col in zip(head, *rows)]

    def line(cells):
        return "  ".join(str(c).rjust(w) for c, w in zip(cells, widths))

    px = ", ".join("none" if v is None else f"{v:g} nm" for v in result["pixel_size_nm"])
    title = (
        f"{result['data']}: {result['train_images']} train / {result['test_images']} test "
        f"images, pixel size {px}, budget {result['minutes']:g} min"
    )
    notes = [f"  {m}: {w}" for m, r in result["methods"].items() for w in r["warnings"]]
    return "\n".join([title, line(head), *map(line, rows), *notes])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dirs", nargs="+", type=Path)
    p.add_argument("--minutes", type=float, default=15.0)
    p.add_argument("--methods", default=",".join(ORDER))
    p.add_argument("--json", type=Path)
    p.add_argument("--threads", type=int)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    methods = [m.strip() for m in a.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad:
        p.error(f"unknown method(s) {', '.join(bad)}; choose from {', '.join(METHODS)}")
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    results = []
    for root in a.dirs:
        results.append(run_set(root, methods, a.minutes, a.seed))
        print(table(results[-1]), flush=True)
    if a.json:
        a.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
