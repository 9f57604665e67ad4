"""A bag's networks blended with its forest and brought to the image's size, with the trees
walked only where they can change a label when labels are all that is asked for.

The forest enters the blend with weight w: ``(1 - w) * nets + w * forest``.  It moves the
difference of two classes' probabilities by at most w, so where the networks' first class
leads their second by more than w / (1 - w) (a quarter for the shipped default's 0.2) that
class stays first; on the shale sample 96 % of the pixels at the model's scale are such.
The resize to the image's pixels (linear, without anti-aliasing: each output pixel a
weighted mean of a cell of 2 x 2 model pixels) keeps a class first where it is first with
that lead at all four; the trees walk the pixels of every other cell that is read, so those
output pixels get the full blend's values.  The labels equal the full blend's
(tests/test_blend.py), at a fraction of the forest's cost on the CPU."""

from __future__ import annotations

import numpy as np

from ..condition import resize_maps
from ..filters import axis_coordinates

#: room for float32 rounding in the comparisons of margins
SLACK = 1e-4


def blend_to_shape(model, nets: np.ndarray, x: np.ndarray, shape, device, labels_only=False):
    """(K, H, W) probabilities of one plane: the networks' ``nets`` (K, h, w) at the model's
    scale blended with the model's forest on the conditioned plane ``x`` (if it has one) and
    resized to ``shape`` (H, W).  With ``labels_only`` the values are the full blend's where
    the forest may decide the label, elsewhere the networks' share alone: the same argmax."""
    forest, w = getattr(model, "forest", None), float(getattr(model, "forest_weight", 0.0))
    shape = tuple(shape)
    same = shape == nets.shape[1:]
    if forest is None or w == 0:
        return nets if same else resize_maps(nets, shape)
    h, wd = nets.shape[1:]
    # sparse only where each output pixel reads a 2 x 2 cell (no anti-aliasing Gaussian)
    linear = same or (shape[-1] >= wd and min(h, wd) >= 2)
    if not labels_only or not linear or len(nets) < 2:
        probs = model.blend(nets, x, device)
        return probs if same else resize_maps(probs, shape)
    top = np.partition(nets, -2, axis=0)
    sure = top[-1] - top[-2] > w / (1 - w) + SLACK
    walk = ~sure
    if not same:  # the cells that output pixels read, unless one class leads at all four
        lead = np.where(sure, np.argmax(nets, axis=0), -1)
        bad = (lead[:-1, :-1] < 0) | (lead[:-1, :-1] != lead[1:, :-1])
        bad |= (lead[:-1, :-1] != lead[:-1, 1:]) | (lead[:-1, :-1] != lead[1:, 1:])
        read = np.zeros_like(bad)
        read[
            np.ix_(
                np.unique(axis_coordinates(h, shape[0])[0]),
                np.unique(axis_coordinates(wd, shape[1])[0]),
            )
        ] = True
        bad &= read
        walk = np.zeros_like(sure)
        for dy in (0, 1):
            for dx in (0, 1):
                walk[dy : dy + h - 1, dx : dx + wd - 1] |= bad
    blended = (1 - w) * nets  # the forest's share is added where its trees walk
    if walk.any():
        f = forest.probabilities(x, device=device, where=walk)[:, walk]
        f *= w  # as model.blend computes it: the same float32 operations
        f += (1 - w) * nets[:, walk]
        blended[:, walk] = f
    return blended if same else resize_maps(blended, shape)
