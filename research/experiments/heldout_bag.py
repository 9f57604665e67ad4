"""A bag of fold models + each fold's 20-tree forest (weight 0.2, as the shipped default)
scored on the three held-out views of every leave-one-image-out fold: native, zoomed 2.5x,
zoomed 2.5x + noise (``_folds.held_out_views``). Patterns name the fold models, ``{i}`` =
the fold (held-out training image i + 1); forests missing from runs/rf/ are trained first.

    python research/experiments/heldout_bag.py "/tmp/sweep/folds/B{k}_{i}.safetensors" --members 0-5 --json OUT.json

``{k}`` in a pattern is replaced by each of ``--members`` (a range ``a-b`` or a comma list);
plain patterns are taken as they are. One pattern with ``--forest-weight 0`` scores that
model file as it is (a U-Net, an ensemble or a bag with its own forest):

    python research/experiments/heldout_bag.py "runs/budget10/DEF_{i}.safetensors" --forest-weight 0

Prints the table row of the bag and per-class means.
"""
import argparse
import json
import sys

import numpy as np
from _folds import (
    VIEW_TABLE_HEAD,
    VIEWS,
    class_means,
    fold_bag,
    held_out_views,
    probabilities,
    score,
    view_row,
)

from napari_rockseg.engine import bundle


def members(spec: str) -> list[str]:
    if "-" in spec:
        a, b = spec.split("-")
        return [str(k) for k in range(int(a), int(b) + 1)]
    return spec.split(",")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("patterns", nargs="+")
    p.add_argument("--members", default="0-5", help="values of {k} in the patterns")
    p.add_argument("--forest-weight", type=float, default=0.2)
    p.add_argument("--name", default="bag")
    p.add_argument("--folds", default="0,1,2", help="folds to score (e.g. 0 for runs stopped after fold 0)")
    p.add_argument("--json", default=None, help="write the scores here")
    a = p.parse_args(argv)
    patterns = [q.replace("{k}", k) for q in a.patterns for k in (members(a.members) if "{k}" in q else [""])]
    res = {t: [] for t in VIEWS}
    for i in (int(f) for f in a.folds.split(",")):
        if len(patterns) == 1 and not a.forest_weight:  # one model file, scored as it is
            bag = bundle.load_model(patterns[0].format(i=i))
        else:
            bag = fold_bag(patterns, i, a.forest_weight)
        for tag, img, lab, b, region in held_out_views(i, noisy=True):
            r = score(probabilities(bag, img, region), img, lab, b)
            res[tag].append({"miou": float(r["miou"]), "iou": [float(v) for v in r["iou"]]})
            print(f"fold {i} {tag:10s} {r['miou']:.3f} {np.round(r['iou'], 3)}", flush=True)
    print(VIEW_TABLE_HEAD.format("bag + forest"))
    print(view_row(a.name, {t: [r["miou"] for r in res[t]] for t in VIEWS}))
    print("per class, mean over the held-out images (mineral / organic / pores / clay)")
    for tag in VIEWS:
        print(f"  {tag}: {class_means([r['iou'] for r in res[tag]])}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"patterns": patterns, "forest_weight": a.forest_weight, "scores": res}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
