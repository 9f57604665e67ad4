"""Lower magnifications than the training images: how should prediction enlarge them?

Every held-out view used so far is at the training images' magnification or higher
(zoomed 2.5x). Users also segment overviews at 20-30 nm per pixel, which prediction
enlarges to the model's 11.16 nm. Each fold's held-out image is shrunk 2x with
anti-aliasing (22-28 nm per pixel), as it is ("shrunk") and with white noise added
until its pixel-scale texture equals the native image's ("shrunk + noise": an SEM's
per-pixel noise does not depend on the magnification, ``_folds.with_noise``), then
predicted by a bag of fold models + the fold's 20-tree forest at 0.2 with:

- ``enlarge``: resampled to the model's pixel size (what prediction did before),
- ``as-is``: not resampled,
- ``half``: enlarged by the square root of that factor,
- ``smooth S``: a Gaussian of S input pixels before enlarging (noise would otherwise
  grow into blobs of the size of small pores),
- ``noise T``: enlarged, then white noise added until its pixel-scale texture is T grey
  levels (the training images': 7.9-8.4; linear enlargement leaves about 2),
- ``window LO HI``: ``noise 4`` for images enlarged LO to HI times, else ``enlarge``,
- ``shipped``: what prediction does now (``window 1.4 2.5`` adopted; in the engine,
  ``predict.restore_texture``); every other option runs with it switched off.

    python research/experiments/lowmag.py "runs/budget10/UNET_{i}.safetensors" \
        "runs/screen/S1_{i}.safetensors" "runs/screen/S2c_{i}.safetensors" --json OUT.json

``--test-image 0.25,0.2`` instead scores the shipped default on the test image (rows
0-687) shrunk by those factors, enlarged with and without the texture restored (read
after the window was adopted, not used to choose it):

    python research/experiments/lowmag.py --test-image 0.25,0.2
"""
import argparse
import json
import sys

import numpy as np
from _folds import (
    DATA,
    above_bar,
    fold_bag,
    images,
    labels,
    print_option_table,
    score,
    texture,
    with_noise,
)
from scipy.ndimage import gaussian_filter

from napari_rockseg.engine import bundle, io
from napari_rockseg.engine import predict as predict_module
from napari_rockseg.engine.events import drain
from napari_rockseg.engine.io import resolve_data_bar
from napari_rockseg.engine.predict import _resize, region_probabilities, scale_factor

SHIPPED_TEXTURE = predict_module._texture_target


def shrink(grey: np.ndarray, lab: np.ndarray, pixel_size_nm: float, factor: float, seed: int, path=None):
    """``grey`` and ``lab`` (above the data bar) shrunk ``factor`` x: the clean image, the
    same with white noise up to ``grey``'s pixel-scale texture, and the labels."""
    shape = (int(round(grey.shape[0] * factor)), int(round(grey.shape[1] * factor)))
    small = io.SEMImage(_resize(grey.astype(np.float32), shape, 1), pixel_size_nm / factor, path)
    return small, with_noise(small, texture(grey), seed=seed), _resize(lab, shape, 0)


def shrunk_views(i: int, factor: float = 0.5):
    """(tag, image, labels) of held-out image ``i`` shrunk ``factor`` x (above its bar)."""
    img, grey = images[i], above_bar(i)
    small, noisy, lab = shrink(grey, labels[i][: grey.shape[0]], img.pixel_size_nm, factor, 10 + i, img.path)
    return [("shrunk", small, lab), ("shrunk+noise", noisy, lab)]


OPTIONS = ("enlarge", "as-is", "half", "smooth 0.5", "smooth 0.7", "noise 4", "noise 8")


def predict(bag, img, option: str) -> np.ndarray:
    region = img.data
    f, _ = scale_factor(bag, img)
    predict_module._texture_target = SHIPPED_TEXTURE if option == "shipped" else (lambda model, f: None)
    if option.startswith("window"):  # "window LO HI": noise 4 for enlargements LO..HI, else enlarge
        lo, hi = (float(v) for v in option.split()[1:])
        option = "noise 4" if lo <= f <= hi else "enlarge"
    if option == "as-is":
        f = 1.0
    elif option == "half":
        f = f**0.5
    elif option.startswith("smooth"):
        region = gaussian_filter(region.astype(np.float32), float(option.split()[1]))
    elif option.startswith("noise"):
        shape = tuple(int(round(s * f)) for s in region.shape)
        big = io.SEMImage(_resize(region.astype(np.float32), shape, 1), bag.info.pixel_size_nm, img.path)
        big = with_noise(big, float(option.split()[1]), seed=1)
        probs = drain(region_probabilities(bag, big.data, 1.0))
        return np.stack([_resize(q, region.shape, 1) for q in probs])
    return drain(region_probabilities(bag, region, f))


def test_image_report(factors):
    """The shipped default on the test image shrunk by ``factors`` (clean and noisy)."""
    from napari_rockseg.engine.classes import SHALE
    from napari_rockseg.models import default_model_path

    test = DATA / "test"
    img, lab = io.read_image(test / "images/1.tif"), io.read_labels(test / "labels/1.tif", SHALE)
    rows = 688  # the evaluation protocol's rows
    model = bundle.load_model(default_model_path())
    for factor in factors:
        small, noisy, lab_small = shrink(img.data[:rows], lab[:rows], img.pixel_size_nm, factor, 7)
        for tag, view in (("shrunk", small), ("shrunk+noise", noisy)):
            for option in ("enlarge", "shipped"):
                r = score(predict(model, view, option), view, lab_small, 0)
                print(f"test image at {view.pixel_size_nm:.1f} nm, {tag:12s} {option:8s} {r['miou']:.3f} "
                      f"{np.round(r['iou'], 3)}", flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("patterns", nargs="*")
    p.add_argument("--test-image", default=None, help="factors: score the shipped default on the test image")
    p.add_argument("--factor", type=float, default=0.5)
    p.add_argument("--options", default=",".join(OPTIONS))
    p.add_argument("--forest-weight", type=float, default=0.2, help="0: the fold models without a forest")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    if a.test_image:
        test_image_report([float(v) for v in a.test_image.split(",")])
        return 0
    options = a.options.split(",")
    tags = ("shrunk", "shrunk+noise")
    res = {o: {t: [] for t in tags} for o in options}
    for i in range(3):
        if len(a.patterns) == 1 and not a.forest_weight:  # one model file as it is (e.g. an ensemble)
            bag = bundle.load_model(a.patterns[0].format(i=i))
        else:
            bag = fold_bag(a.patterns, i, a.forest_weight)
        for tag, img, lab in shrunk_views(i, a.factor):
            b = resolve_data_bar(img.data, 0)
            for o in options:
                r = score(predict(bag, img, o), img, lab, b)
                res[o][tag].append({"miou": float(r["miou"]), "iou": [float(v) for v in r["iou"]]})
                print(f"fold {i} {tag:12s} {o:10s} {r['miou']:.3f} {np.round(r['iou'], 3)}", flush=True)
    print_option_table(res, "prediction", ("shrunk", "shrunk + noise"))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"patterns": a.patterns, "factor": a.factor, "scores": res}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
