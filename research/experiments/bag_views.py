"""A bag whose members each see a different dihedral view of the input (member k: view k of
the 8 flips/rotations of test-time augmentation), against the plain bag, on the
leave-one-image-out folds natively and zoomed 2.5x: augmentation at no extra cost.

    python research/experiments/bag_views.py runs/gpu2/folds/{S0,S1,S2,S3,L4,L5}_{i}.safetensors
"""
import sys
import time

import numpy as np
import torch
from _folds import fold_bag, held_out_views, probabilities, score

from napari_rockseg.engine.ensemble import Bag
from napari_rockseg.engine.predict import _TTA, _apply, _undo


class ViewBag(Bag):
    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        total = 0
        for j, m in enumerate(self.members):
            k, flip = _TTA[j % len(_TTA)]
            total = total + _undo(torch.softmax(m(_apply(x, k, flip)).float(), dim=1), k, flip)
        return total / len(self.members)


patterns = sys.argv[1:]
res = {}
for i in range(3):
    plain = fold_bag(patterns, i)
    views = ViewBag(list(plain.members), plain.info)
    for tag, img, lab, b, region in held_out_views(i):
        for name, model in (("plain", plain), ("views", views)):
            t0 = time.perf_counter()
            r = score(probabilities(model, img, region), img, lab, b)
            res.setdefault((tag, name), []).append(r["miou"])
            print(f"fold {i} {tag:6s} {name:5s} {r['miou']:.3f} {np.round(r['iou'], 3)} "
                  f"{time.perf_counter() - t0:.1f} s", flush=True)
for (tag, name), v in res.items():
    print(f"{tag:6s} {name:5s} " + " / ".join(f"{x:.3f}" for x in v) + f"  mean {np.mean(v):.3f}")
