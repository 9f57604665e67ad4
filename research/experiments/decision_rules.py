"""Decision rules on the leave-one-image-out folds: the bag of the fold models given as
patterns (``{i}`` = held-out image 0..2) predicts each held-out image natively and zoomed
2.5x, then (1) class weights at the decision (argmax of p_c * w_c): a grid of weights for
the three rare classes, chosen on two folds and checked on the third (nested), then chosen
on all three; (2) Gaussian smoothing of the probabilities before the argmax.

    python research/experiments/decision_rules.py runs/gpu2/folds/{S0,S1,S2,S3,L4,L5}_{i}.safetensors [--tta]

Probabilities are cached in runs/bias/ (delete it after changing the models).
"""
import argparse
import itertools
from pathlib import Path

import numpy as np
from _folds import bag_probabilities, held_out_views, score
from scipy import ndimage as ndi

p = argparse.ArgumentParser()
p.add_argument("patterns", nargs="+")
p.add_argument("--tta", action="store_true")
p.add_argument("--cache", type=Path, default=Path("runs/bias"))
args = p.parse_args()

views = {}
for i in range(3):
    for tag, img, lab, b, region in held_out_views(i):
        views[(i, tag)] = (bag_probabilities(args.patterns, i, tag, img, region, args.tta, args.cache), img, lab, b)
        pr = views[(i, tag)][0].argmax(0)
        t = lab[: pr.shape[0]]
        ok = t > 0
        frac_p = np.bincount(pr[ok], minlength=4) / ok.sum()
        frac_t = np.bincount(t[ok] - 1, minlength=4) / ok.sum()
        print(f"fold {i} {tag:6s} predicted {np.round(frac_p, 4)} true {np.round(frac_t, 4)}", flush=True)

grid = [0.0, 0.25, 0.5, 0.75, 1.0]  # log weights of organic, pores, clay (mineral fixed at 0)
combos = [(0.0, *c) for c in itertools.product(grid, repeat=3)]
tab = {}
for key, (pr, img, lab, b) in views.items():
    for c in combos:
        w = np.exp(np.array(c, np.float32))[:, None, None]
        tab[(key, c)] = score(pr * w, img, lab, b)["miou"]


def mean_over(folds, c):
    return np.mean([tab[((i, tag), c)] for i in folds for tag in ("native", "zoom")])


zero = (0.0, 0.0, 0.0, 0.0)
print("nested: weights chosen on two folds, scored on the third (native, zoom)")
for i in range(3):
    rest = [j for j in range(3) if j != i]
    best = max(combos, key=lambda c: mean_over(rest, c))
    print(f"  held out {i}: chosen {best[1:]} -> " + ", ".join(
        f"{tab[((i, t), best)]:.3f} (unweighted {tab[((i, t), zero)]:.3f})" for t in ("native", "zoom")))
best = max(combos, key=lambda c: mean_over(range(3), c))
for name, c in (("unweighted", zero), (f"chosen on all {best[1:]}", best)):
    nat = [tab[((i, "native"), c)] for i in range(3)]
    zoo = [tab[((i, "zoom"), c)] for i in range(3)]
    print(f"{name}: native {' / '.join(f'{v:.3f}' for v in nat)} mean {np.mean(nat):.3f}; "
          f"zoom {' / '.join(f'{v:.3f}' for v in zoo)} mean {np.mean(zoo):.3f}")

print("Gaussian smoothing of the probabilities (sigma in output pixels)")
for sigma in (0.0, 0.7, 1.0, 1.5, 2.5):
    line = []
    for tag in ("native", "zoom"):
        v = [score(ndi.gaussian_filter(views[(i, tag)][0], (0, sigma, sigma)) if sigma else views[(i, tag)][0],
                   *views[(i, tag)][1:])["miou"] for i in range(3)]
        line.append(f"{tag} {' / '.join(f'{x:.3f}' for x in v)} mean {np.mean(v):.3f}")
    print(f"  sigma {sigma}: " + "; ".join(line), flush=True)
