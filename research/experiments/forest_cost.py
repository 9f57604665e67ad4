"""What a leaner forest costs in accuracy on held-out data (issue #30), with the public API.

    python research/experiments/forest_cost.py [--sets battery shale] [--bag]

Standalone forests (method ``rf``) are fitted on each set's train/ images with the
trainer's preparation (``prepare_items``) and scored on its test/ images (per-class IoU on
the labelled pixels, averaged over images), for trees x depth x largest Gaussian sigma.
``--bag``: the shipped default's forest refitted the same ways on the shale train images
and blended with its networks, scored on the shale test image.  The tree walk costs
trees x depth (every pixel walks every tree to its full depth); the features, four per
scale, log2(sigma) + 1 scales: both are timed on the bundled sample in this process.
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
from napari_rockseg.engine.models.bundle import load_model
from napari_rockseg.engine.models.forest import PixelForest
from napari_rockseg.engine.models.info import ModelInfo
from napari_rockseg.engine.training.data import load_training_pairs, pairs_in_dir, prepare_items

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
SETS = {"battery": DATA / "battery-nanoct", "shale": DATA / "shale-sem"}
ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "src/napari_rockseg/data/shale_test.tif"
VARIANTS = [  # (trees, depth, largest sigma)
    (60, 14, 16.0),  # `rf` default
    (20, 14, 16.0),  # the bag's forest
    (10, 14, 16.0),
    (5, 14, 16.0),
    (20, 10, 16.0),
    (20, 8, 16.0),
    (20, 14, 8.0),
    (20, 14, 4.0),
    (10, 10, 8.0),
]


def score(model, images, labels, k: int) -> float:
    per = []
    for img, truth in zip(images, labels):
        seg = drain(segment(model, img))
        per.append(evaluate(seg.labels, truth, k, io.valid_mask(truth.shape, seg.data_bar))["iou"])
    return float(np.mean(per, axis=0).mean())


def cost(forest, grey) -> float:
    x = np.asarray(grey, np.float32)
    forest.probabilities(x)
    t0 = time.perf_counter()
    forest.probabilities(x)
    return time.perf_counter() - t0


def sweep(name: str, info, items, test, n_classes: int, sample, scored) -> list[dict]:
    """Each variant's forest fitted on ``items``, scored on ``test`` as ``scored(forest)``
    (the forest alone, or a bag holding it) and timed on the sample."""
    rows = []
    for trees, depth, sigma in VARIANTS:
        forest = PixelForest(info, sigma_max=sigma).fit(
            [it.image for it in items], [it.labels for it in items], n_trees=trees, max_depth=depth
        )
        miou = score(scored(forest), *test, n_classes)
        rows.append(
            {
                "trees": trees,
                "depth": depth,
                "sigma": sigma,
                "miou": miou,
                "s": cost(forest, sample),
            }
        )
        print(f"  {name} {trees} {depth} {sigma:g}: {miou:.3f}", file=sys.stderr)
    return rows


def standalone(root: Path, sample) -> list[dict]:
    scheme_file = root / "classes.json"
    scheme = load_scheme(scheme_file if scheme_file.exists() else None)
    train = load_training_pairs(*pairs_in_dir(root / "train"), scheme)
    test = load_training_pairs(*pairs_in_dir(root / "test"), scheme)
    px = [i.pixel_size_nm for i in train[0] if i.pixel_size_nm]
    info = ModelInfo(scheme=scheme, pixel_size_nm=float(np.median(px)) if px else None)
    items = prepare_items(train[0], train[1], info)
    return sweep(root.name, info, items, test, scheme.n_classes, sample, lambda forest: forest)


def bag(sample) -> list[dict]:
    model = load_model(ROOT / "src/napari_rockseg/models/default.safetensors")
    scheme = model.info.scheme
    train = load_training_pairs(*pairs_in_dir(SETS["shale"] / "train"), scheme)
    test = load_training_pairs(*pairs_in_dir(SETS["shale"] / "test"), scheme)
    items = prepare_items(train[0], train[1], model.info)

    def with_forest(forest):
        model.forest = forest
        return model

    return sweep("bag", model.info, items, test, scheme.n_classes, sample, with_forest)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", nargs="+", default=["battery", "shale"], choices=list(SETS))
    p.add_argument("--bag", action="store_true")
    p.add_argument("--json", type=Path, default=ROOT / "research/results/forest_cost.json")
    args = p.parse_args()
    sample = io.read_image(SAMPLE).data[:688]
    out = {name: standalone(SETS[name], sample) for name in args.sets}
    if args.bag:
        out["bag (shale)"] = bag(sample)
    args.json.write_text(json.dumps(out, indent=1))
    print("| set | trees | depth | largest sigma | mean IoU | forest s on the sample |")
    print("|---|---|---|---|---|---|")
    for name, rows in out.items():
        for r in rows:
            print(
                f"| {name} | {r['trees']} | {r['depth']} | {r['sigma']:g} | {r['miou']:.3f} | "
                f"{r['s']:.2f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
