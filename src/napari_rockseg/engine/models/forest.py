"""A random forest on multiscale pixel features (scikit-image), flattened into arrays for
pickle-free storage, with numpy and torch tree walkers."""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..filters import correlate_torch, gaussian_kernel
from .info import ModelInfo
from .protocol import WHOLE_IMAGE


def pixel_features(x: np.ndarray, sigma_max: float = 16.0, workers: int = 2) -> np.ndarray:
    """(H, W, F) multiscale grey, edge and texture features (as ilastik / APOC).  Two
    threads: as fast as one per core on two cores, with less memory in flight (a 2.7 MP
    strip: +550 MB against +770 MB)."""
    from skimage.feature import multiscale_basic_features

    return multiscale_basic_features(
        np.asarray(x, np.float32),
        intensity=True,
        edges=True,
        texture=True,
        sigma_min=1.0,
        sigma_max=sigma_max,
        workers=workers,
    ).astype(np.float32, copy=False)


#: limits of a stored forest: far above any trained one (depth 14, 60 trees, sigma_max 16)
MAX_DEPTH, MAX_TREES, SIGMA_RANGE = 64, 10_000, (1.0, 64.0)


def n_features(sigma_max: float) -> int:
    """Columns of :func:`pixel_features`: 4 per scale (intensity, edges, 2 texture)."""
    return 4 * int(np.log2(sigma_max) + 1)


def check_forest(a: dict, n_classes: int, sigma_max) -> float:
    """Check a forest's flat arrays (:meth:`PixelForest._flatten`) against each other, the
    number of classes and the features of ``sigma_max``; returns ``sigma_max``.  ValueError
    says what is wrong: a forest that passes walks in bounded time and memory."""
    lo, hi = SIGMA_RANGE
    if (
        isinstance(sigma_max, bool)
        or not isinstance(sigma_max, (int, float))
        or not lo <= sigma_max <= hi
    ):
        raise ValueError(f"sigma_max {sigma_max!r} is not between {lo:g} and {hi:g}")
    ints = ("left", "right", "feature", "roots", "depth")
    if any(a[k].ndim != 1 or a[k].dtype.kind not in "iu" for k in ints) or a["threshold"].ndim != 1:
        raise ValueError("arrays have the wrong shapes or types")
    n = a["left"].shape[0]
    if (
        n == 0
        or a["value"].shape != (n, n_classes)
        or any(a[k].shape != (n,) for k in ("right", "feature", "threshold"))
    ):
        raise ValueError(f"arrays are inconsistent with each other or the {n_classes} classes")
    if not 1 <= a["roots"].size <= MAX_TREES or a["depth"].size != 1:
        raise ValueError(f"has {a['roots'].size} trees (1 to {MAX_TREES}) or no single depth")
    depth = int(a["depth"][0])
    if not 0 <= depth <= min(MAX_DEPTH, n):
        raise ValueError(f"depth {depth} is not between 0 and {min(MAX_DEPTH, n)}")
    for k in ("left", "right", "roots"):
        if a[k].min() < 0 or a[k].max() >= n:
            raise ValueError(f"{k} points outside its {n} nodes")
    if a["feature"].min() < 0 or a["feature"].max() >= n_features(sigma_max):
        raise ValueError(
            f"uses a feature outside the {n_features(sigma_max)} of sigma_max {sigma_max:g}"
        )
    if np.isnan(a["threshold"]).any() or not np.isfinite(a["value"]).all():
        raise ValueError("holds NaN thresholds or non-finite class values")
    return float(sigma_max)


def _np_gradient(a, dim: int):
    """numpy.gradient along ``dim`` of a torch tensor: central differences inside,
    one-sided at the two ends."""
    import torch

    n = a.shape[dim]
    inner = (a.narrow(dim, 2, n - 2) - a.narrow(dim, 0, n - 2)) / 2
    first = a.narrow(dim, 1, 1) - a.narrow(dim, 0, 1)
    last = a.narrow(dim, n - 1, 1) - a.narrow(dim, n - 2, 1)
    return torch.cat([first, inner, last], dim)


