"""The correction loop, simulated: a user paints a few strokes where the model is wrong on
the left half of an image it has never seen, fine-tunes it as the Train widget does
("start from: current model", its default 5-minute budget), and the right half, which
nobody painted, is scored before and after (the painted left half is scored too, and the
share of the wrongly predicted regions that got a dab which are right after retraining).

- held-out: each fold's bag of the shipped recipes + forest
  (``runs/gpu2/folds/{S0,S1,S2,S3,L4,L5}_{i}``, ``runs/rf/rf20_{i}``) on its held-out image;
- test: the shipped default on the test image (its pixel size resampled as prediction does).

Strokes: per class, up to ``--errors`` disks of radius 5 px (input pixels) centred in the
largest wrongly predicted regions of that class in the left half, plus ``--keep`` disks on
pixels predicted right (so the model is also shown what it should keep), each disk cut to
the class's true pixels -- what a user paints from what they see.

    python research/experiments/corrections.py [--minutes 5] [--errors 10] [--keep 3] [--only test|heldout]
"""
import argparse
import time

import numpy as np
from _folds import SHIPPED_FOLDS, fold_bag, held_out_views, probabilities
from scipy import ndimage as ndi

from napari_rockseg.engine import bundle, io
from napari_rockseg.engine.analysis import evaluate
from napari_rockseg.engine.classes import SHALE
from napari_rockseg.engine.events import drain
from napari_rockseg.engine.train import TrainConfig, Trainer
from napari_rockseg.models import default_model_path

p = argparse.ArgumentParser()
p.add_argument("--minutes", type=float, default=5.0)
p.add_argument("--errors", type=int, default=10)
p.add_argument("--keep-dabs", dest="keep", type=int, default=3)
p.add_argument("--radius", type=int, default=5)
p.add_argument("--only", choices=["test", "heldout"])
p.add_argument("--lr", type=float, nargs="+", default=[2e-3], help="learning rates to compare")
p.add_argument("--freeze-norm", choices=["no", "yes", "both"], default="no",
               help="keep the batch-norm statistics of the model being fine-tuned")
p.add_argument("--stroke-share", type=float, default=0.0,
               help="share of the crops centred on the strokes (engine's own-prediction fill used then)")
p.add_argument("--keep", dest="keep_thr", type=float, nargs="+", default=[0.0],
               help="unpainted pixels the model predicts with at least this probability are trained on "
                    "with its own prediction (0: only the painted pixels)")
args = p.parse_args()
SETTINGS = [(lr, fz, t) for lr in args.lr for fz in {"no": [False], "yes": [True], "both": [False, True]}[args.freeze_norm]
            for t in args.keep_thr]
K = SHALE.n_classes


