"""Uneven illumination: how much does a brightness gradient across the field cost, and does
flattening the background at prediction undo it?

SEM images are often brighter on one side (detector position, charging, a tilted
specimen). The median normalisation removes one global offset, so a gradient moves the
grey level of every phase by an amount that depends on where it is. Each fold's held-out
image (above its data bar) gets a left-to-right linear ramp of +-a grey levels added
(clipped 0-255) and is predicted by a bag of fold models + the fold's 20-tree forest at
0.2, either as it is (``shipped``) or after ``flatten``: the image minus its grain-level
background (a median filter over a quarter of the shorter side, on the image shrunk 8x,
enlarged back linearly) plus the background's median, so one brightness remains.
``--views`` adds the three standard views (native, zoomed 2.5x, zoomed 2.5x + noise)
to check that an option costs nothing on evenly lit images. (Measured in session 17: as
shipped, the stand-in bag lost 0.005 at +-15 and 0.018 at +-30 grey levels, under the bar
written down before for trying ``flatten``, so ``flatten`` has not been scored.)

    python research/experiments/shading.py "runs/budget10/UNET_{i}.safetensors" \\
        "runs/screen/S1_{i}.safetensors" "runs/screen/S2c_{i}.safetensors" --views
"""
import argparse

import numpy as np
from _folds import VIEWS, above_bar, altered_view, fold_bag, labels, report_options, score_options, standard_views
from scipy import ndimage as ndi

from napari_rockseg.engine import io
from napari_rockseg.engine.events import drain
from napari_rockseg.engine.predict import _resize, region_probabilities, scale_factor

OPTIONS = ("shipped", "flatten")


def with_ramp(grey: np.ndarray, a: float) -> np.ndarray:
    """``grey`` plus a left-to-right linear ramp from -a to +a grey levels, clipped to 0-255."""
    ramp = np.linspace(-a, a, grey.shape[1], dtype=np.float32)
    return np.clip(grey.astype(np.float32) + ramp[None, :], 0, 255)


def background(grey: np.ndarray, shrink: int = 8) -> np.ndarray:
    """The grain-level background: a median filter over a quarter of the shorter side,
    computed on the image shrunk ``shrink`` x and enlarged back linearly."""
    small = grey[::shrink, ::shrink].astype(np.float32)
    size = max(3, min(small.shape) // 4)
    return _resize(ndi.median_filter(small, size=size, mode="reflect"), grey.shape, order=1)


def flatten(grey: np.ndarray) -> np.ndarray:
    bg = background(grey)
    return np.clip(grey.astype(np.float32) - bg + float(np.median(bg)), 0, 255)


def predict(bag, img: io.SEMImage, region: np.ndarray, option: str) -> np.ndarray:
    f, _ = scale_factor(bag, img)
    x = flatten(region) if option == "flatten" else region
    return drain(region_probabilities(bag, x, f))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("patterns", nargs="+")
    p.add_argument("--ramps", default="15,30", help="ramp amplitudes a (grey levels, +-a across the image)")
    p.add_argument("--options", default=",".join(OPTIONS))
    p.add_argument("--views", action="store_true", help="also the three standard views")
    p.add_argument("--forest-weight", type=float, default=0.2)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    ramps = [float(v) for v in a.ramps.split(",")] if a.ramps else []
    options = a.options.split(",")
    tags = [f"ramp {r:g}" for r in ramps] + (list(VIEWS) if a.views else [])
    res = {o: {t: [] for t in tags} for o in options}
    for i in range(3):
        bag = fold_bag(a.patterns, i, a.forest_weight)
        base = above_bar(i)
        lab = labels[i][: base.shape[0]]
        views = [altered_view(i, f"ramp {r:g}", with_ramp(base, r), lab) for r in ramps]
        views += standard_views(i) if a.views else []
        score_options(res, i, views, options, lambda tag, img, region, o, bag=bag: predict(bag, img, region, o))
    report_options(res, "prediction", tags, a.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