def pixel_features_torch(x: np.ndarray, sigma_max: float = 16.0, device="cpu"):
    """``pixel_features`` computed with torch on ``device``, as an (H, W, F)
    float32 tensor there: per scale the Gaussian-smoothed image (scipy's kernel, edges
    repeated as scikit-image's ``gaussian`` does), its Sobel magnitude and the two
    eigenvalues of its Hessian from numpy-style gradients, in scikit-image's order.
    Float32 throughout, with no convolution (a GPU may run those in TF32), so the values
    differ from scikit-image's by rounding (at most 7e-7 on a training image).  Used on
    every device (:func:`features`): on the 2-core CPU it is 1.8x faster than scikit-image
    on a 1.9 MP image and spares a cold start of 0.9 s (scikit-image's lazy imports of
    scipy.stats and friends; research/README.md)."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(x, np.float32)).to(device)[None, None]
    if min(t.shape[2:]) < 3:  # numpy-style gradients need three pixels
        return torch.from_numpy(pixel_features(x, sigma_max)).to(device)
    n_scales = int(np.log2(sigma_max) + 1)
    feats = []
    with torch.inference_mode():
        for sigma in np.logspace(0, np.log2(sigma_max), num=n_scales, base=2):
            taps = gaussian_kernel(sigma)
            r = (len(taps) - 1) // 2
            g = correlate_torch(F.pad(t, (r, r, 0, 0), mode="replicate"), taps, 3)
            g = correlate_torch(F.pad(g, (0, 0, r, r), mode="replicate"), taps, 2)
            p = F.pad(g, (1, 1, 1, 1), mode="replicate")  # scipy's "reflect" for one pixel
            d0 = p[..., 2:, :] - p[..., :-2, :]
            d0 = (d0[..., :-2] + 2 * d0[..., 1:-1] + d0[..., 2:]) / 4
            d1 = p[..., :, 2:] - p[..., :, :-2]
            d1 = (d1[..., :-2, :] + 2 * d1[..., 1:-1, :] + d1[..., 2:, :]) / 4
            edges = torch.sqrt(d0 * d0 + d1 * d1) / float(np.sqrt(np.float32(2)))
            g0, g1 = _np_gradient(g, 2), _np_gradient(g, 3)
            hrr, hrc, hcc = _np_gradient(g0, 2), _np_gradient(g0, 3), _np_gradient(g1, 3)
            mean = (hrr + hcc) / 2
            half = torch.sqrt(hrc**2 + ((hrr - hcc) / 2) ** 2)
            feats += [g, edges, mean + half, mean - half]
        return torch.cat(feats, 1)[0].permute(1, 2, 0)


def features(x: np.ndarray, sigma_max: float = 16.0, device=None):
    """The forest's features of ``x``: :func:`pixel_features_torch` on ``device`` (the CPU
    when None), a numpy array on the CPU and a tensor elsewhere."""

    out = pixel_features_torch(x, sigma_max, device or "cpu")
    return out.numpy() if out.device.type == "cpu" else out


def _index(pick: np.ndarray, feats):
    """``pick`` as an index of the tensor ``feats`` (on its device)."""
    import torch

    return torch.from_numpy(pick).to(feats.device)


def _is_gpu(device) -> bool:
    """Whether the forest runs on ``device`` with torch (any device but the CPU)."""
    return device is not None and getattr(device, "type", str(device)) not in ("cpu", "auto")


def _child_table(a: dict) -> np.ndarray:
    """Children of every node as one int64 table, indexed by ``2 * node + go_left``."""
    return np.stack([a["right"], a["left"]], 1).ravel().astype(np.int64)


def forest_probabilities(
    a: dict, f: np.ndarray, chunk: int = 65536, workers: int | None = None
) -> np.ndarray:
    """(N, K) class probabilities of N feature rows ``f`` from the flat tree arrays ``a``
    (``PixelForest._flatten``).  Every row walks each tree for its full depth (a leaf
    points to itself), with flat ``take`` gathers on cache-sized chunks: 2x faster than
    2-D fancy indexing, the same result.  Chunks go to ``workers`` threads, by default
    torch's thread count (``--threads``; numpy lets go of the GIL in these gathers: 1.65x
    faster on two cores, the same result)."""
    if workers is None:
        import torch

        workers = torch.get_num_threads()
    nf = f.shape[1]
    k = a["value"].shape[1]
    children = _child_table(a)
    feature, threshold, value = a["feature"].astype(np.int64), a["threshold"], a["value"]
    out = np.zeros((f.shape[0], k), np.float32)
    depth = int(a["depth"][0])

    def walk(s: int) -> None:
        fc = np.ascontiguousarray(f[s : s + chunk], np.float32).ravel()
        n = fc.size // nf
        base = np.arange(n, dtype=np.int64) * nf
        acc = np.zeros((n, k), np.float32)
        for root in a["roots"]:
            node = np.full(n, root, np.int64)
            for _ in range(depth):
                go_left = fc.take(base + feature.take(node)) <= threshold.take(node)
                node = children.take(2 * node + go_left)
            acc += value.take(node, axis=0)
        out[s : s + chunk] = acc / len(a["roots"])

    starts = range(0, f.shape[0], chunk)
    if workers > 1 and len(starts) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(workers, len(starts))) as pool:
            list(pool.map(walk, starts))  # list(): raise a worker's exception here
    else:
        for s in starts:
            walk(s)
    return out


def forest_probabilities_torch(t: dict, f) -> np.ndarray:
    """``forest_probabilities`` on a torch device (a GPU): the same walk with the same
    float32 comparisons and sums in the same order, so the same probabilities up to the
    last division (a GPU multiplies by the reciprocal: at most 6e-8 apart on an H200).
    ``t`` is ``PixelForest.on_device``'s tensors; ``f`` the (N, F) features, an array or
    a tensor."""
    import torch

    dev = t["value"].device
    ff = (
        torch.as_tensor(
            np.ascontiguousarray(f, np.float32) if isinstance(f, np.ndarray) else f,
            dtype=torch.float32,
        )
        .to(dev)
        .contiguous()
    )
    n, nf = ff.shape
    flat = ff.reshape(-1)
    base = torch.arange(n, device=dev, dtype=torch.int64) * nf
    children, feature, threshold, value = t["children"], t["feature"], t["threshold"], t["value"]
    acc = torch.zeros((n, value.shape[1]), dtype=torch.float32, device=dev)
    for root in t["roots"]:
        node = torch.full((n,), int(root), dtype=torch.int64, device=dev)
        for _ in range(t["depth"]):
            go_left = flat[base + feature[node]] <= threshold[node]
            node = children[2 * node + go_left.long()]
        acc += value[node]
    return (acc / len(t["roots"])).cpu().numpy()


class PixelForest:
    """Random forest on multiscale features of the normalised image.

    Trained with scikit-learn on a class-balanced pixel sample, stored as flat
    tree arrays (no pickle) and evaluated with numpy.
    """

    kind = "rf"
    reads, texture_levels = WHOLE_IMAGE, False

    def __init__(
        self, info: ModelInfo | None = None, arrays: dict | None = None, sigma_max: float = 16.0
    ):
        self.info = info or ModelInfo()
        self.arrays = arrays
        self.sigma_max = sigma_max
        self._device_arrays = {}

    def on_device(self, device) -> dict:
        """The tree arrays as tensors on ``device``, made once per device."""
        import torch

        key = str(device)
        if key not in self._device_arrays:
            a = self.arrays
            self._device_arrays[key] = {
                "children": torch.from_numpy(_child_table(a)).to(device),
                "feature": torch.from_numpy(a["feature"].astype(np.int64)).to(device),
                "threshold": torch.from_numpy(a["threshold"].astype(np.float32)).to(device),
                "value": torch.from_numpy(a["value"].astype(np.float32)).to(device),
                "roots": [int(r) for r in a["roots"]],
                "depth": int(a["depth"][0]),
            }
        return self._device_arrays[key]

    def fit(
        self,
        images,
        labels,
        per_class: int = 20000,
        n_trees: int = 60,
        max_depth: int = 14,
        seed: int = 0,
        progress=None,
    ) -> PixelForest:
        from sklearn.ensemble import RandomForestClassifier

        rng = np.random.default_rng(seed)
        k = self.info.scheme.n_classes
        feats, ys = [], []
        for x, lab in zip(images, labels):
            f = features(x, self.sigma_max)
            feats.append(f[lab > 0])
            ys.append(lab[lab > 0])
            if progress:
                progress()
        xall, yall = np.concatenate(feats), np.concatenate(ys)
        if np.unique(yall).size < 2:
            raise InputError(
                "the training labels hold fewer than two classes; the forest needs at least two"
            )
        pick = []
        for c in range(1, k + 1):
            idx = np.nonzero(yall == c)[0]
            if idx.size:
                pick.append(rng.choice(idx, size=min(per_class, idx.size), replace=False))
        pick = np.concatenate(pick)
        rf = RandomForestClassifier(
            n_estimators=n_trees,
            max_depth=max_depth,
            min_samples_leaf=5,
            class_weight="balanced",
            n_jobs=-1,
            random_state=seed,
        )
        rf.fit(xall[pick], yall[pick])
        self.arrays = self._flatten(rf, k)
        return self

    @staticmethod
    def _flatten(rf, k: int) -> dict:
        left, right, feat, thr, val, roots = [], [], [], [], [], []
        offset = 0
        for est in rf.estimators_:
            t = est.tree_
            n = t.node_count
            roots.append(offset)
            lft = t.children_left.copy()
            rgt = t.children_right.copy()
            leaf = lft < 0
            lft[~leaf] += offset
            rgt[~leaf] += offset
            lft[leaf] = np.arange(n)[leaf] + offset  # a leaf points to itself
            rgt[leaf] = np.arange(n)[leaf] + offset
            left.append(lft)
            right.append(rgt)
            feat.append(np.where(leaf, 0, t.feature))
            thr.append(np.where(leaf, np.inf, t.threshold))
            v = t.value[:, 0, :]
            v = v / np.maximum(v.sum(axis=1, keepdims=True), 1e-12)
            full = np.zeros((n, k), np.float32)
            full[:, rf.classes_.astype(int) - 1] = v
            val.append(full)
            offset += n
        return {
            "left": np.concatenate(left).astype(np.int32),
            "right": np.concatenate(right).astype(np.int32),
            "feature": np.concatenate(feat).astype(np.int32),
            "threshold": np.concatenate(thr).astype(np.float32),
            "value": np.concatenate(val).astype(np.float32),
            "roots": np.array(roots, np.int32),
            "depth": np.array([max(e.tree_.max_depth for e in rf.estimators_)], np.int32),
        }

    def probabilities(
        self, x: np.ndarray, rows: int = 256, device=None, where: np.ndarray | None = None
    ) -> np.ndarray:
        """(K, H, W) class probabilities of the normalised image ``x``, computed in strips
        of ``rows`` rows whose features see 4 sigma_max + 2 rows of context on each side
        (the Gaussians' reach): the same result as the whole image at once, while the
        feature stack (20 floats per pixel) never holds more than one strip.  On a GPU
        ``device`` the features and the tree walk (the same, to the last division's
        rounding) run there; on the CPU the features with torch, the walk with numpy.
        ``where`` (H, W) bool: the trees walk those pixels only (the same values there),
        the others are 0."""
        gpu = _is_gpu(device)
        x = np.asarray(x, np.float32)
        h, w = x.shape
        k = self.arrays["value"].shape[1]
        halo = int(np.ceil(4 * self.sigma_max)) + 2
        out = np.zeros((k, h, w), np.float32)
        for y0 in range(0, h, rows):
            y1 = min(h, y0 + rows)
            pick = None if where is None else np.flatnonzero(where[y0:y1])
            if pick is not None and not pick.size:
                continue
            a0, a1 = max(0, y0 - halo), min(h, y1 + halo)
            feats = features(x[a0:a1], self.sigma_max, device if gpu else None)[y0 - a0 : y1 - a0]
            feats = feats.reshape(-1, feats.shape[-1])
            if pick is not None:
                feats = feats[pick if not gpu else _index(pick, feats)]
            if gpu:
                p = forest_probabilities_torch(self.on_device(device), feats)
            else:
                p = forest_probabilities(self.arrays, feats)
            if pick is None:
                out[:, y0:y1] = p.T.reshape(k, y1 - y0, w)
            else:
                ys, xs = np.divmod(pick, w)
                out[:, y0 + ys, xs] = p.T
        return out

    def tensors(self) -> dict:
        return dict(self.arrays)

    def config(self) -> dict:
        return {"sigma_max": self.sigma_max}
