"""Auto-context on the leave-one-image-out folds: a random forest on the multiscale pixel
features plus the bag's probabilities (and their Gaussian blurs at sigma 4 and 16), trained
on the other two training images with the bags' out-of-fold probabilities there (each from
the fold bag that never saw that image), scored on the held-out image natively and zoomed
2.5x with its own fold bag's probabilities as context.  Caveat: the bags that give the
training images their context saw the held-out image's labels (one level of nesting only).

    python research/experiments/autocontext.py runs/gpu2/folds/{S0,S1,S2,S3,L4,L5}_{i}.safetensors
"""
import sys
from pathlib import Path

import numpy as np
from _folds import fold_bag, held_out_views, score
from scipy import ndimage as ndi
from sklearn.ensemble import RandomForestClassifier

from napari_rockseg.engine.baselines import PixelForest, forest_probabilities, pixel_features
from napari_rockseg.engine.events import drain
from napari_rockseg.engine.predict import _resize, predict_proba, scale_factor

patterns = sys.argv[1:]
cache = Path("runs/autocontext")
cache.mkdir(parents=True, exist_ok=True)
bags = [fold_bag(patterns, i) for i in range(3)]


def model_scale(bag, img, region):
    """The normalised region at the model's pixel size, and the bag's probabilities there."""
    f, _ = scale_factor(bag, img)
    x = bag.info.normalize(region)
    if abs(f - 1) > 0.02:
        x = _resize(x, tuple(round(s * f) for s in region.shape), order=1)
    return x.astype(np.float32)


def context(p):
    return np.concatenate([p, *[ndi.gaussian_filter(p, (0, s, s)) for s in (4, 16)]]).transpose(1, 2, 0)


def features(x, p):
    return np.concatenate([pixel_features(x), context(p)], axis=-1)


views = {}
for i in range(3):
    for tag, img, lab, b, region in held_out_views(i):
        f = cache / f"{i}_{tag}.npz"
        if not f.exists():
            x = model_scale(bags[i], img, region)
            p = drain(predict_proba(bags[i], x, device="cpu"))
            np.savez(f, x=x, p=p)
        d = np.load(f)
        views[(i, tag)] = (d["x"], d["p"], img, lab, b, region)

res = {}
for i in range(3):
    rest = [j for j in range(3) if j != i]
    feats, ys = [], []
    for j in rest:  # training images at the model's scale with their out-of-fold context
        x, p, img, lab, b, region = views[(j, "native")]
        y = _resize(lab[: region.shape[0]], x.shape, 0)
        ft = features(x, p)
        feats.append(ft[y > 0])
        ys.append(y[y > 0])
    xall, yall = np.concatenate(feats), np.concatenate(ys)
    rng = np.random.default_rng(0)
    pick = np.concatenate([rng.choice(np.nonzero(yall == c)[0], min(20000, (yall == c).sum()), replace=False)
                           for c in range(1, 5) if (yall == c).any()])
    rf = RandomForestClassifier(n_estimators=20, max_depth=14, min_samples_leaf=5, class_weight="balanced",
                                n_jobs=-1, random_state=0).fit(xall[pick], yall[pick])
    arrays = PixelForest._flatten(rf, 4)
    for tag in ("native", "zoom"):
        x, p, img, lab, b, region = views[(i, tag)]
        ft = features(x, p)
        q = forest_probabilities(arrays, ft.reshape(-1, ft.shape[-1])).T.reshape(p.shape)
        for name, probs in (("bag", p), ("autocontext", q), ("mean", 0.5 * (p + q)), ("0.8/0.2", 0.8 * p + 0.2 * q)):
            back = np.stack([_resize(c, region.shape, 1) for c in probs]) if probs.shape[1:] != region.shape else probs
            r = score(back, img, lab, b)
            res.setdefault((name, tag), []).append(r["miou"])
            print(f"fold {i} {tag:6s} {name:12s} {r['miou']:.3f} {np.round(r['iou'], 3)}", flush=True)
for (name, tag), v in res.items():
    print(f"{name:12s} {tag:6s} " + " / ".join(f"{x:.3f}" for x in v) + f"  mean {np.mean(v):.3f}")
