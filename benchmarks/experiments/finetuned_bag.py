"""Does continuing the training of the shipped fold bags change them on held-out images?
Each fold's bag of the shipped recipes (``runs/foldbag/bag6rf_{i}``: the six fold U-Nets of
``runs/gpu2/folds`` + the fold's 20-tree forest at 0.2) against the same bag fine-tuned on
the fold's two training images (``finetune_folds.sh``, e.g. with the sharpness augmentation
``--blur 1``), scored on the three held-out views (native, zoomed 2.5x, zoomed 2.5x + noise).

    OUT=runs/ftblur ARGS="--blur 1" benchmarks/experiments/finetune_folds.sh
    OUT=runs/ftplain benchmarks/experiments/finetune_folds.sh
    python benchmarks/experiments/finetuned_bag.py runs/ftblur runs/ftplain

Probabilities are cached in runs/members/ (keyed by folder).
"""
import sys
from pathlib import Path

import numpy as np
from _folds import held_out_views, probabilities, score

from napari_rockseg.engine import bundle

bags = {"shipped recipe": "runs/foldbag/bag6rf_{i}.safetensors"}
bags.update({d: f"{d}/bag_{{i}}.safetensors" for d in sys.argv[1:]})
cache = Path("runs/members")
cache.mkdir(parents=True, exist_ok=True)
TAGS = ("native", "zoom", "zoom+noise")

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
print("| bag of 6 + forest 0.2 | native 1 / 2 / 3 | mean | zoomed | mean | zoomed + noise | mean |")
print("|---|---|---|---|---|---|---|")
for name in bags:
    cells = []
    for tag in TAGS:
        v = res[(name, tag)]
        cells += [" / ".join(f"{x:.3f}" for x in v), f"{np.mean(v):.3f}"]
    print(f"| {name} | " + " | ".join(cells) + " |")
print("\nper class, mean over the held-out images (mineral / organic / pores / clay)")
for name in bags:
    print(name, "  ".join(f"{tag}: {' / '.join(f'{x:.3f}' for x in np.mean(cls[(name, tag)], 0))}"
                          for tag in TAGS))
