"""Synthetic test images."""

import numpy as np


def synthetic_scene(size=64, seed=0, rare_radius=4):
    """A grey image of 3 classes: background (1), big bright blobs (2) and small
    dark discs (3, rare: about 3 % of pixels), with noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    labels = np.ones((size, size), np.uint8)
    for _ in range(2):
        cy, cx = rng.integers(8, size - 8, 2)
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 < (size // 6) ** 2] = 2
    for _ in range(3):
        cy, cx = rng.integers(6, size - 6, 2)
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 < rare_radius**2] = 3
    means = np.array([0, 120, 200, 30], np.float32)
    image = means[labels] + rng.normal(0, 12, labels.shape)
    return np.clip(image, 0, 255).astype(np.uint8), labels


def tiny_config(**kw):
    """A TrainConfig of a tiny U-Net that learns synthetic_scene in seconds on a CPU."""
    from napari_rockseg.engine.training.config import TrainConfig

    base = dict(
        method="unet",
        tile=32,
        batch_size=8,
        width=8,
        depth=2,
        steps=150,
        eval_every=50,
        lr=1e-2,
        val_fraction=0.0,
        patience=None,
        device="cpu",
        scale_jitter=0.0,
        noise=0.0,
        data_bar=0,
        seed=0,
    )
    base.update(kw)
    return TrainConfig(**base)
