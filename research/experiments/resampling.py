"""How the input is resampled to the model's pixel size, on the leave-one-image-out
folds: the bag of fold models given as patterns (``{i}`` = held-out image) blended with
each fold's 20-tree forest (runs/rf/rf20_{i}.safetensors, from bag_forest.py) at 0.2,
with the input zoomed by

- ``aa``: linear interpolation after a Gaussian anti-aliasing filter when shrinking
  (what ``rockseg predict`` did until now),
- ``linear``: linear interpolation without the filter,
- ``nearest``: nearest-neighbour (each model pixel takes one input pixel, as a
  microscope at a lower magnification samples one spot per pixel),

scored on three views of each held-out image: native, zoomed 2.5x (linear
interpolation: smoother than any micrograph), and zoomed 2.5x with white noise added
until its pixel-scale texture (robust std of the image minus its sigma = 1 px blur)
equals the native image's -- as in the test image, whose texture is 7.5 grey levels at
4.47 nm against 7.9-8.4 in the training images at 11-14 nm: the per-pixel noise of an
SEM does not depend on the magnification.

    python research/experiments/resampling.py runs/gpu2/folds/{S0,S1,S2,S3,L4,L5}_{i}.safetensors
    python research/experiments/resampling.py "runs/cpufold/P8_{i}.safetensors" --no-forest --aa-only  # one U-Net
"""
import sys

import numpy as np
from _folds import fold_bag, held_out_views, score, texture
from skimage.transform import resize

from napari_rockseg.engine.events import drain
from napari_rockseg.engine.predict import predict_proba, scale_factor

patterns = [a for a in sys.argv[1:] if not a.startswith("--")]
W = 0.0 if "--no-forest" in sys.argv else 0.2  # --no-forest: the bag (or one model) alone
METHODS = {"aa": {"order": 1, "anti_aliasing": True}, "linear": {"order": 1, "anti_aliasing": False},
           "nearest": {"order": 0, "anti_aliasing": False}}
if "--aa-only" in sys.argv:  # only the shipped resampling: scores a model on the three views
    METHODS = {"aa": METHODS["aa"]}


def back(p, shape):
    """Probabilities at the model's scale back on the input grid (as prediction does)."""
    if p.shape[1:] == shape:
        return p
    return np.stack([resize(c, shape, order=1, preserve_range=True, anti_aliasing=False) for c in p])


def probs(bag, img, region, method):
    """(bag + forest, bag alone) probabilities of ``region``, the input zoomed by ``method``,
    and the input's texture at the model's scale in grey levels."""
    f, _ = scale_factor(bag, img)
    x = bag.info.normalize(region)
    if abs(f - 1) > 0.02:
        shape = tuple(max(bag.multiple, round(s * f)) for s in x.shape)
        x = resize(x, shape, preserve_range=True, **METHODS[method]).astype(np.float32)
    p = drain(predict_proba(bag, x))
    blended = bag.blend(p, x)
    return back(blended, region.shape), back(p, region.shape), texture(x) * 255 / 4  # 255 grey levels -> 4


res = {}
for i in range(3):
    bag = fold_bag(patterns, i, W)
    for tag, img, lab, b, region in held_out_views(i, noisy=True):
        for method in METHODS:
            blended, alone, tex = probs(bag, img, region, method)
            r = score(blended, img, lab, b)
            rb = score(alone, img, lab, b) if W else r
            res.setdefault((tag, method), []).append((r["miou"], rb["miou"]))
            print(f"fold {i} {tag:10s} {method:8s} texture in {texture(region):.2f} at model scale {tex:.2f} "
                  f"bag+forest {r['miou']:.3f} {np.round(r['iou'], 3)} bag {rb['miou']:.3f}", flush=True)
print("| view | resampling | bag + forest 1 / 2 / 3 | mean | bag alone mean |")
print("|---|---|---|---|---|")
for (tag, method), v in res.items():
    v = np.array(v)
    print(f"| {tag} | {method} | {' / '.join(f'{x:.3f}' for x in v[:, 0])} | {v[:, 0].mean():.3f} | {v[:, 1].mean():.3f} |")