def strokes(pred, truth, valid, rng):
    """Sparse corrections on the left half: 0 = unpainted, else the true class."""
    h, w = truth.shape
    left = np.zeros_like(valid)
    left[:, : w // 2] = True
    paint = np.zeros(truth.shape, np.uint8)
    targeted = np.zeros(truth.shape, bool)  # the wrong regions that got a dab
    yy, xx = np.mgrid[: 2 * args.radius + 1, : 2 * args.radius + 1] - args.radius
    disk = yy**2 + xx**2 <= args.radius**2

    def dab(y, x, c):
        y0, x0 = max(0, y - args.radius), max(0, x - args.radius)
        y1, x1 = min(h, y + args.radius + 1), min(w, x + args.radius + 1)
        d = disk[y0 - y + args.radius: y1 - y + args.radius, x0 - x + args.radius: x1 - x + args.radius]
        sel = d & (truth[y0:y1, x0:x1] == c) & left[y0:y1, x0:x1] & valid[y0:y1, x0:x1]
        paint[y0:y1, x0:x1][sel] = c

    for c in range(1, K + 1):
        wrong = (truth == c) & (pred != c) & left & valid
        lab, n = ndi.label(wrong)
        if n:
            sizes = np.bincount(lab.ravel())[1:]
            for r in np.argsort(sizes)[::-1][: args.errors]:
                region = lab == r + 1
                targeted |= region
                ys, xs = np.nonzero(region)
                j = rng.integers(len(ys))
                dab(ys[j], xs[j], c)
        right = np.argwhere((truth == c) & (pred == c) & left & valid)
        for j in rng.choice(len(right), min(args.keep, len(right)), replace=False) if len(right) else []:
            dab(*right[j], c)
    return paint, targeted


def right_half_scores(model, img, lab, bar):
    region = img.data[: img.data.shape[0] - bar]
    pr = probabilities(model, img, region)
    pred = np.zeros(img.data.shape, np.uint8)
    pred[: pr.shape[1]] = pr.argmax(0) + 1
    conf = np.zeros(img.data.shape, np.float32)
    conf[: pr.shape[1]] = pr.max(0)
    mask = io.valid_mask(lab.shape, bar).copy()
    left = mask.copy()
    mask[:, : lab.shape[1] // 2] = False
    left[:, lab.shape[1] // 2:] = False
    return pred, conf, evaluate(pred, lab, K, mask), evaluate(pred, lab, K, left)["miou"]


def run(name, model, img, lab, bar, seed):
    """Right-half mIoU before, and after fine-tuning with each setting."""
    pred, conf, before, left_before = right_half_scores(model, img, lab, bar)
    valid = io.valid_mask(lab.shape, bar)
    paint, targeted = strokes(pred, lab, valid, np.random.default_rng(seed))
    painted = int((paint > 0).sum())
    per_class = np.bincount(paint[paint > 0], minlength=K + 1)[1:]
    print(f"{name}: painted {painted} px ({100 * painted / valid.sum():.2f} % of the image; per class "
          f"{per_class}); right half before: {before['miou']:.3f} {np.round(before['iou'], 3)}; painted (left) "
          f"half before: {left_before:.3f}", flush=True)
    out = [before["miou"]]
    for lr, freeze, thr in SETTINGS:
        cfg = TrainConfig(method=model.kind, minutes=args.minutes, eval_every=25, device="cpu",
                          pixel_size_nm=model.info.pixel_size_nm, seed=seed, lr=lr, finetune_lr=lr,
                          freeze_norm=freeze, keep_confident=0.0)  # own labels filled here
        target = paint.copy()
        if args.stroke_share:  # the engine fills (it needs to know the strokes to centre crops on them)
            cfg.keep_confident, cfg.stroke_share = thr, args.stroke_share
        elif thr > 0:
            fill = (paint == 0) & valid & (conf >= thr)
            target[fill] = pred[fill]
        t0 = time.perf_counter()
        tuned = drain(Trainer(cfg, [img], [target], SHALE, init=model).run())
        dt = time.perf_counter() - t0
        pred_after, _, after, left_after = right_half_scores(tuned, img, lab, bar)
        fixed = (pred_after[targeted] == lab[targeted]).mean()
        print(f"   lr {lr:g} freeze_norm {freeze} keep >= {thr:g} ({100 * (target > 0).mean():.0f} % labelled): "
              f"{dt / 60:.1f} min -> {after['miou']:.3f} {np.round(after['iou'], 3)}; painted half "
              f"{left_before:.3f} -> {left_after:.3f}; {100 * fixed:.0f} % of the {targeted.sum()} px of the "
              f"wrong regions that got a dab now right", flush=True)
        out.append(after["miou"])
    return out


rows = []
if args.only != "test":
    for i in range(3):
        bag = fold_bag(SHIPPED_FOLDS, i, 0.2)
        tag, img, lab, bar, _ = held_out_views(i)[0]
        rows.append((f"held-out image {i + 1}", run(f"held-out image {i + 1}", bag, img, lab, bar, seed=i)))
if args.only != "heldout":
    img = io.read_image("src/napari_rockseg/data/shale_test.tif")
    lab = io.read_labels("src/napari_rockseg/data/shale_test_labels.tif", SHALE)
    bar = io.resolve_data_bar(img.data, None)
    rows.append(("test image", run("test image", bundle.load_model(default_model_path()), img, lab, bar, seed=0)))
names = [f"lr {lr:g}{', batch-norm statistics kept' if fz else ''}{f', own labels >= {t:g}' if t else ''}"
         for lr, fz, t in SETTINGS]
print("| image | right half before | " + " | ".join(names) + " |")
print("|---" * (len(names) + 2) + "|")
for name, v in rows:
    print(f"| {name} | " + " | ".join(f"{x:.3f}" for x in v) + " |")
