"""Run by torchrun from test_ddp.py: a few data-parallel training steps; each
process saves its weights so the test can check that they are identical."""

import sys

import torch
from helpers import synthetic_scene
from safetensors.torch import save_file

from napari_rockseg.engine.classes import ClassScheme
from napari_rockseg.engine.events import drain
from napari_rockseg.engine.io import SEMImage
from napari_rockseg.engine.training.config import TrainConfig
from napari_rockseg.engine.training.distributed import end_distributed as _end_distributed
from napari_rockseg.engine.training.distributed import init_distributed as _init_distributed
from napari_rockseg.engine.training.trainer import Trainer

out = sys.argv[1]
torch.set_num_threads(1)
rank, device = _init_distributed("auto")
scheme = ClassScheme(
    ("background", "blob", "pore"), ((200, 200, 200), (255, 0, 0), (0, 255, 0)), rest=0
)
image, labels = synthetic_scene(64, seed=1)
cfg = TrainConfig(
    method=sys.argv[2],
    tile=32,
    batch_size=4,
    width=4,
    depth=2,
    steps=6,
    eval_every=3,
    val_fraction=0.0,
    patience=None,
    device=device,
    data_bar=0,
    seed=0,
)
trainer = Trainer(cfg, [SEMImage(image)], [labels], scheme)
torch.manual_seed(cfg.seed)
start = trainer._new_model(trainer.info())  # the weights training starts from
model = drain(trainer.run())
for name, m in (("rank%d" % rank, model), ("start%d" % rank, start)):
    params = {k: p.detach().contiguous() for k, p in m.named_parameters()}
    save_file(params, f"{out}/{name}.safetensors")
_end_distributed()
