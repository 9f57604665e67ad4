"""Validation during and after training: IoU on the held-back blocks, and a check of what a
finished model learned against a quick random forest."""

from __future__ import annotations

import numpy as np
import torch

from ..analysis.metrics import per_class_iou
from ..events import Progress
from ..models.forest import PixelForest
from .sampler import TrainImage


def eval_iou(model_fn, val: list[TrainImage], n_classes: int, dev) -> np.ndarray:
    """Per-class IoU on the validation blocks, pooled over blocks."""
    preds, truths = [], []
    with torch.inference_mode():
        for it in val:
            x = torch.from_numpy(it.image[None, None]).to(dev)
            preds.append(model_fn(x)[0].cpu().numpy())
            truths.append(it.labels)
    return per_class_iou(
        np.concatenate([p.ravel() for p in preds]),
        np.concatenate([t.ravel() for t in truths]),
        n_classes,
    )


#: a labelled class below this validation IoU was not learned
NOT_LEARNED = 0.05
#: a model this far below a quick random forest's validation mean IoU learned too little
FOREST_MARGIN = 0.1
#: training pixels up to which the quick random forest is fitted for the comparison
FOREST_CHECK_PIXELS = 2_000_000


def quality_warnings(model, scheme, train_items, val, from_scratch: bool, seed: int):
    """Generator returning the warnings for a model that learned little, judged on the
    validation blocks: a labelled class with IoU below :data:`NOT_LEARNED`, or a mean IoU
    :data:`FOREST_MARGIN` below a quick random forest fitted on the same training pixels
    (only from scratch and up to :data:`FOREST_CHECK_PIXELS`, so that it stays cheap)."""
    if not val:
        return []
    k = scheme.n_classes
    cpu = torch.device("cpu")
    iou = eval_iou(lambda x: model.probabilities(x).argmax(1) + 1, val, k, cpu)
    present = sorted(set(np.unique(np.concatenate([v.labels.ravel() for v in val]))) - {0})
    if not present:
        return []
    warnings = [
        f"class '{scheme.names[c - 1]}' was not learned (validation IoU "
        f"{iou[c - 1]:.2f}): give training more time, label more pixels of it, or "
        f"try the random-forest method (rf)"
        for c in present
        if iou[c - 1] < NOT_LEARNED
    ]
    mean = float(np.mean([iou[c - 1] for c in present]))
    pixels = sum(it.image.size for it in train_items)
    if from_scratch and pixels <= FOREST_CHECK_PIXELS:
        yield Progress("check", 0, 1, message="a quick random forest to compare with")
        forest = PixelForest(model.info).fit(
            [it.image for it in train_items],
            [it.labels for it in train_items],
            n_trees=10,
            seed=seed,
        )
        pred = [forest.probabilities(v.image).argmax(0) + 1 for v in val]
        rf = per_class_iou(
            np.concatenate([p.ravel() for p in pred]),
            np.concatenate([v.labels.ravel() for v in val]),
            k,
        )
        rf_mean = float(np.mean([rf[c - 1] for c in present]))
        if mean < rf_mean - FOREST_MARGIN:
            warnings.append(
                f"validation mean IoU {mean:.2f} is far below a quick random "
                f"forest's {rf_mean:.2f} on the same blocks: give training more time or use "
                f"the random-forest method (rf)"
            )
    yield Progress(
        "check", 1, 1, message="; ".join(f"warning: {w}" for w in warnings) or "model checked"
    )
    return warnings
