"""Where the GPU forest's probabilities part from the CPU's: features, tree walk, or both
(research/results/speed_h200_gpu_forest.md).  On a CUDA machine, from the repository root,
with the sample data in ../shared/data/shale-sem:

    PYTHONPATH=src python research/experiments/gpu_forest_diag.py
"""
import numpy as np
import torch

from napari_rockseg.engine import baselines as B
from napari_rockseg.engine.bundle import load_model
from napari_rockseg.engine.io import read_image
from napari_rockseg.models import DEFAULT, model_path

TEST = "../shared/data/shale-sem/test/images/1.tif"


def main():
    model = load_model(model_path(DEFAULT))
    forest = model.forest
    full = model.info.normalize(read_image(TEST).data[:688], None).astype(np.float32)
    x = full[:256]
    fn = B.pixel_features(x, forest.sigma_max)
    fc = B.pixel_features_torch(x, forest.sigma_max, "cpu").numpy()
    fg = B.pixel_features_torch(x, forest.sigma_max, "cuda").cpu().numpy()
    for name, f in [("torch cpu", fc), ("torch cuda", fg)]:
        d = np.abs(fn - f)
        print(name, "vs skimage: max", d.max(), "per feature max",
              np.round(d.reshape(-1, d.shape[-1]).max(0), 8).tolist())
    d = np.abs(fc - fg)
    print("cuda vs cpu torch feats: max", d.max(), "frac differing", (d > 0).mean())
    flat = fn.reshape(-1, fn.shape[-1])
    pn = B.forest_probabilities(forest.arrays, flat)
    for dev in ("cpu", "cuda"):
        d = np.abs(pn - B.forest_probabilities_torch(forest.on_device(dev), flat))
        print("walk on", dev, "same skimage feats: max", d.max(), "frac", (d.max(1) > 0).mean())
    d = np.abs(pn - B.forest_probabilities_torch(forest.on_device("cuda"), fg.reshape(-1, fg.shape[-1])))
    print("cuda feats+walk: max", d.max(), "frac", (d.max(1) > 0).mean(), "frac > 1e-6", (d.max(1) > 1e-6).mean())
    on_gpu = forest.probabilities(full, device=torch.device("cuda"))
    on_cpu = forest.probabilities(full, device=torch.device("cpu"))
    d = np.abs(on_gpu - on_cpu).max(0)
    print("probabilities(): max", d.max(), "frac", (d > 0).mean(), "frac > 1e-6", (d > 1e-6).mean(),
          "argmax same", (on_gpu.argmax(0) == on_cpu.argmax(0)).mean())


if __name__ == "__main__":
    main()
