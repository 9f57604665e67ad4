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

    python research/experiments/degradations.py "runs/budget10/UNET_{i}.safetensors" \\
        "runs/screen/S1_{i}.safetensors" "runs/screen/S2c_{i}.safetensors"
"""
import argparse
import io as pyio

import numpy as np
from _folds import VIEWS, above_bar, altered_view, fold_bag, labels, report_options, score_options, standard_views
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
    smooth_texture,
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
        x = smooth_texture(x, target)
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
        views = [altered_view(i, t, degrade(base, t, seed=i), lab) for t in a.degradations.split(",")]
        views += standard_views(i) if a.views else []
        score_options(res, i, views, options, lambda tag, img, region, o, bag=bag: probabilities(bag, img, region, o))
    report_options(res, "prediction", tags, a.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
