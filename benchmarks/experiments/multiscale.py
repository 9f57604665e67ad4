"""Multi-scale inference on the leave-one-image-out folds: the probabilities predicted
at the model's scale times s, averaged over a set of s, for the cached five-minute
focal-dice U-Nets of benchmarks/accuracy.py (pattern: first argument), scored on the
held-out image natively and zoomed 2.5x.

    python benchmarks/experiments/multiscale.py "runs/bench2/loio{i}_4_9b4654a07b.safetensors"
"""
import numpy as np
from _folds import fold_model, held_out_views, score

from napari_rockseg.engine.events import drain
from napari_rockseg.engine.predict import region_probabilities, scale_factor

sets = {"1": [1.0], "0.87-1.15": [1/1.15, 1, 1.15], "0.8-1.25": [0.8, 1, 1.25], "0.7-1.4": [1/1.4, 1/1.18, 1, 1.18, 1.4], "1,1.25": [1, 1.25], "1,1.5": [1, 1.5]}
res = {k: [] for k in sets}
for i in range(3):
    model = fold_model(i)
    for tag, img, lab, b, region in held_out_views(i):
        f, _ = scale_factor(model, img)
        cache = {}
        for k, ss in sets.items():
            acc = 0
            for s in ss:
                if s not in cache:
                    cache[s] = drain(region_probabilities(model, region, f * s))
                acc = acc + cache[s]
            r = score(acc, img, lab, b)
            res[k].append(r["miou"])
            print(f"fold {i} {tag:6s} {k:10s} {r['miou']:.3f} {np.round(r['iou'], 3)}", flush=True)
for k, v in res.items():
    print(f"{k:10s} native {np.mean(v[0::2]):.3f} zoom {np.mean(v[1::2]):.3f} all {np.mean(v):.3f}")
