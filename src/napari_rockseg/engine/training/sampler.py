"""Training images with their labels, the spatial validation split, and the tile sampler with
its augmentation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..inference.grid import grid_starts


@dataclass
class TrainImage:
    """One normalised image with its labels (0 = unlabelled) for training."""

    image: np.ndarray  # float32 (H, W)
    labels: np.ndarray  # uint8 (H, W), 0 = ignore


def split_validation(
    items: list[TrainImage], block: int = 256, fraction: float = 0.15, seed: int = 0
):
    """Hold back whole spatial blocks for validation (tiles from the same place
    would leak).  Returns (train items with those blocks unlabelled, list of
    validation crops; no validation crops when ``fraction`` is 0)."""
    if fraction <= 0:
        return list(items), []
    rng = np.random.default_rng(seed)
    train, val = [], []
    base = block
    for item in items:
        h, w = item.labels.shape
        # small images (a crop painted in the GUI) get smaller blocks, on a 16-pixel grid
        block = min(base, (min(h, w) // 3) // 16 * 16)
        if block < 32:
            train.append(item)
            continue
        cells = [
            (y, x) for y in range(0, h - block + 1, block) for x in range(0, w - block + 1, block)
        ]
        labelled = [
            c
            for c in cells
            if (item.labels[c[0] : c[0] + block, c[1] : c[1] + block] > 0).mean() > 0.5
        ]
        if len(labelled) < 3:
            train.append(item)
            continue
        n_val = max(1, int(round(fraction * len(cells))))
        chosen = [
            labelled[i]
            for i in rng.choice(len(labelled), size=min(n_val, len(labelled) - 1), replace=False)
        ]
        labels = item.labels.copy()
        for y, x in chosen:
            val.append(
                TrainImage(
                    item.image[y : y + block, x : x + block].copy(),
                    item.labels[y : y + block, x : x + block].copy(),
                )
            )
            labels[y : y + block, x : x + block] = 0
        train.append(TrainImage(item.image, labels))
    return train, val


class TileSampler:
    """Random training crops streamed from full images.

    ``balance`` is the probability that a crop is centred on a pixel of a
    class drawn uniformly among the classes present (so rare pores and clay
    are seen); otherwise the crop position is uniform.  ``cutout`` drops crops
    where one class covers more than that fraction of the labelled pixels (the
    original's filter).  ``mode="grid"`` walks the original's stride grid.
    Memory: only the images themselves, never a tile dataset.
    """

    def __init__(
        self,
        items: list[TrainImage],
        tile: int,
        n_classes: int,
        seed: int = 0,
        balance: float = 0.5,
        cutout: float | None = None,
        mode: str = "random",
        stride: int | None = None,
        augment: bool = True,
        scale_jitter: float = 0.15,
        noise: float = 0.0,
        blur: float = 0.0,
        focus=None,
        focus_share: float = 0.0,
        lowmag: float = 0.0,
        contrast: float = 0.2,
    ):
        if not items:
            raise InputError("no training images")
        keep = [(it.labels > 0).any() for it in items]
        # focus: per item, a mask of pixels (the user's strokes) that ``focus_share`` of the crops
        # centre on
        focus = focus or [None] * len(items)
        self.focus = [
            np.argwhere(f).astype(np.int32) if f is not None and f.any() else None
            for f, k in zip(focus, keep)
            if k
        ]
        self.focus_share = focus_share if any(f is not None for f in self.focus) else 0.0
        self.items = [it for it, k in zip(items, keep) if k]
        if not self.items:
            raise InputError(
                "the training labels are all unlabelled (0); paint or load some labels first"
            )
        self.tile, self.n_classes = tile, n_classes
        self.rng = np.random.default_rng(seed)
        self.balance, self.cutout, self.mode = balance, cutout, mode
        self.augment, self.scale_jitter, self.noise, self.blur = augment, scale_jitter, noise, blur
        self.lowmag, self.contrast = lowmag, contrast
        self.stride = stride or tile // 2
        # grey value that pads crops reaching past an image edge (computed once: a median
        # of a whole image per crop cost most of the sampling time)
        self.fill = [float(np.median(it.image)) for it in self.items]
        # pixel coordinates of each class, subsampled to bound memory
        self.class_pixels: dict[int, list[tuple[int, np.ndarray]]] = {}
        for idx, it in enumerate(self.items):
            for c in range(1, n_classes + 1):
                ys, xs = np.nonzero(it.labels == c)
                if ys.size:
                    step = max(1, ys.size // 20000)
                    self.class_pixels.setdefault(c, []).append(
                        (idx, np.stack([ys[::step], xs[::step]], 1).astype(np.int32))
                    )
        self._grid = None

    @property
    def present(self) -> list[int]:
        return sorted(self.class_pixels)

    def _grid_positions(self):
        pos = []
        for idx, it in enumerate(self.items):
            h, w = it.labels.shape
            for y in grid_starts(h, self.tile, self.stride):
                for x in grid_starts(w, self.tile, self.stride):
                    pos.append((idx, y, x))
        return pos

    def _position(self, size):
        if self.mode == "grid":
            if not self._grid:
                self._grid = self._grid_positions()
                self.rng.shuffle(self._grid)
            return self._grid.pop()
        if self.focus_share and self.rng.random() < self.focus_share:
            return self._around([(i, f) for i, f in enumerate(self.focus) if f is not None], size)
        if self.rng.random() < self.balance:
            c = self.present[self.rng.integers(len(self.present))]
            return self._around(self.class_pixels[c], size)
        idx = int(self.rng.integers(len(self.items)))
        h, w = self.items[idx].labels.shape
        return (
            idx,
            int(self.rng.integers(0, max(1, h - size + 1))),
            int(self.rng.integers(0, max(1, w - size + 1))),
        )

    def _around(self, owners, size):
        """A crop position near a pixel drawn from ``owners`` ((item index, coordinates) pairs)."""
        idx, coords = owners[self.rng.integers(len(owners))]
        cy, cx = coords[self.rng.integers(len(coords))]
        h, w = self.items[idx].labels.shape
        y = int(
            np.clip(
                cy - size // 2 + self.rng.integers(-size // 4, size // 4 + 1), 0, max(0, h - size)
            )
        )
        x = int(
            np.clip(
                cx - size // 2 + self.rng.integers(-size // 4, size // 4 + 1), 0, max(0, w - size)
            )
        )
        return idx, y, x

    def _crop(self, arr, y, x, size, fill):
        out = np.full((size, size), fill, dtype=arr.dtype)
        part = arr[y : y + size, x : x + size]
        out[: part.shape[0], : part.shape[1]] = part
        return out

    def sample(self):
        """One (image, labels) crop of ``tile`` x ``tile``, augmented."""
        for _ in range(100):
            size = self.tile
            if self.augment and self.scale_jitter > 0 and self.mode != "grid":
                size = int(
                    round(
                        self.tile * np.exp(self.rng.uniform(-self.scale_jitter, self.scale_jitter))
                    )
                )
            idx, y, x = self._position(size)
            it = self.items[idx]
            lab = self._crop(it.labels, y, x, size, 0)
            labelled = lab > 0
            if not labelled.any():
                continue
            if self.cutout is not None:
                frac = (
                    np.bincount(lab[labelled], minlength=self.n_classes + 1).max() / labelled.sum()
                )
                if frac > self.cutout:
                    continue
            img = self._crop(it.image, y, x, size, self.fill[idx])
            if size != self.tile:
                img, lab = _resize_pair(img, lab, self.tile)
            if self.augment:
                img, lab = self._augment(img, lab)
            return np.ascontiguousarray(img, np.float32), np.ascontiguousarray(lab, np.uint8)
        raise InputError(
            "no training tile passes the filters; lower --cutout or check that the labels hold "
            "several classes"
        )

    def batch(self, n: int):
        pairs = [self.sample() for _ in range(n)]
        return np.stack([p[0] for p in pairs])[:, None], np.stack([p[1] for p in pairs])

    def _augment(self, img, lab):
        k = int(self.rng.integers(4))
        img, lab = np.rot90(img, k), np.rot90(lab, k)
        if self.rng.random() < 0.5:
            img, lab = img[:, ::-1], lab[:, ::-1]
        # detector settings: contrast, brightness and gamma vary between images
        lo, hi = float(img.min()), float(img.max())
        span = max(hi - lo, 1e-3)
        g = np.exp(self.rng.uniform(-0.3, 0.3))
        img = lo + span * np.clip((img - lo) / span, 0, 1) ** g
        img = img * np.exp(self.rng.uniform(-self.contrast, self.contrast)) + self.rng.uniform(
            -0.1, 0.1
        )
        # sharpness: resampling to the model's pixel size (and lower magnifications or
        # slower scans) smooth the grain texture; half the crops get a Gaussian blur
        if self.blur > 0 and self.rng.random() < 0.5:
            from scipy.ndimage import gaussian_filter

            img = gaussian_filter(
                np.asarray(img, np.float32), self.rng.uniform(0.0, self.blur), mode="reflect"
            )
        if self.lowmag > 0 and self.rng.random() < self.lowmag:
            # shrunk by the enlargements prediction restores texture for
            from ..condition import TEXTURE_FACTORS

            img = lower_magnification(
                np.asarray(img, np.float32),
                float(self.rng.uniform(*TEXTURE_FACTORS)),
                int(self.rng.integers(2**31)),
            )
        if self.noise > 0:
            img = img + self.rng.normal(0, self.noise * self.rng.random(), img.shape)
        return img, lab


def lower_magnification(img: np.ndarray, factor: float, seed: int) -> np.ndarray:
    """``img`` (normalised) as a microscope would record the same field ``factor`` times
    coarser, enlarged back to its size as prediction enlarges it: shrunk with
    anti-aliasing, its own pixel-scale texture restored at the coarser grid (an SEM's
    per-pixel noise does not depend on the magnification), enlarged linearly and given
    back 4 grey levels of texture (``predict.restore_texture``)."""
    from skimage.transform import resize

    from ..condition import restore_texture, texture

    h, w = img.shape
    small = resize(
        img,
        (max(8, round(h / factor)), max(8, round(w / factor))),
        order=1,
        anti_aliasing=True,
        preserve_range=True,
    ).astype(np.float32)
    small = restore_texture(small, target=texture(img), seed=seed)
    big = resize(small, (h, w), order=1, anti_aliasing=False, preserve_range=True).astype(
        np.float32
    )
    return restore_texture(big, seed=seed + 1)


def _resize_pair(img, lab, size):
    from skimage.transform import resize

    img = resize(img, (size, size), order=1, preserve_range=True, anti_aliasing=False).astype(
        np.float32
    )
    lab = resize(lab, (size, size), order=0, preserve_range=True, anti_aliasing=False).astype(
        np.uint8
    )
    return img, lab
