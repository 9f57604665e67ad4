"""An exponential moving average of the weights (Polyak averaging) kept beside training."""

from __future__ import annotations

from contextlib import contextmanager

import torch

from ..errors import InputError


class WeightAverage:
    """Exponential moving average of the weights and batch-norm statistics of ``nets``
    (Polyak averaging, as timm's ModelEmaV2): after each step, average <- d average +
    (1 - d) weights, with d = min(decay, (1 + n) / (10 + n)) after n updates so that the
    first steps' random weights fade fast.  ``applied()`` puts the average into the nets
    for a while (to validate or keep it)."""

    def __init__(self, nets, decay: float):
        if not 0 < decay < 1:
            raise InputError(f"the weight average's decay must be above 0 and below 1, not {decay}")
        self.nets, self.decay, self.updates = nets, decay, 0
        self.shadow = [{k: v.detach().clone() for k, v in n.state_dict().items()} for n in nets]

    def _pairs(self):
        for n, sh in zip(self.nets, self.shadow):
            for k, v in n.state_dict().items():
                yield sh[k], v

    @torch.no_grad()
    def update(self):
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        avg, cur = [], []
        for a, v in self._pairs():
            if v.dtype.is_floating_point:
                avg.append(a)
                cur.append(v.detach())
            else:  # batch counters
                a.copy_(v)
        torch._foreach_lerp_(avg, cur, 1 - d)

    def put(self):
        """Load the average into the nets."""
        for n, sh in zip(self.nets, self.shadow):
            n.load_state_dict(sh)

    @contextmanager
    def applied(self):
        saved = [{k: v.detach().clone() for k, v in n.state_dict().items()} for n in self.nets]
        self.put()
        try:
            yield
        finally:
            for n, st in zip(self.nets, saved):
                n.load_state_dict(st)

    def state(self) -> dict:
        out = {
            f"{i}.{k}": v.detach().cpu().clone()
            for i, sh in enumerate(self.shadow)
            for k, v in sh.items()
        }
        out["updates"] = torch.tensor(self.updates)
        return out

    def load(self, state: dict):
        self.updates = int(state["updates"])
        for i, sh in enumerate(self.shadow):
            for k in sh:
                sh[k].copy_(state[f"{i}.{k}"])
