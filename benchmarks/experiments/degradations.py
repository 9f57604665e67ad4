"""What an image's quality costs: held-out images with more pixel noise (a shorter dwell
time), out of focus, or saved as JPEG, predicted as shipped.

Each fold's held-out image (above its data bar) is degraded and predicted by a bag of fold
models + the fold's 20-tree forest at 0.2 (as prediction does; the labels are unchanged):

- ``noise S``: white Gaussian noise of standard deviation S grey levels added (seeded),
  clipped 0-255 (the training images' pixel-scale texture is 7.9-8.4 grey levels);
- ``blur S``: a Gaussian blur of S pixels (defocus or astigmatism);
- ``jpeg Q``: saved and read back as a JPEG of quality Q (Pillow).

Options at prediction (``--options``): ``shipped`` (what prediction does), ``texT``: at the
model's scale, an image whose pixel-scale texture (``predict.texture``) is below T grey
levels of an 8-bit image gets white noise up to T (``predict.restore_texture``), whatever
its resampling factor; ``denT``: an image whose texture is above T grey levels is smoothed
with the Gaussian (sigma found by bisection) that brings it down to T, then given the
texture prediction gives (``predict._texture_target``). ``--views`` adds the three standard views (native, zoomed 2.5x,
zoomed 2.5x + noise).

    python benchmarks/experiments/degradations.py "runs/budget10/UNET_{i}.safetensors" \\
        "runs/screen/S1_{i}.safetensors" "runs/screen/S2c_{i}.safetensors"
"""
import argparse
import io as pyio
import json

import numpy as np
from _folds import VIEWS, above_bar, fold_bag, held_out_views, images, labels, print_option_table, score
from PIL import Image
from scipy import ndimage as ndi

from napari_rockseg.engine import io
from napari_rockseg.engine.events import drain
from napari_rockseg.engine.predict import (
    _resize,
    _texture_target,
    predict_proba,
    region_probabilities,
    restore_texture,
    scale_factor,
    texture,
)

DEGRADATIONS = ("noise 6", "noise 12", "blur 1", "blur 2", "jpeg 75", "jpeg 50")


def degrade(grey: np.ndarray, tag: str, seed: int) -> np.ndarray:
    kind, level = tag.split()
    g = grey.astype(np.float32)
    if kind == "noise":
        g = g + np.random.default_rng(seed).normal(0, float(level), g.shape).astype(np.float32)
    elif kind == "blur":
        g = ndi.gaussian_filter(g, float(level))
    elif kind == "jpeg":
        buf = pyio.BytesIO()
        Image.fromarray(np.clip(g, 0, 255).round().astype(np.uint8)).save(buf, "JPEG", quality=int(level))
        g = np.asarray(Image.open(pyio.BytesIO(buf.getvalue())).convert("L"), np.float32)
    elif kind != "native":
        raise ValueError(tag)
    return np.clip(g, 0, 255)


def smooth_to(x: np.ndarray, target: float) -> np.ndarray:
    """``x`` smoothed with the Gaussian whose sigma (bisection in 0-2 px) brings its
    pixel-scale texture down to ``target``; ``x`` itself if it is at or below it."""
    if texture(x) <= target:
        return x
    lo, hi = 0.0, 2.0
    for _ in range(12):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if texture(ndi.gaussian_filter(x, mid)) > target else (lo, mid)
    return ndi.gaussian_filter(x, hi).astype(np.float32)


def probabilities(bag, img: io.SEMImage, region: np.ndarray, option: str) -> np.ndarray:
    f, _ = scale_factor(bag, img)
    if option == "shipped":
        return drain(region_probabilities(bag, region, f))
    target = float(option[3:]) * 4.0 / 255  # grey levels -> normalised units
    x = bag.info.normalize(region)
    if abs(f - 1.0) > 0.02:
        x = _resize(x, tuple(max(bag.multiple, int(round(s * f))) for s in region.shape), order=1)
    if option.startswith("tex"):
        x = restore_texture(x, target)  # unchanged where the texture is at least the target
    elif option.startswith("den"):  # then what prediction does to the texture
        x = smooth_to(x, target)
        floor = _texture_target(bag, f)
        if floor is not None:
            x = restore_texture(x, floor)
    else:
        raise ValueError(option)
    probs = drain(predict_proba(bag, x, device="cpu"))
    if getattr(bag, "forest", None) is not None:
        probs = bag.blend(probs, x, "cpu")
    if probs.shape[1:] != region.shape:
        probs = np.stack([_resize(p, region.shape, order=1) for p in probs])
    return probs


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("patterns", nargs="+")
    p.add_argument("--degradations", default="native 0," + ",".join(DEGRADATIONS))
    p.add_argument("--options", default="shipped")
    p.add_argument("--views", action="store_true", help="also the three standard views")
    p.add_argument("--forest-weight", type=float, default=0.2)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    tags = a.degradations.split(",") + (list(VIEWS) if a.views else [])
    options = a.options.split(",")
    res = {o: {t: [] for t in tags} for o in options}
    for i in range(3):
        bag = fold_bag(a.patterns, i, a.forest_weight)
        base = above_bar(i)
        lab = labels[i][: base.shape[0]]
        views = []
        for t in a.degradations.split(","):
            g = degrade(base, t, seed=i)
            views.append((t, io.SEMImage(g, images[i].pixel_size_nm, images[i].path), g, lab, 0))
        if a.views:
            for t, img, vlab, bar, region in held_out_views(i, noisy=True):
                views.append((t, img, region, vlab, bar))
        for t, img, region, vlab, bar in views:
            for o in options:
                r = score(probabilities(bag, img, region, o), img, vlab, bar)
                res[o][t].append({"miou": float(r["miou"]), "iou": [float(v) for v in r["iou"]]})
                print(f"fold {i} {t:10s} {o:8s} {r['miou']:.3f} {np.round(r['iou'], 3)}", flush=True)
    print_option_table(res, "prediction", tags)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(res, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
