"""What the held-out experiments share: the training pairs, the cached fold models,
each fold's held-out image natively and zoomed 2.5x, and scoring probabilities."""
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from accuracy import zoomed

from napari_rockseg.engine import bundle, io, train
from napari_rockseg.engine.analysis import evaluate
from napari_rockseg.engine.classes import SHALE
from napari_rockseg.engine.events import drain
from napari_rockseg.engine.io import resolve_data_bar
from napari_rockseg.engine.predict import region_probabilities, scale_factor, texture

torch.set_num_threads(int(os.environ.get("ROCKSEG_THREADS", "2")))  # 1 beside a training run


def window_only_texture() -> None:
    """Prediction's texture rule before session 17, for comparisons with bars measured
    then: white noise up to ``TEXTURE_TARGET`` for enlargements of 1.4-2.5x only (no
    texture floor, no pixel-noise ceiling). ``ROCKSEG_TEXTURE=window`` applies it to every
    script that imports this module."""
    from napari_rockseg.engine import predict

    current = predict._texture_target
    lo, hi = predict.TEXTURE_FACTORS
    predict._texture_target = lambda model, f: (
        predict.TEXTURE_TARGET if lo <= f <= hi and current(model, f) is not None else None)


if os.environ.get("ROCKSEG_TEXTURE") == "window":
    window_only_texture()
DATA = Path(__file__).resolve().parents[3] / "shared/data/shale-sem"
images, labels = train.load_training_pairs(*train.pairs_in_dir(DATA / "train"), SHALE)
#: the five-minute focal-dice U-Nets that benchmarks/accuracy.py caches per fold
DEFAULT_MODELS = "runs/bench2/loio{i}_4_9b4654a07b.safetensors"
#: the shipped bag's six recipes retrained on each fold (``{i}`` = held-out image)
SHIPPED_FOLDS = [f"runs/gpu2/folds/{n}_{{i}}.safetensors" for n in ("S0", "S1", "S2", "S3", "L4", "L5")]
#: each fold's 20-tree forest (bag_forest.py), blended into the shipped bag at 0.2
FOLD_FOREST = "runs/rf/rf20_{i}.safetensors"


def fold_model(i: int):
    """The model of fold ``i`` (held-out image i): the pattern given as first argument."""
    pattern = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_MODELS
    return bundle.load_model(pattern.format(i=i))


def above_bar(i: int) -> np.ndarray:
    """Training image ``i``'s grey values above its data bar."""
    g = images[i].data
    return g[: g.shape[0] - io.detect_data_bar(g)]


def with_noise(img: io.SEMImage, target: float, seed: int) -> io.SEMImage:
    """``img`` with white noise added until its texture (:func:`texture`) is ``target``."""
    g = img.data.astype(np.float32)
    noise = np.random.default_rng(seed).standard_normal(g.shape).astype(np.float32)
    lo, hi = 0.0, 4 * target
    for _ in range(20):  # bisection on the noise amplitude
        s = (lo + hi) / 2
        lo, hi = (s, hi) if texture(g + s * noise) < target else (lo, s)
    return io.SEMImage(np.clip(g + s * noise, 0, 255), img.pixel_size_nm, img.path)


def held_out_views(i: int, noisy: bool = False):
    """(tag, image, labels, data-bar rows, grey region above the bar) of held-out image
    ``i``: as it is and zoomed 2.5x (a higher magnification than any training image);
    with ``noisy`` also zoomed 2.5x plus white noise up to the native image's
    pixel-scale texture (an SEM's per-pixel noise does not depend on the magnification:
    7.5 grey levels in the 4.47 nm test image, 7.9-8.4 in the 11-14 nm training images;
    linear zooming alone leaves 1.7-1.8)."""
    zimg, zlab = zoomed(images[i], labels[i])
    views = [("native", images[i], labels[i], None), ("zoom", zimg, zlab, 0)]
    if noisy:
        b = resolve_data_bar(images[i].data, None)
        views.append(("zoom+noise", with_noise(zimg, texture(images[i].data[:-b]), seed=i), zlab, 0))
    out = []
    for tag, img, lab, bar in views:
        b = resolve_data_bar(img.data, bar)
        out.append((tag, img, lab, b, img.data[: img.data.shape[0] - b]))
    return out


#: the views of ``held_out_views(i, noisy=True)``, in order, and the header of their table
VIEWS = ("native", "zoom", "zoom+noise")
VIEW_TABLE_HEAD = ("| {} | native 1 / 2 / 3 | mean | zoomed | mean | zoomed + noise | mean |\n"
                   "|---|---|---|---|---|---|---|")


def view_row(name: str, mious: dict) -> str:
    """Table row of ``name``: per view of :data:`VIEWS`, the held-out images' mean IoUs
    (``mious[view]``, images 1 / 2 / 3) and their mean."""
    cells = []
    for view in VIEWS:
        cells += [" / ".join(f"{x:.3f}" for x in mious[view]), f"{np.mean(mious[view]):.3f}"]
    return f"| {name} | " + " | ".join(cells) + " |"


