"""Does continuing the training of the shipped fold bags change them on held-out images?
Each fold's bag of the shipped recipes (``runs/foldbag/bag6rf_{i}``: the six fold U-Nets of
``runs/gpu2/folds`` + the fold's 20-tree forest at 0.2) against the same bag fine-tuned on
the fold's two training images (``finetune_folds.sh``, e.g. with the sharpness augmentation
``--blur 1``), scored on the three held-out views (native, zoomed 2.5x, zoomed 2.5x + noise).

    OUT=runs/ftblur ARGS="--blur 1" research/experiments/finetune_folds.sh
    OUT=runs/ftplain research/experiments/finetune_folds.sh
    python research/experiments/finetuned_bag.py runs/ftblur runs/ftplain

Probabilities are cached in runs/members/ (keyed by folder).
"""
import sys
from pathlib import Path

import numpy as np
from _folds import (
    VIEW_TABLE_HEAD,
    VIEWS,
    class_means,
    held_out_views,
    probabilities,
    score,
    view_row,
)

from napari_rockseg.engine import bundle

bags = {"shipped recipe": "runs/foldbag/bag6rf_{i}.safetensors"}
bags.update({d: f"{d}/bag_{{i}}.safetensors" for d in sys.argv[1:]})
cache = Path("runs/members")
cache.mkdir(parents=True, exist_ok=True)

res, cls = {}, {}
for i in range(3):
    for tag, img, lab, b, region in held_out_views(i, noisy=True):
        for name, pattern in bags.items():
            p = Path(pattern.format(i=i))
            f = cache / f"{p.parent.name}_{p.stem}_{tag}.npy"
            if not f.exists():
                np.save(f, probabilities(bundle.load_model(str(p)), img, region).astype(np.float16))
            r = score(np.load(f).astype(np.float32), img, lab, b)
            res.setdefault((name, tag), []).append(r["miou"])
            cls.setdefault((name, tag), []).append(np.asarray(r["iou"]))
            print(f"fold {i} {tag:10s} {name:16s} {r['miou']:.3f} {np.round(r['iou'], 3)}", flush=True)
print(VIEW_TABLE_HEAD.format("bag of 6 + forest 0.2"))
for name in bags:
    print(view_row(name, {tag: res[(name, tag)] for tag in VIEWS}))
print("\nper class, mean over the held-out images (mineral / organic / pores / clay)")
for name in bags:
    print(name, "  ".join(f"{tag}: {class_means(cls[(name, tag)])}" for tag in VIEWS))
