"""Training labels without the one-pixel ring of mineral grain around every other phase:
the hand-painted edges of organic matter, pores and clay are the least certain pixels, and
the grain just outside them is the class that has pixels to spare (85-93 % of each image).
Writes OUT/images/ (links to the training images) and OUT/labels/ (integer TIFFs, the ring
set to 0 = unlabelled, which training ignores); every rare-phase pixel is kept.

    python benchmarks/experiments/ring_labels.py /tmp/ring
    OUT=runs/screen NAME=RING TRAIN=/tmp/ring THREADS=1 \
        BASE="--method unet --patience 0 --seed 0 --steps 2300" bash benchmarks/experiments/cpu_folds.sh
"""
import sys
from pathlib import Path

import numpy as np
from _folds import DATA
from skimage.segmentation import find_boundaries

from napari_rockseg.engine.classes import SHALE
from napari_rockseg.engine.io import read_image, read_labels, write_labels


def ring_removed(labels: np.ndarray, grain: int = 1) -> np.ndarray:
    """``labels`` with the grain pixels that touch another class (4-connectivity) set to 0."""
    ring = find_boundaries(labels, connectivity=1, mode="outer", background=grain) & (labels == grain)
    out = labels.copy()
    out[ring] = 0
    return out


def main(out: Path):
    src = DATA / "train"
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    for img in sorted((src / "images").glob("*.tif")):
        link = out / "images" / img.name
        if not link.exists():
            link.symlink_to(img.resolve())
        sem = read_image(img)
        lab = read_labels(src / "labels" / img.name, SHALE, sem.data.shape)
        new = ring_removed(lab)
        write_labels(out / "labels" / img.name, new, sem.pixel_size_nm)
        dropped = int((lab != new).sum())
        print(f"{img.name}: {dropped} grain pixels unlabelled ({dropped / max(1, int((lab == 1).sum())):.1%} of grain)")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
