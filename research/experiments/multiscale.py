"""Multi-scale inference on the leave-one-image-out folds: the probabilities predicted
at the model's scale times s, averaged over a set of s, for the fold models given as
patterns (``{i}`` = held-out image; several patterns: their bag, averaged), optionally
blended with each fold's 20-tree forest at 0.2 (``--forest``, runs/rf/rf20_{i}.safetensors
from bag_forest.py; the forest sees the same scale), scored on the held-out image
natively, zoomed 2.5x and zoomed 2.5x with noise (``_folds.held_out_views``).

    python research/experiments/multiscale.py "runs/bench2/loio{i}_4_9b4654a07b.safetensors"
    python research/experiments/multiscale.py runs/gpu2/folds/{S0,S1,S2,S3,L4,L5}_{i}.safetensors --forest --quick
"""
import sys

import numpy as np
from _folds import DEFAULT_MODELS, fold_bag, held_out_views, score

from napari_rockseg.engine.events import drain
from napari_rockseg.engine.predict import region_probabilities, scale_factor

patterns = [a for a in sys.argv[1:] if not a.startswith("--")] or [DEFAULT_MODELS]
W = 0.2 if "--forest" in sys.argv else 0.0
sets = {"1": [1.0], "0.87-1.15": [1/1.15, 1, 1.15], "0.8-1.25": [0.8, 1, 1.25], "0.7-1.4": [1/1.4, 1/1.18, 1, 1.18, 1.4],
        "1,1.25": [1, 1.25], "1,1.5": [1, 1.5], "0.8,1": [0.8, 1]}
if "--quick" in sys.argv:  # the two candidates that led on held-out image 1 (about 10 minutes with a bag)
    sets = {k: sets[k] for k in ("1", "0.87-1.15", "1,1.25")}
res = {}
for i in range(3):
    bag = fold_bag(patterns, i, W)
    for tag, img, lab, b, region in held_out_views(i, noisy=True):
        f, _ = scale_factor(bag, img)
        cache = {}
        for k, ss in sets.items():
            acc = 0
            for s in ss:
                if s not in cache:
                    cache[s] = drain(region_probabilities(bag, region, f * s))
                acc = acc + cache[s]
            r = score(acc, img, lab, b)
            res.setdefault((tag, k), []).append(r["miou"])
            print(f"fold {i} {tag:10s} {k:10s} {r['miou']:.3f} {np.round(r['iou'], 3)}", flush=True)
print("| view | scales | held-out 1 / 2 / 3 | mean |\n|---|---|---|---|")
for (tag, k), v in res.items():
    print(f"| {tag} | {k} | {' / '.join(f'{x:.3f}' for x in v)} | {np.mean(v):.3f} |")
