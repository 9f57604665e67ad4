"""Can the model find an image's scale when its pixel size is unknown?  For each held-out
view (native, zoomed 2.5x, zoomed 2.5x + noise) the fold model predicts at a grid of
resampling factors, without being told the pixel size; the factor whose prediction is
most confident (mean of the per-pixel maximum probability, or lowest mean entropy) is
compared with the true factor (the view's pixel size / the model's), and the mean IoU at
the chosen factor with the IoU at the true factor and at no resampling (what prediction
does today when the pixel size is unknown).  One pattern is one model per fold; several
are scored as a bag (``_folds.fold_bag``).

    python research/experiments/scale_search.py "runs/budget10/UNET_{i}.safetensors" [--json OUT]

The README's table: the 10-minute U-Nets above (all nine views). An earlier run on the
shipped recipe's fold bags (``runs/gpu2/folds/{S0,S1,S2,S3,L4,L5}_{i}.safetensors``) was
stopped after two views, slow on two cores, whose entropy minima (1.0 for a true 1.25,
0.35 for a true 0.50) already pointed the same way.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _folds import fold_bag, held_out_views, score

from napari_rockseg.engine import bundle
from napari_rockseg.engine.events import drain
from napari_rockseg.engine.predict import region_probabilities, scale_factor

GRID = [2 ** (k / 4) for k in range(-8, 4)]  # 0.25 ... 1.68


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("patterns", nargs="+", help="fold-model patterns ({i} = held-out image)")
    p.add_argument("--json")
    args = p.parse_args(argv)
    rows = []
    for i in range(3):
        model = (bundle.load_model(args.patterns[0].format(i=i)) if len(args.patterns) == 1
                 else fold_bag(args.patterns, i))
        for tag, img, lab, bar, region in held_out_views(i, noisy=True):
            true_f, _ = scale_factor(model, img)
            per = []
            for f in GRID:
                probs = drain(region_probabilities(model, region, f))
                pmax = probs.max(0)
                ent = -(probs * np.log(np.clip(probs, 1e-8, 1))).sum(0)
                per.append({"factor": f, "confidence": float(pmax.mean()), "entropy": float(ent.mean()),
                            "miou": score(probs, img, lab, bar)["miou"]})
            at_true = score(drain(region_probabilities(model, region, true_f)), img, lab, bar)["miou"]
            at_one = next(r["miou"] for r in per if r["factor"] == 1.0)  # the grid holds 1.0
            by_conf = max(per, key=lambda r: r["confidence"])
            by_ent = min(per, key=lambda r: r["entropy"])
            row = {"fold": i, "view": tag, "true_factor": true_f, "miou_true": at_true, "miou_none": at_one,
                   "conf_factor": by_conf["factor"], "miou_conf": by_conf["miou"],
                   "ent_factor": by_ent["factor"], "miou_ent": by_ent["miou"], "grid": per}
            rows.append(row)
            print(f"fold {i} {tag:10s} true {true_f:.2f} ({at_true:.3f}) | none ({at_one:.3f}) | "
                  f"confidence -> {by_conf['factor']:.2f} ({by_conf['miou']:.3f}) | "
                  f"entropy -> {by_ent['factor']:.2f} ({by_ent['miou']:.3f})", flush=True)
            print("   " + " ".join(f"{r['factor']:.2f}:{r['confidence']:.3f}/{r['miou']:.3f}" for r in per), flush=True)
    for key in ("miou_true", "miou_none", "miou_conf", "miou_ent"):
        print(key, " / ".join(f"{np.mean([r[key] for r in rows if r['view'] == v]):.3f}"
                              for v in ("native", "zoom", "zoom+noise")))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
