"""Test-time augmentation on the leave-one-image-out folds: each fold model (pattern:
first argument, ``{i}`` = held-out image index 0..2) scored on its held-out image
natively and zoomed 2.5x, without and with the 8 flips/rotations averaged.

    python benchmarks/experiments/heldout_tta.py "runs/cpufold/U0_{i}.safetensors"
"""
import time

import numpy as np
from _folds import fold_model, held_out_views, probabilities, score

res = {}
for i in range(3):
    model = fold_model(i)
    for tag, img, lab, b, region in held_out_views(i):
        for tta in (False, True):
            t0 = time.perf_counter()
            r = score(probabilities(model, img, region, tta=tta), img, lab, b)
            res.setdefault((tag, tta), []).append(r["miou"])
            print(f"fold {i} {tag:6s} tta={tta!s:5s} {r['miou']:.3f} {np.round(r['iou'], 3)} "
                  f"{time.perf_counter() - t0:.1f} s", flush=True)
for (tag, tta), v in res.items():
    print(f"{tag:6s} tta={tta!s:5s} " + " / ".join(f"{x:.3f}" for x in v) + f"  mean {np.mean(v):.3f}")
