"""How a bag combines its members, on the leave-one-image-out folds (natively and zoomed
2.5x): the arithmetic mean of their probabilities (the engine's) against the geometric
mean (normalised mean of log-probabilities) and the majority vote, each alone and blended
with the 20-tree forest of bag_forest.py at weight 0.2 (run that first: runs/rf/).

    python research/experiments/bag_fusion.py runs/gpu2/folds/{S0,S1,S2,S3,L4,L5}_{i}.safetensors
"""
import sys

import numpy as np
from _folds import held_out_views, probabilities, score

from napari_rockseg.engine import bundle

patterns = sys.argv[1:]
res = {}
for i in range(3):
    models = [bundle.load_model(p.format(i=i)) for p in patterns]
    forest = bundle.load_model(f"runs/rf/rf20_{i}.safetensors")
    for tag, img, lab, b, region in held_out_views(i):
        ps = np.stack([probabilities(m, img, region) for m in models])
        fr = probabilities(forest, img, region)
        geo = np.exp(np.log(np.clip(ps, 1e-6, 1)).mean(0))
        votes = np.stack([(ps.argmax(1) == c).mean(0) for c in range(ps.shape[1])])
        for name, p in (("arithmetic", ps.mean(0)), ("geometric", geo / geo.sum(0)), ("vote", votes + 1e-3 * ps.mean(0))):
            for w in (0.0, 0.2):
                r = score((1 - w) * p + w * fr, img, lab, b)
                res.setdefault((name, w, tag), []).append(r["miou"])
                print(f"fold {i} {tag:6s} {name:10s} forest {w}: {r['miou']:.3f}", flush=True)
for (name, w, tag), v in res.items():
    print(f"{name:10s} forest {w} {tag:6s} " + " / ".join(f"{x:.3f}" for x in v) + f"  mean {np.mean(v):.3f}")
