"""Train the shipped default ensemble (what `rockseg train` does, with one thread,
so that it can run in the background beside other work)."""

import sys

import torch

from napari_rockseg.engine import bundle, train
from napari_rockseg.engine.classes import SHALE

minutes, out = float(sys.argv[1]), sys.argv[2]
ckpt = sys.argv[3] if len(sys.argv) > 3 else None
torch.set_num_threads(1)
data = "../shared/data/shale-sem/train"
images, labels = train.load_training_pairs(*train.pairs_in_dir(data), SHALE)
cfg = train.TrainConfig(method="ensemble", minutes=minutes, pixel_size_nm=11.16, seed=0,
                        checkpoint=out + ".ckpt.pt", eval_every=50)
tr = train.Trainer(cfg, images, labels, SHALE, resume=ckpt, data_source="shale-sem/train 1-3")
gen = tr.run()
while True:
    try:
        ev = next(gen)
    except StopIteration as stop:
        model = stop.value
        break
    if ev.metrics:
        print(ev.stage, ev.step, ev.total, round(ev.loss, 4), [round(v, 3) for v in ev.metrics["iou"]],
              round(ev.metrics["score"], 3), flush=True)
bundle.save_model(model, out)
print("saved", out)
