"""How many members a bag needs, on the leave-one-image-out folds: every subset of the six
fold models of the shipped recipes, blended with the fold's forest at 0.2, scored on the
three held-out views; mean (min, max) over the subsets of each size. Reads the
per-member probabilities that member_swap.py caches in runs/members/ (run it first).

    python research/experiments/bag_size.py
"""
import itertools

import numpy as np
from _folds import held_out_views, score

NAMES = ("S0", "S1", "S2", "S3", "L4", "L5")
TAGS = ("native", "zoom", "zoom+noise")
res = {}
for i in range(3):
    for tag, img, lab, b, _ in held_out_views(i, noisy=True):
        ms = [np.load(f"runs/members/{n}_{i}_{tag}.npy").astype(np.float32) for n in NAMES]
        rf = np.load(f"runs/members/rf20_{i}_{tag}.npy").astype(np.float32)
        for k in range(1, 7):
            for c in itertools.combinations(range(6), k):
                p = 0.8 * sum(ms[j] for j in c) / k + 0.2 * rf
                res.setdefault((c, tag), []).append(score(p, img, lab, b)["miou"])
print("| members | native | zoomed 2.5x | zoomed 2.5x + noise |")
print("|---|---|---|---|")
for k in range(1, 7):
    cells = []
    for tag in TAGS:
        v = [np.mean(res[(c, tag)]) for c in itertools.combinations(range(6), k)]
        cells.append(f"{np.mean(v):.3f} ({np.min(v):.3f}-{np.max(v):.3f})")
    print(f"| {k} | " + " | ".join(cells) + " |")
