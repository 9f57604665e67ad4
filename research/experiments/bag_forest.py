"""A bag of U-Nets blended with a random forest on multiscale features, on the
leave-one-image-out folds: probabilities (1 - w) * bag + w * forest, natively and zoomed
2.5x, for forests of several sizes and feature scales (largest Gaussian sigma_max 16, the
default, or 8 / 32 with 20 trees; trained here on each fold's two images, cached in
runs/rf/) and the bag of the fold models given as patterns (``{i}`` = held-out image).

    python research/experiments/bag_forest.py runs/gpu2/folds/{S0,S1,S2,S3,L4,L5}_{i}.safetensors

The bag's probabilities are cached in runs/bias/ (shared with decision_rules.py).
"""
import sys
from pathlib import Path

import numpy as np
from _folds import (
    bag_probabilities,
    fold_forest,
    held_out_views,
    images,
    labels,
    probabilities,
    score,
)

from napari_rockseg.engine import bundle, train
from napari_rockseg.engine.baselines import PixelForest
from napari_rockseg.engine.classes import SHALE

patterns = sys.argv[1:]
TREES = (20, 30, 60, "20/sigma8", "20/sigma32")
WEIGHTS = (0.0, 0.1, 0.2, 0.3)
cache = Path("runs/rf")
cache.mkdir(parents=True, exist_ok=True)


def forest(i: int, trees):
    path = cache / f"rf{str(trees).replace('/', '_')}_{i}.safetensors"
    if isinstance(trees, int):  # the engine's forest, as the shipped bag fits it
        return fold_forest(i, trees), path.stat().st_size / 1e6
    if not path.exists():  # another feature scale: the engine's forest with sigma_max changed
        rest = [j for j in range(3) if j != i]
        n, sigma = trees.split("/sigma")
        trainer = train.Trainer(train.TrainConfig(method="rf", pixel_size_nm=11.16), [images[j] for j in rest],
                                [labels[j] for j in rest], SHALE)
        info = trainer.info()
        items = train.prepare_items(trainer.images, trainer.labels, info)
        model = PixelForest(info, sigma_max=float(sigma)).fit(
            [it.image for it in items], [it.labels for it in items], n_trees=int(n))
        bundle.save_model(model, path)
    return bundle.load_model(path), path.stat().st_size / 1e6


res = {}
for i in range(3):
    for tag, img, lab, b, region in held_out_views(i):
        bag = bag_probabilities(patterns, i, tag, img, region)
        for trees in TREES:
            rf, mb = forest(i, trees)
            pr = probabilities(rf, img, region)
            for w in WEIGHTS:
                r = score((1 - w) * bag + w * pr, img, lab, b)
                res.setdefault((trees, tag, w), []).append(r["miou"])
                print(f"fold {i} {tag:6s} forest {trees} trees ({mb:.1f} MB) w {w}: {r['miou']:.3f} "
                      f"{np.round(r['iou'], 3)}", flush=True)
print("| forest | w | held-out 1 / 2 / 3 native | mean | zoomed | mean |")
for trees in TREES:
    for w in WEIGHTS:
        nat, zoo = res[(trees, "native", w)], res[(trees, "zoom", w)]
        print(f"| {trees} trees | {w} | {' / '.join(f'{v:.3f}' for v in nat)} | {np.mean(nat):.3f} | "
              f"{' / '.join(f'{v:.3f}' for v in zoo)} | {np.mean(zoo):.3f} |")
