"""Removing small isolated regions after the argmax, on the leave-one-image-out folds: a
connected region of one phase smaller than a physical area (nm^2, so the same on images
at any magnification) takes each pixel's next most probable phase. Probabilities of the
shipped recipes' bag + forest on the three held-out views come from prior_shift.py's
cache (runs it first with the same patterns).

    python research/experiments/min_size.py

Thresholds are chosen on two folds (all three views) and scored on the third (nested).
"""
import itertools

import numpy as np
from _folds import held_out_views, score
from scipy import ndimage as ndi

K = 4
AREAS = (0, 500, 1000, 2000, 4000, 8000)  # nm^2; one model pixel is 11.16^2 = 125 nm^2
TAGS = ("native", "zoom", "zoom+noise")


def filtered(p: np.ndarray, px_nm: float, areas) -> np.ndarray:
    """(K, H, W) probabilities with the regions under ``areas[c]`` nm^2 of each class c handed
    to the next best class (the probabilities of c set to 0 there)."""
    pred = p.argmax(0)
    out = p.copy()
    for c, a in enumerate(areas):
        if not a:
            continue
        lab, n = ndi.label(pred == c)
        if not n:
            continue
        sizes = np.bincount(lab.ravel()) * px_nm**2
        small = (sizes < a)[lab] & (lab > 0)
        out[c][small] = 0
    return out


views = {}
for i in range(3):
    for tag, img, lab, b, _ in held_out_views(i, noisy=True):
        p = np.load(f"runs/prior/bag6_{i}_{tag}.npy").astype(np.float32)
        views[(i, tag)] = (p, img, lab, b)
combos = [(0, *c) for c in itertools.product(AREAS, repeat=3)]
combos = [c for c in combos if sum(bool(x) for x in c) <= 1] + [(0, a, a, a) for a in AREAS[1:]]
tab = {}
for key, (p, img, lab, b) in views.items():
    for c in combos:
        tab[(key, c)] = score(filtered(p, img.pixel_size_nm, c), img, lab, b)["miou"]
    print(key, "none", f"{tab[(key, combos[0])]:.3f}",
          " ".join(f"{c[1:]}:{tab[(key, c)]:.3f}" for c in combos[1:]), flush=True)


def mean_over(folds, c):
    return np.mean([tab[((i, t), c)] for i in folds for t in TAGS])


zero = combos[0]
print("nested: areas (organic, pores, clay) chosen on two folds, scored on the third")
for i in range(3):
    best = max(combos, key=lambda c: mean_over([j for j in range(3) if j != i], c))
    print(f"  held out {i + 1}: chosen {best[1:]} -> " + ", ".join(
        f"{t} {tab[((i, t), best)]:.3f} (none {tab[((i, t), zero)]:.3f})" for t in TAGS))
print("| areas nm^2 (organic, pores, clay) | native | zoomed | zoomed + noise |")
for c in combos:
    print(f"| {c[1:]} | " + " | ".join(
        f"{np.mean([tab[((i, t), c)] for i in range(3)]):.3f}" for t in TAGS) + " |")
