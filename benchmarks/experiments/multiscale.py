"""Multi-scale inference on the leave-one-image-out folds: the probabilities predicted
at the model's scale times s, averaged over a set of s, for the cached five-minute
focal-dice U-Nets of benchmarks/accuracy.py (pattern: first argument), scored on the
held-out image natively and zoomed 2.5x.

    python benchmarks/experiments/multiscale.py "runs/bench2/loio{i}_4_9b4654a07b.safetensors"
"""
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from accuracy import zoomed

from napari_rockseg.engine import bundle, io, train
from napari_rockseg.engine.analysis import evaluate
from napari_rockseg.engine.classes import SHALE
from napari_rockseg.engine.events import drain
from napari_rockseg.engine.io import resolve_data_bar
from napari_rockseg.engine.predict import region_probabilities, scale_factor

torch.set_num_threads(2)
D = Path(__file__).resolve().parents[3] / "shared/data/shale-sem"
images, labels = train.load_training_pairs(*train.pairs_in_dir(D / "train"), SHALE)
pattern = sys.argv[1] if len(sys.argv) > 1 else "runs/bench2/loio{i}_4_9b4654a07b.safetensors"
sets = {"1": [1.0], "0.87-1.15": [1/1.15, 1, 1.15], "0.8-1.25": [0.8, 1, 1.25], "0.7-1.4": [1/1.4, 1/1.18, 1, 1.18, 1.4], "1,1.25": [1, 1.25], "1,1.5": [1, 1.5]}
res = {k: [] for k in sets}
for i in range(3):
    model = bundle.load_model(pattern.format(i=i))
    zimg, zlab = zoomed(images[i], labels[i])
    for tag, (img, lab, bar) in {"native": (images[i], labels[i], None), "zoom": (zimg, zlab, 0)}.items():
        b = resolve_data_bar(img.data, bar)
        region = img.data[: img.data.shape[0] - b]
        f, _ = scale_factor(model, img)
        cache = {}
        for k, ss in sets.items():
            acc = 0
            for s in ss:
                if s not in cache:
                    cache[s] = drain(region_probabilities(model, region, f * s))
                acc = acc + cache[s]
            pred = np.zeros(img.data.shape, np.uint8); pred[: region.shape[0]] = acc.argmax(0) + 1
            r = evaluate(pred, lab, 4, io.valid_mask(lab.shape, b))
            res[k].append(r["miou"])
            print(f"fold {i} {tag:6s} {k:10s} {r['miou']:.3f} {np.round(r['iou'], 3)}", flush=True)
for k, v in res.items():
    print(f"{k:10s} native {np.mean(v[0::2]):.3f} zoom {np.mean(v[1::2]):.3f} all {np.mean(v):.3f}")
