"""Test-time adaptation on the leave-one-image-out folds: AdaBN (batch-norm statistics
re-estimated on the held-out image, fully or half-mixed with the training ones) and
EM label-shift prior correction (Saerens et al. 2002), for the cached five-minute
focal-dice U-Nets of benchmarks/accuracy.py (pattern: first argument).

    python research/experiments/test_time_adaptation.py "runs/bench2/loio{i}_4_9b4654a07b.safetensors"
"""
import copy
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from accuracy import zoomed

from napari_rockseg.engine import bundle, io, train
from napari_rockseg.engine.analysis import evaluate
from napari_rockseg.engine.classes import SHALE
from napari_rockseg.engine.events import drain
from napari_rockseg.engine.io import resolve_data_bar
from napari_rockseg.engine.predict import _resize, region_probabilities, scale_factor

torch.set_num_threads(2)
D = Path(__file__).resolve().parents[3] / "shared/data/shale-sem"
images, labels = train.load_training_pairs(*train.pairs_in_dir(D / "train"), SHALE)
models = sys.argv[1:] or ["runs/bench2/loio{i}_4_9b4654a07b.safetensors"]

def adabn(model, x, alpha=1.0):
    """re-estimate BN stats on normalised model-scale input x (H, W)."""
    m = copy.deepcopy(model)
    bns = [mod for mod in m.modules() if isinstance(mod, torch.nn.BatchNorm2d)]
    old = [(b.running_mean.clone(), b.running_var.clone()) for b in bns]
    for b in bns:
        b.reset_running_stats(); b.momentum = None
    m.train()
    h, w = x.shape; mult = m.multiple
    h2, w2 = (h // mult) * mult, (w // mult) * mult
    with torch.no_grad():
        m.probabilities(torch.from_numpy(np.ascontiguousarray(x[:h2, :w2], np.float32))[None, None])
    for b, (mu, var) in zip(bns, old):
        b.running_mean.mul_(alpha).add_((1 - alpha) * mu); b.running_var.mul_(alpha).add_((1 - alpha) * var)
        b.momentum = 0.1
    m.eval()
    return m

def em_prior(probs, prior, iters=20):
    p = probs.reshape(probs.shape[0], -1).astype(np.float64)
    pi = prior.copy()
    for _ in range(iters):
        q = p * (pi / prior)[:, None]
        q /= q.sum(0, keepdims=True)
        pi = q.mean(1)
    return q.reshape(probs.shape).astype(np.float32), pi

def run(model, img, lab, prior, mode):
    grey = img.data
    bar = resolve_data_bar(grey, mode.get("bar"))
    region = grey[: grey.shape[0] - bar]
    factor, _ = scale_factor(model, img, True)
    m = model
    if mode.get("adabn"):
        x = model.info.normalize(region)
        if abs(factor - 1) > 0.02:
            x = _resize(x, tuple(int(round(s * factor)) for s in region.shape), 1)
        m = adabn(model, x, mode.get("alpha", 1.0))
    probs = drain(region_probabilities(m, region, factor))
    if mode.get("em"):
        probs, pi = em_prior(probs, prior)
    pred = np.zeros(grey.shape, np.uint8); pred[: region.shape[0]] = probs.argmax(0) + 1
    return evaluate(pred, lab, 4, io.valid_mask(lab.shape, bar))

modes = {"base": {}, "adabn": {"adabn": 1}, "adabn.5": {"adabn": 1, "alpha": .5}, "em": {"em": 1}, "adabn+em": {"adabn": 1, "em": 1}}
res = {k: [] for k in modes}
for i in range(3):
    rest = [j for j in range(3) if j != i]
    cnt = sum(np.bincount(labels[j][io.valid_mask(labels[j].shape, io.detect_data_bar(images[j].data))].ravel(), minlength=5)[1:] for j in rest)
    prior = cnt / cnt.sum()
    model = bundle.load_model(models[0].format(i=i))
    zimg, zlab = zoomed(images[i], labels[i])
    for k, mode in modes.items():
        r1 = run(model, images[i], labels[i], prior, mode)
        r2 = run(model, zimg, zlab, prior, dict(mode, bar=0))
        res[k] += [r1["miou"], r2["miou"]]
        print(f"fold {i} {k:9s} native {r1['miou']:.3f} {np.round(r1['iou'],3)}  zoom {r2['miou']:.3f} {np.round(r2['iou'],3)}", flush=True)
for k, v in res.items():
    print(f"{k:9s} native mean {np.mean(v[0::2]):.3f}  zoomed mean {np.mean(v[1::2]):.3f}")
