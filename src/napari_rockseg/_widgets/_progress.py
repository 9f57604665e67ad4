"""One progress bar for a training job of many stages, with a time-left estimate over all of them,
and the per-class share of painted pixels that a trained model reproduces."""

from __future__ import annotations

import re
import time

import numpy as np

from ..engine.analysis.metrics import confusion_matrix
from ..engine.events import Progress

_STAGE = re.compile(r"stage (\d+)/(\d+)")


class OverallProgress:
    """Maps the Progress events of a trainer (``stage i/n`` in their message) onto one 0..1
    fraction, stages weighted by their share of the budget (``shares``, equal by default),
    and estimates the time left from the wall clock since the first training step."""

    def __init__(self, shares: list[float] | None = None):
        self.shares = shares
        self.t0 = None
        self.fraction = 0.0

    def __call__(self, ev: Progress) -> float:
        m = _STAGE.search(ev.message or "")
        if m:
            i, n = int(m.group(1)), int(m.group(2))
            shares = self.shares if self.shares and len(self.shares) == n else [1.0 / n] * n
            frac = sum(shares[: i - 1]) + shares[i - 1] * ev.fraction
        elif ev.stage in ("rf", "lda"):  # one-stage classical fits
            frac = ev.fraction
        else:  # before the networks (keep) or after them (forest, feedback): the bar waits
            frac = self.fraction
        self.fraction = max(self.fraction, frac)
        now = time.perf_counter()
        if self.t0 is None or self.fraction <= 0:
            self.t0 = now
            ev.overall_eta_s = None
        else:
            ev.overall_eta_s = (now - self.t0) / self.fraction * (1 - self.fraction)
        return self.fraction


def stroke_feedback(model, images, labels, scheme):
    """Generator: segment each training image with ``model`` and return, per class, the painted
    pixels and the share of them the model reproduces (None where nothing was painted)."""
    from ..engine.inference.segment import segment

    k = scheme.n_classes
    cm = np.zeros((k, k), np.int64)
    for j, (img, lab) in enumerate(zip(images, labels)):
        yield Progress("feedback", j, len(images), message="checking the painted pixels")
        seg = yield from _quiet(segment(model, img, uncertainty=False))
        cm += confusion_matrix(seg.labels, lab, k)
    painted = cm.sum(axis=1)
    share = [None if p == 0 else float(cm[c, c] / p) for c, p in enumerate(painted)]
    return {"class": list(scheme.names), "painted": painted.tolist(), "reproduced": share}


def _quiet(gen):
    """A nested job's events renamed, so they do not move the overall bar."""
    while True:
        try:
            ev = next(gen)
        except StopIteration as stop:
            return stop.value
        yield Progress("feedback", ev.step, ev.total, message="checking the painted pixels")
