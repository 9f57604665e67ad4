"""Losses for imbalanced segmentation.  Label 0 means unlabelled everywhere:
those pixels contribute nothing, so sparse painted labels train correctly.

Functional cores take logits, integer targets (0 = ignore, 1..K = class) and
return a scalar.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError

_EPS = 1e-6


def _zero(logits):
    return logits.sum() * 0.0  # keeps the graph, so backward works on all-ignored batches


# -- binary (one class against the rest) -----------------------------------
def binary_focal(logits, target, valid, alpha: float = 0.25, gamma: float = 2.0):
    """Binary focal loss (Lin et al. 2017), mean over valid pixels.

    ``logits`` (N,1,H,W) or (N,H,W); ``target`` bool/0-1 of the positive
    class; ``valid`` bool.  ``alpha`` weights positives, ``1 - alpha``
    negatives, as in the original work's focal-dice loss.
    """
    logits = logits.reshape(target.shape).float()
    t = target.float()
    v = valid.float()
    if v.sum() == 0:
        return _zero(logits)
    logp = F.logsigmoid(logits)
    lognp = F.logsigmoid(-logits)
    logpt = t * logp + (1 - t) * lognp
    pt = logpt.exp()
    at = t * alpha + (1 - t) * (1 - alpha)
    loss = -at * (1 - pt).pow(gamma) * logpt
    return (loss * v).sum() / v.sum()


def binary_dice(logits, target, valid):
    """Soft dice loss of the positive class over valid pixels of the batch."""
    logits = logits.reshape(target.shape).float()
    p = torch.sigmoid(logits) * valid
    t = target.float() * valid
    inter = (p * t).sum()
    return 1 - (2 * inter + _EPS) / (p.sum() + t.sum() + _EPS)


def binary_focal_dice(
    logits, target, valid, alpha: float = 0.25, gamma: float = 2.0, dice_weight=1.0
):
    return binary_focal(logits, target, valid, alpha, gamma) + dice_weight * binary_dice(
        logits, target, valid
    )


# -- multi-class ---------------------------------------------------------
def _split(logits, labels):
    """Valid mask and 0-based targets (0 where invalid)."""
    valid = labels > 0
    target = (labels.long() - 1).clamp(min=0)
    return valid, target


def cross_entropy(logits, labels, weight=None):
    """Cross-entropy over labelled pixels, optional per-class ``weight`` (K,)."""
    valid, target = _split(logits, labels)
    if not valid.any():
        return _zero(logits)
    t = torch.where(valid, target, torch.full_like(target, -100))
    w = (
        None
        if weight is None
        else torch.as_tensor(weight, dtype=logits.dtype, device=logits.device)
    )
    return F.cross_entropy(logits.float(), t, weight=w, ignore_index=-100)


def focal(logits, labels, alpha=None, gamma: float = 2.0):
    """Multi-class focal loss: -alpha_c (1 - p_t)^gamma log p_t over labelled pixels;
    ``alpha`` is a per-class weight vector (K,) or None (all 1)."""
    valid, target = _split(logits, labels)
    if not valid.any():
        return _zero(logits)
    logp = F.log_softmax(logits.float(), dim=1)
    logpt = logp.gather(1, target.unsqueeze(1)).squeeze(1)
    loss = -(1 - logpt.exp()).pow(gamma) * logpt
    if alpha is not None:
        a = torch.as_tensor(alpha, dtype=loss.dtype, device=loss.device)
        loss = loss * a[target]
    v = valid.float()
    return (loss * v).sum() / v.sum()


def soft_dice(logits, labels, present_only: bool = True):
    """Mean over classes of 1 - soft dice on labelled pixels.  With
    ``present_only`` a class absent from the batch's labels is skipped (its
    dice is undefined there and would only push its probability to 0)."""
    valid, target = _split(logits, labels)
    if not valid.any():
        return _zero(logits)
    k = logits.shape[1]
    p = torch.softmax(logits.float(), dim=1) * valid.unsqueeze(1)
    t = F.one_hot(target, k).permute(0, 3, 1, 2).float() * valid.unsqueeze(1)
    dims = (0, 2, 3)
    inter = (p * t).sum(dims)
    denom = p.sum(dims) + t.sum(dims)
    dice = 1 - (2 * inter + _EPS) / (denom + _EPS)
    if present_only:
        present = t.sum(dims) > 0
        return dice[present].mean()
    return dice.mean()


def focal_dice(logits, labels, alpha=None, gamma: float = 2.0, dice_weight: float = 1.0):
    return focal(logits, labels, alpha, gamma) + dice_weight * soft_dice(logits, labels)


def lovasz_softmax(logits, labels):
    """Lovasz-softmax loss (Berman et al. 2018): the convex extension of 1 - IoU, averaged
    over the classes present in the batch's labels, on labelled pixels.  For hard
    (one-hot) probabilities it equals 1 - IoU of each class exactly, so it optimises the
    measure the project is scored with rather than a surrogate of it."""
    valid, target = _split(logits, labels)
    if not valid.any():
        return _zero(logits)
    k = logits.shape[1]
    keep = valid.reshape(-1)
    p = torch.softmax(logits.float(), dim=1).permute(0, 2, 3, 1).reshape(-1, k)[keep]
    t = target.reshape(-1)[keep]
    per_class = []
    for c in range(k):
        fg = (t == c).float()
        if not fg.any():
            continue
        err, order = torch.sort((fg - p[:, c]).abs(), descending=True)
        fg = fg[order]
        # 1 - IoU after the first i errors, and its increments: the extension's gradient
        n_fg = fg.sum()
        jaccard = 1 - (n_fg - fg.cumsum(0)) / (n_fg + (1 - fg).cumsum(0))
        grad = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])
        per_class.append((err * grad).sum())  # not torch.dot: autocast would take it to float16
    return torch.stack(per_class).mean()


def focal_dice_lovasz(logits, labels, alpha=None, gamma: float = 2.0):
    return focal_dice(logits, labels, alpha, gamma) + lovasz_softmax(logits, labels)


#: the names ``multiclass_loss`` knows (``rockseg train --loss``, the Train widget)
LOSSES = ("focal-dice", "focal-dice-lovasz", "focal", "ce", "dice", "lovasz")


def multiclass_loss(name: str, alpha=None, gamma: float = 2.0, class_weight=None):
    """A loss ``f(logits, labels)`` by name: focal-dice, focal-dice-lovasz, focal, ce, dice,
    lovasz."""
    if name == "focal-dice":
        return lambda lg, lb: focal_dice(lg, lb, alpha, gamma)
    if name == "focal-dice-lovasz":
        return lambda lg, lb: focal_dice_lovasz(lg, lb, alpha, gamma)
    if name == "lovasz":
        return lovasz_softmax
    if name == "focal":
        return lambda lg, lb: focal(lg, lb, alpha, gamma)
    if name == "ce":
        return lambda lg, lb: cross_entropy(lg, lb, class_weight)
    if name == "dice":
        return soft_dice
    raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")


def binary_alpha(alpha, k: int, freqs=None) -> list[float]:
    """Focal alpha of each binary member.  By default a rare class weighs its
    positives more (alpha = 1 - frequency, within 0.25..0.9)."""
    if alpha is None:
        if freqs is None:
            return [0.75] * k
        return [float(np.clip(1 - f, 0.25, 0.9)) for f in freqs]
    if isinstance(alpha, (int, float)):
        return [float(alpha)] * k
    if len(alpha) != k:
        raise InputError(f"--alpha gives {len(alpha)} values for {k} classes")
    return [float(a) for a in alpha]
