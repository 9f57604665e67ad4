"""Synthetic labelled rock data sets that stress what the shale SEM and battery
nano-CT sets lack: micrometre pixel sizes, 2 classes, 16-bit, grey 0/255 masks,
colour masks with their own scheme, float32 images with 0 as a class.

    python benchmarks/synthetic_sets.py OUT_DIR [--size 384] [--seed 0]

writes OUT_DIR/NAME/{train,test}/{images,labels}/*.tif and OUT_DIR/NAME/classes.json:

- sandstone-uct: micro-CT-like sandstone, uint16, 2.2 µm per pixel (ImageJ TIFF tags),
  pore / grain as a grey 0/255 mask with a value scheme;
- carbonate-4: 4 classes (calcite, dolomite, clay matrix, pore), uint8, 0.8 µm per pixel,
  RGB colour mask with a colour scheme, no data bar;
- electrode-f32: 3 classes (particle, binder, pore), float32 raw detector values,
  50 nm per pixel in OME-XML, palette TIFF labels whose index 0 is a class.

Grains are overlapping discs of varied size and tone, pores dark, the grey levels of
classes overlap through texture, noise and blur, so no threshold separates them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage as ndi


def grains(rng, shape, per_px: float, rmin: float, rmax: float):
    """Overlapping discs: (inside a disc, id of the nearest seed, distance to it)."""
    h, w = shape
    n = max(1, int(h * w * per_px))
    seeds = np.zeros(shape, bool)
    seeds[rng.integers(0, h, n), rng.integers(0, w, n)] = True
    dist, (iy, ix) = ndi.distance_transform_edt(~seeds, return_indices=True)
    radius = rng.uniform(rmin, rmax, shape)[iy, ix]
    ids = iy * w + ix
    return dist < radius, ids, dist


def texture(rng, shape, sigma: float) -> np.ndarray:
    t = ndi.gaussian_filter(rng.normal(0, 1, shape), sigma)
    return t / (t.std() + 1e-9)


def finish(rng, clean: np.ndarray, noise: float, blur: float) -> np.ndarray:
    """Partial-volume blur, detector noise and a slow illumination drift."""
    drift = texture(rng, clean.shape, max(clean.shape) / 4) * 0.03
    return ndi.gaussian_filter(clean, blur) + rng.normal(0, noise, clean.shape) + drift


def sandstone(rng, shape):
    solid, ids, _ = grains(rng, shape, 1 / 500, 7, 20)
    tone = rng.uniform(0.55, 0.75, shape).ravel()[ids]
    clean = np.where(solid, tone + 0.04 * texture(rng, shape, 2), 0.18)
    img = finish(rng, clean, 0.07, 1.3)
    image = np.clip(img * 52000 + 4000, 0, 65535).astype(np.uint16)
    return image, (solid * 255).astype(np.uint8)


def carbonate(rng, shape):
    calcite, ids, _ = grains(rng, shape, 1 / 700, 8, 22)
    dolo = calcite & (rng.random(shape).ravel()[ids] < 0.35)
    pore, _, _ = grains(rng, shape, 1 / 2500, 3, 9)
    cls = np.where(calcite, np.where(dolo, 1, 0), 2)  # 0 calcite, 1 dolomite, 2 clay matrix
    cls = np.where(pore & (cls == 2), 3, cls)  # pores open in the matrix
    tones = np.array([0.62, 0.72, 0.45, 0.12])
    grain_texture, clay_texture = 0.03 * texture(rng, shape, 3), 0.08 * texture(rng, shape, 1.0)
    clean = tones[cls] + np.where(cls == 2, clay_texture, grain_texture)
    image = np.clip(finish(rng, clean, 0.06, 1.0) * 255, 0, 255).astype(np.uint8)
    colours = np.array([(255, 255, 0), (0, 0, 255), (0, 160, 0), (255, 0, 255)], np.uint8)
    return image, colours[cls]


def electrode(rng, shape):
    particle, _, dist = grains(rng, shape, 1 / 900, 6, 16)
    binder = ~particle & (texture(rng, shape, 2.5) > 0.3) | ~particle & (dist < 3)
    cls = np.where(particle, 0, np.where(binder, 1, 2)).astype(np.uint8)
    tones = np.array([0.8, 0.42, 0.3])
    clean = tones[cls] + np.where(cls == 1, 0.07 * texture(rng, shape, 0.8), 0.0)
    image = (finish(rng, clean, 0.07, 1.1) * 50000 + 14000).astype(np.float32)
    return image, cls


SETS = {
    "sandstone-uct": (
        sandstone,
        {"classes": [{"name": "pore", "value": 0}, {"name": "grain", "value": 255}], "rest": None},
    ),
    "carbonate-4": (
        carbonate,
        {
            "classes": [
                {"name": "calcite", "color": "#ffff00"},
                {"name": "dolomite", "color": "#0000ff"},
                {"name": "clay matrix", "color": "#00a000"},
                {"name": "pore", "color": "#ff00ff"},
            ],
            "rest": None,
        },
    ),
    "electrode-f32": (
        electrode,
        {
            "classes": [
                {"name": "particle", "value": 0},
                {"name": "binder", "value": 1},
                {"name": "pore", "value": 2},
            ],
            "rest": None,
        },
    ),
}
PALETTE = np.zeros((3, 256), np.uint16)
PALETTE[:, :3] = np.array([(255, 0, 0), (79, 255, 130), (198, 118, 255)], np.uint16).T * 257


def write_pair(name: str, img_path: Path, lab_path: Path, image, labels):
    if name == "sandstone-uct":  # 2.2 µm per pixel in ImageJ TIFF tags
        tifffile.imwrite(
            img_path, image, imagej=True, resolution=(1 / 2.2, 1 / 2.2), metadata={"unit": "um"}
        )
        tifffile.imwrite(lab_path, labels)
    elif name == "carbonate-4":
        tifffile.imwrite(
            img_path, image, resolution=(1e4 / 0.8, 1e4 / 0.8), resolutionunit="centimeter"
        )
        tifffile.imwrite(lab_path, labels, photometric="rgb")
    else:  # 50 nm per pixel in OME-XML; labels a palette TIFF whose index 0 is a class
        tifffile.imwrite(
            img_path,
            image,
            ome=True,
            metadata={
                "PhysicalSizeX": 50,
                "PhysicalSizeXUnit": "nm",
                "PhysicalSizeY": 50,
                "PhysicalSizeYUnit": "nm",
            },
        )
        tifffile.imwrite(lab_path, labels, photometric="palette", colormap=PALETTE)


def write_sets(
    out: Path, size: int = 384, n_train: int = 3, n_test: int = 2, seed: int = 0
) -> list[Path]:
    made = []
    for k, (name, (make, scheme)) in enumerate(SETS.items()):
        rng = np.random.default_rng([seed, k])
        root = out / name
        for split, n in (("train", n_train), ("test", n_test)):
            for sub in ("images", "labels"):
                (root / split / sub).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                image, labels = make(rng, (size, size))
                stem = f"{split}{i + 1:02d}.tif"
                write_pair(
                    name,
                    root / split / "images" / stem,
                    root / split / "labels" / stem,
                    image,
                    labels,
                )
        (root / "classes.json").write_text(json.dumps(scheme, indent=1, ensure_ascii=False))
        made.append(root)
    return made


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--size", type=int, default=384)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    for root in write_sets(a.out, a.size, seed=a.seed):
        print(root)


if __name__ == "__main__":
    main()
