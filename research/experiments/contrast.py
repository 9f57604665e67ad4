"""Detector contrast: how much does a different contrast (amplifier gain) cost, and can
prediction undo it?

The median normalisation keeps the microscope's contrast (grey-level differences
between phases), and training varies contrast by exp(+-0.2) = 0.82-1.22x. An SEM's
brightness/contrast knobs can move further than that. Each fold's held-out image
(above its data bar) gets its contrast scaled k x about its median, clipped to 0-255
as a detector saturates (the pixel noise scales with it, as it does behind the
amplifier), then is predicted by a bag of fold models + the fold's 20-tree forest at
0.2 with the image's grey scale (``full``, the span that maps to 4 units) taken as:

- ``shipped``: what prediction does: the bit depth (255), except that an image below
  ``info.CONTRAST_FLOOR`` x the training images' contrast is stretched to that floor (since
  session 17; before, the bit depth alone),
- ``oracle``: 255 x k (undoes the change exactly; the upper bound),
- ``range``: the image's 0.5-99.5 % range matched to the training images' mean
  (``ModelInfo.contrast``; what prediction already does for images using < 1/8 of
  their bit depth),
- ``iqr``: the image's interquartile range matched to the training images' mean
  interquartile range (the dominant phase's spread; less dependent on how much of
  the darkest and brightest phases an image holds than the 0.5-99.5 % range),
- ``floor``: an image whose 0.5-99.5 % range is below ``FLOOR`` x the training images' mean
  (``ModelInfo.contrast``) is stretched to exactly that; images above it are untouched (the
  experiment that adopted it; prediction now does the same, so it equals ``shipped``),
- ``mix``: the mean of the probabilities at grey scales 255 x 0.75, 255 and 255 x 1.33
  (test-time augmentation over the contrast; 3x the prediction time).

``--views`` adds the three standard views at k = 1 (native, zoomed 2.5x, zoomed 2.5x +
noise) for the same options, to check that an option costs nothing on unchanged images.
One pattern with ``--forest-weight 0`` scores that model file as it is (a U-Net alone, or
a fine-tuned fold bag with its own forest).

    python research/experiments/contrast.py "runs/budget10/UNET_{i}.safetensors" \
        "runs/screen/S1_{i}.safetensors" "runs/screen/S2c_{i}.safetensors" --json OUT.json

``--test-image`` instead scores the shipped default on the test image (rows 0-687) at
the contrast factors ``--k`` (read after the decisions, not used for them):

    python research/experiments/contrast.py --test-image
"""
import argparse

import numpy as np
from _folds import (
    DATA,
    VIEWS,
    above_bar,
    altered_view,
    fold_bag,
    labels,
    report_options,
    score,
    score_options,
    standard_views,
)

from napari_rockseg.engine import bundle, io
from napari_rockseg.engine.events import drain
from napari_rockseg.engine.info import contrast_of
from napari_rockseg.engine.predict import region_probabilities, scale_factor

OPTIONS = ("shipped", "oracle", "range", "iqr", "floor", "mix")
#: ``floor``: the lowest contrast, as a share of the training images' mean, left as it is
FLOOR = 0.6
#: the grey scales (x the bit depth) that ``mix`` averages over
MIX = (0.75, 1.0, 1.33)


def iqr(grey) -> float:
    q1, q3 = np.percentile(io.sample_grid(grey), [25, 75])
    return float(q3 - q1)


def with_contrast(grey: np.ndarray, k: float) -> np.ndarray:
    """``grey`` with its contrast scaled ``k`` x about its median, clipped to 0-255."""
    g = grey.astype(np.float32)
    med = float(np.median(g))
    return np.clip(med + k * (g - med), 0, 255)


def full_scale(option: str, region: np.ndarray, k: float, bag, train_iqr: float) -> float | None:
    if option == "shipped":
        return None
    if option == "oracle":
        return 255.0 * k
    if option == "range":
        return 255.0 * contrast_of(region) / bag.info.contrast
    if option == "floor":
        c = contrast_of(region)
        return 255.0 * c / (FLOOR * bag.info.contrast) if c < FLOOR * bag.info.contrast else None
    if option == "iqr":
        return 255.0 * iqr(region) / train_iqr
    raise ValueError(option)


def predict(bag, img: io.SEMImage, region: np.ndarray, option: str, k: float, train_iqr: float) -> np.ndarray:
    f, _ = scale_factor(bag, img)
    med = float(np.median(io.sample_grid(region)))  # as ModelInfo.stats takes it
    if option == "mix":
        return sum(drain(region_probabilities(bag, region, f, (med, 255.0 * m))) for m in MIX) / len(MIX)
    full = full_scale(option, region, k, bag, train_iqr)
    return drain(region_probabilities(bag, region, f, None if full is None else (med, full)))


def test_image_report(ks):
    """The shipped default on the test image's evaluated rows with contrast scaled by ``ks``."""
    from napari_rockseg.engine.classes import SHALE
    from napari_rockseg.models import default_model_path

    test = DATA / "test"
    img, lab = io.read_image(test / "images/1.tif"), io.read_labels(test / "labels/1.tif", SHALE)
    rows = 688  # the evaluation protocol's rows
    model = bundle.load_model(default_model_path())
    for k in [1.0] + ks:
        g = with_contrast(img.data[:rows], k)
        view = io.SEMImage(g, img.pixel_size_nm, img.path)
        r = score(predict(model, view, g, "shipped", k, 0.0), view, lab[:rows], 0)
        print(f"test image, contrast x {k:g}: {r['miou']:.3f} {np.round(r['iou'], 3)}", flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("patterns", nargs="*")
    p.add_argument("--test-image", action="store_true", help="score the shipped default on the test image")
    p.add_argument("--k", default="0.5,0.7,1.4,2", help="contrast factors")
    p.add_argument("--options", default=",".join(OPTIONS))
    p.add_argument("--views", action="store_true", help="also the three standard views at k = 1")
    p.add_argument("--forest-weight", type=float, default=0.2)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    ks = [float(v) for v in a.k.split(",")] if a.k else []
    if a.test_image:
        test_image_report(ks)
        return 0
    if not a.patterns:
        p.error("name the fold models (a pattern with {i}), or give --test-image")
    options = a.options.split(",")
    tags = [f"k={k:g}" for k in ks] + (list(VIEWS) if a.views else [])
    res = {o: {t: [] for t in tags} for o in options}
    for i in range(3):
        if len(a.patterns) == 1 and not a.forest_weight:  # one model file as it is (e.g. a fine-tuned bag)
            bag = bundle.load_model(a.patterns[0].format(i=i))
        else:
            bag = fold_bag(a.patterns, i, a.forest_weight)
        train_iqr = float(np.mean([iqr(above_bar(j)) for j in range(3) if j != i]))
        base = above_bar(i)
        lab = labels[i][: base.shape[0]]
        factor = {f"k={k:g}": k for k in ks}  # the standard views: 1
        views = [altered_view(i, f"k={k:g}", with_contrast(base, k), lab) for k in ks]
        views += standard_views(i) if a.views else []
        score_options(res, i, views, options, lambda tag, img, region, o, bag=bag, factor=factor, t=train_iqr:
                      predict(bag, img, region, o, factor.get(tag, 1.0), t))
    report_options(res, "grey scale", tags, a.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
