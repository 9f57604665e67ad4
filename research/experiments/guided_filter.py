"""Edge-preserving smoothing of the probabilities (a guided filter with the grey image
as guide, He et al. 2013) on the leave-one-image-out folds: the bag of fold models given
as patterns blended with each fold's 20-tree forest at 0.2 (as shipped), then each
class's probability filtered with radius r model pixels and regulariser eps (grey
values scaled to 0..1), natively and zoomed 2.5x.

    python research/experiments/guided_filter.py runs/gpu2/folds/{S0,S1,S2,S3,L4,L5}_{i}.safetensors

The bag's probabilities are cached in runs/bias/ (shared with bag_forest.py).
"""
import sys

import numpy as np
from _folds import bag_probabilities, held_out_views, probabilities, score
from scipy.ndimage import uniform_filter

from napari_rockseg.engine import bundle
from napari_rockseg.engine.predict import scale_factor

patterns = sys.argv[1:]


def guided(guide, probs, r, eps):
    size = 2 * r + 1
    mi = uniform_filter(guide, size)
    vi = uniform_filter(guide * guide, size) - mi * mi
    out = []
    for p in probs:
        mp = uniform_filter(p, size)
        a = (uniform_filter(guide * p, size) - mi * mp) / (vi + eps)
        out.append(uniform_filter(a, size) * guide + uniform_filter(mp - a * mi, size))
    return np.stack(out)


res = {}
for i in range(3):
    rf = bundle.load_model(f"runs/rf/rf20_{i}.safetensors")
    for tag, img, lab, b, region in held_out_views(i):
        p = 0.8 * bag_probabilities(patterns, i, tag, img, region) + 0.2 * probabilities(rf, img, region)
        f, _ = scale_factor(rf, img)
        guide = region.astype(np.float32) / 255
        for r, eps in [(0, 0)] + [(r, e) for r in (1, 2, 4) for e in (1e-4, 1e-3, 1e-2)]:
            q = guided(guide, p, max(1, round(r / f)), eps) if r else p
            s = score(q, img, lab, b)
            res.setdefault((tag, r, eps), []).append(s["miou"])
            print(f"fold {i} {tag:6s} r {r} eps {eps:g}: {s['miou']:.3f} {np.round(s['iou'], 3)}", flush=True)
print("| view | r | eps | held-out 1 / 2 / 3 | mean |\n|---|---|---|---|---|")
for (tag, r, eps), v in res.items():
    print(f"| {tag} | {r} | {eps:g} | {' / '.join(f'{x:.3f}' for x in v)} | {np.mean(v):.3f} |")
