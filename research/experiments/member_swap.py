"""Which recipe adds most to the shipped bag, on the leave-one-image-out folds: the six
fold models of the shipped recipes (``runs/gpu2/folds/{S0,S1,S2,S3,L4,L5}_{i}``) plus each
fold's 20-tree forest at 0.2, with one more member -- or one member swapped -- from a
candidate recipe trained on the CPU (``runs/cpufold/NAME_{i}``: U0 = the members' own
recipe, a control for "one more model"; B1 = with ``--blur 1``; P8 = at 8 nm per pixel).
Scored on the three held-out views (native, zoomed 2.5x, zoomed 2.5x + noise).

    python research/experiments/member_swap.py U0 B1 P8

Each member's probabilities (on the input grid, as prediction resamples them back) are
cached in runs/members/; the bag is their mean, blended with the forest's.
"""
import itertools
import sys
from pathlib import Path

import numpy as np
from _folds import FOLD_FOREST, SHIPPED_FOLDS, held_out_views, probabilities, score

from napari_rockseg.engine import bundle

candidates = sys.argv[1:] or ["U0", "B1", "P8"]
cache = Path("runs/members")
cache.mkdir(parents=True, exist_ok=True)
TAGS = ("native", "zoom", "zoom+noise")


def member(pattern: str, i: int, tag: str, img, region) -> np.ndarray:
    f = cache / f"{Path(pattern.format(i=i)).stem}_{tag}.npy"
    if not f.exists():
        np.save(f, probabilities(bundle.load_model(pattern.format(i=i)), img, region).astype(np.float16))
    return np.load(f).astype(np.float32)


res = {}
for i in range(3):
    for tag, img, lab, b, region in held_out_views(i, noisy=True):
        ship = [member(p, i, tag, img, region) for p in SHIPPED_FOLDS]
        rf = member(FOLD_FOREST, i, tag, img, region)

        def blend(ms, rf=rf):
            return 0.8 * sum(ms) / len(ms) + 0.2 * rf

        def add(key, ms, view=(img, lab, b), tag=tag):
            r = score(blend(ms), *view)
            res.setdefault((key, tag), []).append(r["miou"])
            return r

        r = add("shipped 6", ship)
        print(f"fold {i} {tag:10s} shipped 6 {r['miou']:.3f} {np.round(r['iou'], 3)}", flush=True)
        for c in candidates:
            x = member(f"runs/cpufold/{c}_{{i}}.safetensors", i, tag, img, region)
            r = add(f"6 + {c}", ship + [x])
            swaps = [score(blend([m for k, m in enumerate(ship) if k != d] + [x]), img, lab, b)["miou"]
                     for d in range(6)]
            res.setdefault((f"{c} swapped for one (mean of 6)", tag), []).append(np.mean(swaps))
            print(f"   + {c}: {r['miou']:.3f} {np.round(r['iou'], 3)}; swapped for one: "
                  f"{' '.join(f'{s:.3f}' for s in swaps)}", flush=True)
        for a, c in itertools.combinations(candidates, 2):
            xa = member(f"runs/cpufold/{a}_{{i}}.safetensors", i, tag, img, region)
            xc = member(f"runs/cpufold/{c}_{{i}}.safetensors", i, tag, img, region)
            add(f"6 + {a} + {c}", ship + [xa, xc])
print("| bag + forest at 0.2 | native 1 / 2 / 3 | mean | zoomed | mean | zoomed + noise | mean |")
print("|---|---|---|---|---|---|---|")
for name in dict.fromkeys(k[0] for k in res):
    cells = []
    for tag in TAGS:
        v = res[(name, tag)]
        cells += [" / ".join(f"{x:.3f}" for x in v), f"{np.mean(v):.3f}"]
    print(f"| {name} | " + " | ".join(cells) + " |")
