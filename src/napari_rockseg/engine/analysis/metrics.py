"""Scores of a segmentation against ground truth: confusion matrix and per-class IoU.

Pixels whose truth is 0 (unlabelled) or that lie outside the mask (the data bar) never count.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError


def unlabelled_bottom_rows(pred: np.ndarray) -> int:
    """Rows at the bottom that a prediction left entirely 0: the data bar that
    `segment` skipped (0 when the whole prediction is empty)."""
    filled = (np.asarray(pred) > 0).any(axis=1)
    if not filled.any():
        return 0
    return int(np.argmax(filled[::-1]))


def _confusion_full(pred, truth, n_classes: int, mask=None) -> np.ndarray:
    """(K, K+1) counts: rows truth 1..K, columns prediction 1..K and "no class"
    (0 or above K) as the last column."""
    pred = np.asarray(pred)
    truth = np.asarray(truth)
    if pred.shape != truth.shape:
        raise InputError(
            f"prediction ({pred.shape[1]} x {pred.shape[0]}) and truth "
            f"({truth.shape[1]} x {truth.shape[0]}) differ in size"
        )
    keep = (truth > 0) & (truth <= n_classes)
    if mask is not None:
        keep &= mask
    t = truth[keep].astype(np.int64) - 1
    p = pred[keep].astype(np.int64) - 1
    p = np.where((p >= 0) & (p < n_classes), p, n_classes)
    cm = np.bincount(t * (n_classes + 1) + p, minlength=n_classes * (n_classes + 1))
    return cm.reshape(n_classes, n_classes + 1)


def confusion_matrix(pred, truth, n_classes: int, mask=None) -> np.ndarray:
    """(K, K) counts; rows = truth class 1..K, columns = predicted class 1..K."""
    return _confusion_full(pred, truth, n_classes, mask)[:, :n_classes]


def per_class_iou(pred, truth, n_classes: int, mask=None) -> np.ndarray:
    """Per-class IoU; a class absent from prediction and truth scores 1.0
    (the semantics of ``average_iou_tensor`` in the original work).  A
    labelled pixel predicted as no class counts against its truth class."""
    full = _confusion_full(pred, truth, n_classes, mask).astype(np.float64)
    inter = np.diag(full[:, :n_classes])
    union = full.sum(axis=1) + full[:, :n_classes].sum(axis=0) - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def evaluate(pred, truth, n_classes: int, mask=None) -> dict:
    """IoU per class, mean IoU, confusion matrix and pixel accuracy.  Raises InputError when
    no pixel is compared (the truth is all unlabelled, or the mask excludes every labelled
    pixel): every class would score the 1.0 of "absent from both", which measures nothing."""
    full = _confusion_full(pred, truth, n_classes, mask)
    cm = full[:, :n_classes]
    total = int(full.sum())
    if total == 0:
        raise InputError(
            f"nothing to compare: the truth has no pixel labelled 1 to {n_classes} "
            "outside the excluded rows (all unlabelled, another class scheme "
            "(--classes), or a --data-bar that covers them)"
        )
    iou = per_class_iou(pred, truth, n_classes, mask)
    return {
        "iou": [float(v) for v in iou],
        "miou": float(iou.mean()),
        "confusion": cm.tolist(),
        "accuracy": float(np.trace(cm) / total),
        "pixels": total,
    }
