"""bfloat16 against float32 prediction on held-out images: each fold's bag of the shipped
recipes (``runs/foldbag/bag6rf_{i}``, see finetune_folds.sh) on the three held-out views,
mean IoU, seconds (two cores) and the share of pixels whose label differs.

    python research/experiments/precision.py
"""
import os
import time

import numpy as np
from _folds import held_out_views, probabilities, score

from napari_rockseg.engine import bundle

rows = []
for i in range(3):
    model = bundle.load_model(f"runs/foldbag/bag6rf_{i}.safetensors")
    for tag, img, lab, b, region in held_out_views(i, noisy=True):
        out = {}
        for mode in ("fp32", "bf16"):
            os.environ["ROCKSEG_PRECISION"] = mode
            t = time.perf_counter()
            p = probabilities(model, img, region)
            out[mode] = (score(p, img, lab, b)["miou"], time.perf_counter() - t, p.argmax(0))
        diff = 100 * np.mean(out["fp32"][2] != out["bf16"][2])
        rows.append((i + 1, tag, out["fp32"][0], out["bf16"][0], out["fp32"][1], out["bf16"][1], diff))
        print(rows[-1], flush=True)
print("| held-out image | view | mean IoU float32 | mean IoU bfloat16 | seconds float32 | seconds bfloat16 "
      "| labels changed |")
print("|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r[0]} | {r[1]} | {r[2]:.4f} | {r[3]:.4f} | {r[4]:.1f} | {r[5]:.1f} | {r[6]:.3f} % |")
a = np.array([r[2:] for r in rows])
print(f"| mean | | {a[:, 0].mean():.4f} | {a[:, 1].mean():.4f} | {a[:, 2].sum():.1f} (sum) | {a[:, 3].sum():.1f} (sum) "
      f"| {a[:, 4].mean():.3f} % |")
