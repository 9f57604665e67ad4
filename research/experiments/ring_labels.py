"""Training labels without the one-pixel ring of mineral grain around every other phase:
the hand-painted edges of organic matter, pores and clay are the least certain pixels, and
the grain just outside them is the class that has pixels to spare (85-93 % of each image).
Writes OUT/images/ (links to the training images) and OUT/labels/ (integer TIFFs, the ring
set to 0 = unlabelled, which training ignores); every rare-phase pixel is kept.

    python research/experiments/ring_labels.py /tmp/ring
    OUT=runs/screen NAME=RING TRAIN=/tmp/ring THREADS=1 \
        BASE="--method unet --patience 0 --seed 0 --steps 2300" bash research/experiments/cpu_folds.sh
"""
import sys
from pathlib import Path

import numpy as np
from _folds import images, labels  # the training pairs, read once there
from skimage.segmentation import find_boundaries

from napari_rockseg.engine.io import write_labels

GRAIN = 1  # mineral grain's integer label


def ring_removed(labels: np.ndarray, grain: int = GRAIN) -> np.ndarray:
    """``labels`` with the grain pixels that touch another class (4-connectivity) set to 0."""
    ring = find_boundaries(labels, connectivity=1, mode="outer", background=grain) & (labels == grain)
    out = labels.copy()
    out[ring] = 0
    return out


def main(out: Path):
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    for sem, lab in zip(images, labels):
        name = Path(sem.path).name
        link = out / "images" / name
        if not link.exists():
            link.symlink_to(Path(sem.path).resolve())
        new = ring_removed(lab)
        write_labels(out / "labels" / name, new, sem.pixel_size_nm)
        dropped = int((lab != new).sum())
        print(f"{name}: {dropped} grain pixels unlabelled ({dropped / max(1, int((lab == GRAIN).sum())):.1%} of grain)")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
