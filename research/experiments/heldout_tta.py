"""Test-time augmentation on the leave-one-image-out folds: the fold models given as
patterns (``{i}`` = held-out image index 0..2; several = their bag, ``--forest`` blends
each fold's 20-tree forest runs/rf/rf20_{i}.safetensors at 0.2, as shipped) scored on
the held-out image natively, zoomed 2.5x and zoomed 2.5x + noise, without and with the
8 flips/rotations averaged.

    python research/experiments/heldout_tta.py "runs/cpufold/U0_{i}.safetensors"
    python research/experiments/heldout_tta.py runs/gpu2/folds/{S0,S1,S2,S3,L4,L5}_{i}.safetensors --forest
"""
import sys
import time

import numpy as np
from _folds import fold_bag, held_out_views, probabilities, score

from napari_rockseg.engine import bundle

patterns = [a for a in sys.argv[1:] if not a.startswith("--")]
forest = "--forest" in sys.argv
res = {}
for i in range(3):
    if len(patterns) > 1 or forest:
        model = fold_bag(patterns, i, 0.2 if forest else 0.0)
    else:
        model = bundle.load_model(patterns[0].format(i=i))
    for tag, img, lab, b, region in held_out_views(i, noisy=True):
        for tta in (False, True):
            t0 = time.perf_counter()
            r = score(probabilities(model, img, region, tta=tta), img, lab, b)
            res.setdefault((tag, tta), []).append(r["miou"])
            print(f"fold {i} {tag:10s} tta={tta!s:5s} {r['miou']:.3f} {np.round(r['iou'], 3)} "
                  f"{time.perf_counter() - t0:.1f} s", flush=True)
for (tag, tta), v in res.items():
    print(f"{tag:10s} tta={tta!s:5s} " + " / ".join(f"{x:.3f}" for x in v) + f"  mean {np.mean(v):.3f}")
