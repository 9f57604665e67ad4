"""Can a model find an image's scale itself when the pixel size is unknown? On the
leave-one-image-out folds, the bag of fold models given as patterns (``{i}`` = held-out
image) predicts each held-out view (native, zoomed 2.5x, zoomed 2.5x + noise) zoomed by
a range of factors, and label-free criteria of the probabilities are recorded per factor:
mean entropy, mean top probability. The true factor is the view's pixel size over the
model's; the mean IoU at each factor shows what a wrong guess costs.

    python benchmarks/experiments/scale_search.py runs/gpu2/folds/{S0,S1,S2,S3,L4,L5}_{i}.safetensors

Slow on two cores (the larger factors of the zoomed views are 3,600 x 2,500 pixels for six
U-Nets); it was stopped after two views, whose entropy minima (1.0 for a true 1.25, 0.35
for a true 0.50) showed the criterion cannot stand in for a known pixel size.
"""
import sys

import numpy as np
from _folds import fold_bag, held_out_views, score

from napari_rockseg.engine.events import drain
from napari_rockseg.engine.predict import region_probabilities

patterns = [a for a in sys.argv[1:] if not a.startswith("--")]
FACTORS = np.round(2.0 ** (np.arange(-8, 3) / 4), 3)  # 0.25 .. 1.68


def criteria(p):
    q = np.clip(p, 1e-6, 1)
    ent = float(-(q * np.log(q)).sum(0).mean())
    return ent, float(p.max(0).mean())


for i in range(3):
    bag = fold_bag(patterns, i)
    for tag, img, lab, b, region in held_out_views(i, noisy=True):
        true_f = img.pixel_size_nm / bag.info.pixel_size_nm
        res = []
        for f in FACTORS:
            p = drain(region_probabilities(bag, region, float(f)))
            ent, top = criteria(p)
            r = score(p, img, lab, b)
            res.append((f, ent, top, r["miou"]))
        best = min(res, key=lambda t: t[1])
        print(f"fold {i} {tag:10s} true factor {true_f:.3f}; entropy picks {best[0]:.3f} "
              f"(mIoU {best[3]:.3f}); at factor 1: {res[list(FACTORS).index(1.0)][3]:.3f}")
        for f, ent, top, m in res:
            print(f"   f {f:5.3f} entropy {ent:.4f} top {top:.4f} mIoU {m:.3f}", flush=True)
