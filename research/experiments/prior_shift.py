"""Per-image class-prior adaptation on the leave-one-image-out folds: the phase fractions
of a new image differ from the training images' (clay 0.01-2.3 % of the training images,
about 10 % of the test image), and a model's posteriors carry the training fractions.
The EM of Saerens, Latinne & Decaestecker (2002, Neural Computation 14:21) estimates the
new image's fractions from the model's own probabilities, without labels, and reweights
them: q <- mean_x normalise(p(c|x) * q(c) / p_train(c)), p(c|x) <- normalise(p(c|x) q / p_train).

The bag of fold models given as patterns (``{i}`` = held-out image) blended with each
fold's 20-tree forest at 0.2 (as shipped) predicts the three held-out views (native,
zoomed 2.5x, zoomed 2.5x + noise); p_train is the same bag's mean probability on the
fold's two training images (in-sample) or their label fractions.

    python research/experiments/prior_shift.py runs/gpu2/folds/{S0,S1,S2,S3,L4,L5}_{i}.safetensors

Probabilities are cached in runs/prior/ (delete it after changing the models).
"""
import sys
from pathlib import Path

import numpy as np
from _folds import fold_bag, held_out_views, images, labels, probabilities, score

from napari_rockseg.engine import io
from napari_rockseg.engine.io import resolve_data_bar

patterns = [a for a in sys.argv[1:] if not a.startswith("--")]
cache = Path("runs/prior")
cache.mkdir(parents=True, exist_ok=True)
K = 4


def cached(name, fn):
    f = cache / f"{name}.npy"
    if not f.exists():
        np.save(f, fn().astype(np.float16))
    return np.load(f).astype(np.float32)


def em(p, prior_train, iters=100, tol=1e-6):
    """Saerens EM on (K, H, W) probabilities; returns the reweighted probabilities and q."""
    flat = p.reshape(K, -1)
    q = prior_train.copy()
    for _ in range(iters):
        w = flat * (q / prior_train)[:, None]
        w /= w.sum(0, keepdims=True)
        new = w.mean(1)
        if np.abs(new - q).max() < tol:
            q = new
            break
        q = new
    w = p * (q / prior_train)[:, None, None]
    return w / w.sum(0, keepdims=True), q


def label_fractions(labs):
    n = sum(np.bincount(lab[lab > 0].ravel() - 1, minlength=K) for lab in labs)
    return n / n.sum()


res = {}
for i in range(3):
    bag = fold_bag(patterns, i, 0.2)
    rest = [j for j in range(3) if j != i]
    ins = []
    for j in rest:
        b = resolve_data_bar(images[j].data, None)
        region = images[j].data[: images[j].data.shape[0] - b]
        ins.append(cached(f"bag{len(patterns)}_{i}_train{j}", lambda b=bag, j=j, r=region: probabilities(b, images[j], r)))
    priors = {"in-sample": np.mean([p.reshape(K, -1).mean(1) for p in ins], 0),
              "labels": label_fractions([labels[j] for j in rest])}
    print(f"fold {i}: p_train in-sample {np.round(priors['in-sample'], 4)} labels {np.round(priors['labels'], 4)}")
    for tag, img, lab, b, region in held_out_views(i, noisy=True):
        p = cached(f"bag{len(patterns)}_{i}_{tag}", lambda b=bag, m=img, r=region: probabilities(b, m, r))
        truth = label_fractions([lab[: p.shape[1]] * io.valid_mask(lab.shape, b)[: p.shape[1]]])
        r0 = score(p, img, lab, b)
        res.setdefault(("none", tag), []).append(r0["miou"])
        print(f"fold {i} {tag:10s} true {np.round(truth, 4)} mean p {np.round(p.reshape(K, -1).mean(1), 4)} "
              f"none {r0['miou']:.3f} {np.round(r0['iou'], 3)}")
        for name, pt in priors.items():
            pe, q = em(p, pt)
            r = score(pe, img, lab, b)
            res.setdefault((f"EM, p_train {name}", tag), []).append(r["miou"])
            print(f"   EM {name:9s}: q {np.round(q, 4)} {r['miou']:.3f} {np.round(r['iou'], 3)}", flush=True)
print("| prior adaptation | native 1 / 2 / 3 | mean | zoomed | mean | zoomed + noise | mean |")
for name in dict.fromkeys(k[0] for k in res):
    cells = []
    for tag in ("native", "zoom", "zoom+noise"):
        v = res[(name, tag)]
        cells += [" / ".join(f"{x:.3f}" for x in v), f"{np.mean(v):.3f}"]
    print(f"| {name} | " + " | ".join(cells) + " |")
