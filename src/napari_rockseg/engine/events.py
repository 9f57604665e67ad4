"""Small records that long-running engine generators yield."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Progress:
    """One step of long work: ``step`` of ``total`` in ``stage``.

    ``loss`` is the running training loss, ``metrics`` holds validation
    results (e.g. ``{"miou": 0.6, "iou": [..]}``) when an evaluation
    happened at this step, ``eta_s`` the estimated seconds left.
    """

    stage: str
    step: int
    total: int
    loss: float | None = None
    metrics: dict = field(default_factory=dict)
    eta_s: float | None = None
    message: str = ""

    @property
    def fraction(self) -> float:
        return 0.0 if self.total <= 0 else min(1.0, self.step / self.total)


def drain(gen):
    """Run a generator of Progress events to its end and return its value."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value
