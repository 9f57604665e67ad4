"""Training variants on the leave-one-image-out folds: one focal-dice U-Net per fold
and variant (MINUTES each, two threads), scored on the held-out image natively and
zoomed 2.5x (resampled to the model's pixel size).  A variant is
NAME:tile,batch,depth[,blur]; models are cached in runs/bench2 under a hash of
their settings, so a rerun only evaluates.

    python research/experiments/heldout_training.py 4 t128d4:128,8,4 t256d4:256,4,4 t256d5:256,4,5 blur1:128,8,4,1.0
"""
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from accuracy import fit, score, zoomed

from napari_rockseg.engine import train
from napari_rockseg.engine.classes import SHALE

torch.set_num_threads(2)
D = Path(__file__).resolve().parents[3] / "shared/data/shale-sem"
images, labels = train.load_training_pairs(*train.pairs_in_dir(D / "train"), SHALE)
minutes = float(sys.argv[1])
configs = {}
for a in sys.argv[2:]:
    name, v = a.split(":"); v = v.split(","); t, b, d = map(int, v[:3])
    configs[name] = dict(method="unet", loss="focal-dice", minutes=minutes, pixel_size_nm=11.16, tile=t, batch_size=b, depth=d)
    if len(v) > 3:
        configs[name]["blur"] = float(v[3])
out = {}
for name, cfg in configs.items():
    for i in range(3):
        rest = [j for j in range(3) if j != i]
        model = fit(cfg, [images[j] for j in rest], [labels[j] for j in rest], Path(f"runs/bench2/ctx{i}.safetensors"))
        r1 = score(model, images[i], labels[i])
        zi, zl = zoomed(images[i], labels[i])
        r2 = score(model, zi, zl, data_bar=0)
        out.setdefault(name, []).append((r1["miou"], r2["miou"]))
        print(f"{name} fold {i}: native {r1['miou']:.3f} {np.round(r1['iou'],3)} zoom {r2['miou']:.3f} {np.round(r2['iou'],3)}", flush=True)
for name, v in out.items():
    v = np.array(v)
    print(f"{name}: native {v[:,0].mean():.3f} zoom {v[:,1].mean():.3f} all {v.mean():.3f}")