def print_option_table(res: dict, first: str, heads) -> None:
    """Markdown table of ``res[option][tag]`` (one {"miou", "iou"} per held-out image):
    per option, each tag's images 1 / 2 / 3 and their mean; then the per-class means."""
    tags = list(next(iter(res.values())))
    print(f"| {first} | " + " | ".join(f"{h} 1 / 2 / 3 | mean" for h in heads) + " |")
    print("|---|" + "---|---|" * len(tags))
    for o, by_tag in res.items():
        cells = []
        for t in tags:
            v = [r["miou"] for r in by_tag[t]]
            cells += [" / ".join(f"{x:.3f}" for x in v), f"{np.mean(v):.3f}"]
        print(f"| {o} | " + " | ".join(cells) + " |")
    for o, by_tag in res.items():
        print(f"{o}, per class (mineral / organic / pores / clay):",
              "; ".join(f"{t}: {class_means([r['iou'] for r in by_tag[t]])}" for t in tags))


def class_means(ious) -> str:
    """Per-class IoU (mineral / organic / pores / clay) averaged over held-out images."""
    return " / ".join(f"{x:.3f}" for x in np.mean(ious, 0))


def fold_forest(i: int, trees: int = 20):
    """Fold ``i``'s forest (trained on the two other images, 11.16 nm per pixel, as the
    shipped forest), cached at :data:`FOLD_FOREST` (20 trees) or beside it."""
    path = Path(FOLD_FOREST.format(i=i).replace("rf20", f"rf{trees}"))
    if not path.exists():
        rest = [j for j in range(len(images)) if j != i]
        cfg = train.TrainConfig(method="rf", trees=trees, pixel_size_nm=11.16)
        model = drain(train.Trainer(cfg, [images[j] for j in rest], [labels[j] for j in rest], SHALE).run())
        path.parent.mkdir(parents=True, exist_ok=True)
        bundle.save_model(model, path)
    return bundle.load_model(path)


def fold_bag(patterns, i: int, forest_weight: float = 0.0):
    """The bag of fold ``i``'s models named by ``patterns``, with the fold's forest
    (:data:`FOLD_FOREST`) blended at ``forest_weight`` (0: none), as prediction uses it."""
    from napari_rockseg.engine.ensemble import Bag

    forest = fold_forest(i) if forest_weight else None
    return Bag.of([bundle.load_model(p.format(i=i)) for p in patterns], forest=forest, forest_weight=forest_weight)


def probabilities(model, img, region, **kw) -> np.ndarray:
    """(K, rows, W) probabilities of ``region`` of ``img``, resampled to the model's
    pixel size and back (what ``rockseg predict`` does); ``kw`` go to region_probabilities."""
    f, _ = scale_factor(model, img)
    return drain(region_probabilities(model, region, f, **kw))


def bag_probabilities(patterns, i: int, tag: str, img, region, tta: bool = False,
                      cache: Path = Path("runs/bias")) -> np.ndarray:
    """Mean probabilities of the fold-``i`` models named by ``patterns`` on one held-out
    view, cached in ``cache`` (shared by the scripts that score decisions on top of a bag)."""
    f = cache / f"bag{len(patterns)}_{i}_{tag}_{int(tta)}.npy"
    if not f.exists():
        acc = sum(probabilities(bundle.load_model(p.format(i=i)), img, region, tta=tta) for p in patterns)
        cache.mkdir(parents=True, exist_ok=True)
        np.save(f, (acc / len(patterns)).astype(np.float32))
    return np.load(f)


def score(probs: np.ndarray, img, lab, bar: int) -> dict:
    """IoU of the argmax of (K, rows, W) probabilities of the region above the bar."""
    pred = np.zeros(img.data.shape, np.uint8)
    pred[: probs.shape[1]] = probs.argmax(0) + 1
    return evaluate(pred, lab, SHALE.n_classes, io.valid_mask(lab.shape, bar))


def altered_view(i: int, tag: str, grey: np.ndarray, lab: np.ndarray) -> tuple:
    """(tag, image, region, labels, data-bar rows) of held-out image ``i``'s region above its
    bar with its grey values replaced by ``grey`` (the same size)."""
    return tag, io.SEMImage(grey, images[i].pixel_size_nm, images[i].path), grey, lab, 0


def standard_views(i: int) -> list:
    """The three standard views of held-out image ``i`` (:data:`VIEWS`) as (tag, image,
    region, labels, data-bar rows)."""
    return [(tag, img, region, lab, bar) for tag, img, lab, bar, region in held_out_views(i, noisy=True)]


def score_options(res: dict, i: int, views: list, options, probabilities) -> None:
    """Score ``probabilities(tag, image, region, option)`` on every view of fold ``i`` for
    every option into ``res[option][tag]`` (one {"miou", "iou"} per held-out image), and
    print each score."""
    for tag, img, region, lab, bar in views:
        for o in options:
            r = score(probabilities(tag, img, region, o), img, lab, bar)
            res[o][tag].append({"miou": float(r["miou"]), "iou": [float(v) for v in r["iou"]]})
            print(f"fold {i} {tag:10s} {o:8s} {r['miou']:.3f} {np.round(r['iou'], 3)}", flush=True)


def report_options(res: dict, first: str, tags, json_path=None) -> None:
    """:func:`print_option_table`, and ``res`` written to ``json_path`` when given."""
    print_option_table(res, first, tags)
    if json_path:
        with open(json_path, "w") as fh:
            json.dump(res, fh, indent=1)
