"""Prediction-time batch-norm adaptation (AdaBN, Li et al. 2016) for a bag of fold
models + each fold's 20-tree forest at 0.2, on the three held-out views of every
leave-one-image-out fold (``_folds.held_out_views``).

Each member's batch-norm statistics are re-estimated on the image being predicted
(normalised and resampled to the model's pixel size, as prediction does), then mixed
with the training statistics: new = a * image + (1 - a) * training.

    python research/experiments/adabn_bag.py "runs/budget10/UNET_{i}.safetensors" \
        "runs/screen/S1_{i}.safetensors" "runs/screen/S2c_{i}.safetensors" --alphas 0,0.25,0.5
"""
import argparse
import copy
import json
import sys

import numpy as np
import torch
from _folds import VIEW_TABLE_HEAD, VIEWS, class_means, fold_bag, held_out_views, probabilities, score, view_row

from napari_rockseg.engine.predict import _resize, scale_factor


def adapted(bag, img, region, alpha: float):
    """A copy of ``bag`` whose batch-norm statistics are mixed with ``region``'s."""
    if alpha == 0:
        return bag
    f, _ = scale_factor(bag, img)
    x = bag.info.normalize(region)
    if abs(f - 1.0) > 0.02:
        x = _resize(x, tuple(max(bag.multiple, int(round(s * f))) for s in region.shape), order=1)
    m = bag.multiple
    x = x[: x.shape[0] // m * m, : x.shape[1] // m * m]
    out = copy.deepcopy(bag)
    bns = [mod for mod in out.modules() if isinstance(mod, torch.nn.BatchNorm2d)]
    old = [(b.running_mean.clone(), b.running_var.clone()) for b in bns]
    for b in bns:
        b.reset_running_stats()
        b.momentum = None  # cumulative average: exactly this image's statistics
    out.train()
    with torch.no_grad():
        out.probabilities(torch.from_numpy(np.ascontiguousarray(x, np.float32))[None, None])
    for b, (mu, var) in zip(bns, old):
        b.running_mean.mul_(alpha).add_((1 - alpha) * mu)
        b.running_var.mul_(alpha).add_((1 - alpha) * var)
        b.momentum = 0.1
    out.eval()
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("patterns", nargs="+")
    p.add_argument("--alphas", default="0,0.25,0.5")
    p.add_argument("--forest-weight", type=float, default=0.2)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    alphas = [float(s) for s in a.alphas.split(",")]
    res = {al: {t: [] for t in VIEWS} for al in alphas}
    for i in range(3):
        bag = fold_bag(a.patterns, i, a.forest_weight)
        bag.eval()
        for tag, img, lab, b, region in held_out_views(i, noisy=True):
            for al in alphas:
                r = score(probabilities(adapted(bag, img, region, al), img, region), img, lab, b)
                res[al][tag].append({"miou": float(r["miou"]), "iou": [float(v) for v in r["iou"]]})
                print(f"fold {i} {tag:10s} a={al:<5} {r['miou']:.3f} {np.round(r['iou'], 3)}", flush=True)
    print(VIEW_TABLE_HEAD.format("bag + forest, AdaBN"))
    for al in alphas:
        print(view_row(f"a = {al}", {t: [r["miou"] for r in res[al][t]] for t in VIEWS}))
    for al in alphas:
        print(f"a = {al}, per class (mineral / organic / pores / clay):",
              "; ".join(f"{t}: {class_means([r['iou'] for r in res[al][t]])}" for t in VIEWS))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"patterns": a.patterns, "forest_weight": a.forest_weight,
                       "scores": {str(k): v for k, v in res.items()}}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
