"""Higher magnifications: restore pixel-scale texture after shrinking too?

Prediction restores seeded white noise to images it enlarges 1.4-2.5x (lowmag.py).
Images at a higher magnification than the model's (the test image: 4.47 nm, shrunk
0.4x) are shrunk with anti-aliasing, which also smooths their texture (test image: 7.5
-> 3.6 grey levels; training images 7.9-8.4). This scores the same restoration, up to T
grey levels, for images shrunk by the model, on the zoomed held-out views of each fold
(``_folds.held_out_views``: zoomed 2.5x, and zoomed 2.5x + noise), with a bag of fold
models + each fold's 20-tree forest at 0.2:

    python research/experiments/zoom_texture.py "runs/budget10/UNET_{i}.safetensors" \
        "runs/screen/S1_{i}.safetensors" "runs/screen/S2c_{i}.safetensors" --targets 0,4,6
"""
import argparse
import json
import sys

import numpy as np
from _folds import class_means, fold_bag, held_out_views, probabilities, score

from napari_rockseg.engine import predict

#: one grey level of an 8-bit image in median-normalised units (full scale = 4)
GREY_LEVEL = 4.0 / 255


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("patterns", nargs="+")
    p.add_argument("--targets", default="0,4,6", help="texture targets in grey levels (0: none, as shipped before "
                   "session 17; since then prediction restores 6, TEXTURE_FLOOR)")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    targets = [float(t) for t in a.targets.split(",")]
    window = predict._texture_target
    res = {t: {} for t in targets}
    for i in range(3):
        bag = fold_bag(a.patterns, i, 0.2)
        for tag, img, lab, b, region in held_out_views(i, noisy=True):
            if tag == "native":
                continue
            for t in targets:  # shrunk images (f < 1) get T grey levels, or none for T = 0
                predict._texture_target = lambda model, f, t=t: (t * GREY_LEVEL or None) if f < 1 else window(model, f)
                r = score(probabilities(bag, img, region), img, lab, b)
                predict._texture_target = window
                res[t].setdefault(tag, []).append({"miou": float(r["miou"]), "iou": [float(v) for v in r["iou"]]})
                print(f"fold {i} {tag:10s} T={t:<4} {r['miou']:.3f} {np.round(r['iou'], 3)}", flush=True)
    print("| texture after shrinking | zoomed 1 / 2 / 3 | mean | zoomed + noise 1 / 2 / 3 | mean |")
    print("|---|---|---|---|---|")
    for t in targets:
        cells = []
        for tag in ("zoom", "zoom+noise"):
            v = [r["miou"] for r in res[t][tag]]
            cells += [" / ".join(f"{x:.3f}" for x in v), f"{np.mean(v):.3f}"]
        print(f"| {'none (shipped before session 17)' if not t else f'{t:g} grey levels'} | " + " | ".join(cells) + " |")
    for t in targets:
        print(f"T={t:g} per class (mineral / organic / pores / clay):",
              "; ".join(f"{tag}: {class_means([r['iou'] for r in res[t][tag]])}" for tag in res[t]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"patterns": a.patterns, "scores": {str(k): v for k, v in res.items()}}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
