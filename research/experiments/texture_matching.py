"""Texture (noise) matching at inference on the leave-one-image-out folds: after
resampling to the model's pixel size, add white noise so that the input's
pixel-scale texture (robust standard deviation of the image minus its sigma = 1 px
Gaussian blur) reaches the training images' (``match``), or half / a quarter of the
missing variance.  Models: the cached U-Nets of benchmarks/accuracy.py or of
heldout_training.py (pattern with {i} for the fold).

    python research/experiments/texture_matching.py "runs/bench2/loio{i}_4_9b4654a07b.safetensors"
"""
import numpy as np
from _folds import fold_model, held_out_views, images, score
from scipy import ndimage as ndi

from napari_rockseg.engine.events import drain
from napari_rockseg.engine.io import resolve_data_bar
from napari_rockseg.engine.predict import _resize, predict_proba, scale_factor


def texture(x):
    h = x - ndi.gaussian_filter(x, 1.0)
    return 1.4826 * np.median(np.abs(h - np.median(h)))

rng0 = np.random.default_rng(123)
K = texture(rng0.normal(0, 1, (512, 512)).astype(np.float32))

def model_input(model, img, bar):
    region = img.data[: img.data.shape[0] - bar]
    f, _ = scale_factor(model, img)
    x = model.info.normalize(region)
    if abs(f - 1) > 0.02:
        x = _resize(x, tuple(max(16, int(round(s * f))) for s in region.shape), 1)
    return region, x

res = {}
for i in range(3):
    model = fold_model(i)
    rest = [j for j in range(3) if j != i]
    tex = [texture(model_input(model, images[j], resolve_data_bar(images[j].data, None))[1]) for j in rest]
    target = float(np.mean(tex))
    for tag, img, lab, b, _ in held_out_views(i):
        region, x = model_input(model, img, b)
        t_in = texture(x)
        for mode in ("base", "match", "half", "quarter"):
            xs = [x]
            if mode != "base" and t_in < target:
                frac = {"match": 1.0, "half": 0.5, "quarter": 0.25}[mode]
                s = np.sqrt(frac * (target**2 - t_in**2)) / K
                n = 1
                rng = np.random.default_rng(0)
                xs = [x + rng.normal(0, s, x.shape).astype(np.float32) for _ in range(n)]
            p = sum(drain(predict_proba(model, xx)) for xx in xs) / len(xs)
            if p.shape[1:] != region.shape:
                p = np.stack([_resize(q, region.shape, 1) for q in p])
            r = score(p, img, lab, b)
            res.setdefault(mode, []).append(r["miou"])
            print(f"fold {i} {tag:6s} texture {t_in:.3f} target {target:.3f} {mode:6s} {r['miou']:.3f} {np.round(r['iou'], 3)}", flush=True)
for k, v in res.items():
    print(f"{k:6s} native {np.mean(v[0::2]):.3f} zoom {np.mean(v[1::2]):.3f}")
