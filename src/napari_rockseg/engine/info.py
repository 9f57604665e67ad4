"""What every model carries besides its weights."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .classes import SHALE, ClassScheme
from .io import normalize

NORMALIZATIONS = ("percentile", "none")


@dataclass
class ModelInfo:
    """Class scheme, intensity normalisation, training pixel size (nm, or None
    when the training images had none), data-bar rule and provenance."""

    scheme: ClassScheme = SHALE
    pixel_size_nm: float | None = None
    normalization: str = "percentile"
    data_bar: str | int = "auto"
    provenance: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"scheme": self.scheme.to_dict(), "pixel_size_nm": self.pixel_size_nm,
                "normalization": self.normalization, "data_bar": self.data_bar,
                "provenance": self.provenance}

    @classmethod
    def from_dict(cls, d: dict) -> ModelInfo:
        norm = d.get("normalization", "percentile")
        if norm not in NORMALIZATIONS:
            raise ValueError(f"unknown normalization {norm!r}")
        px = d.get("pixel_size_nm")
        return cls(ClassScheme.from_dict(d["scheme"]), None if px is None else float(px), norm,
                   d.get("data_bar", "auto"), dict(d.get("provenance", {})))

    def normalize(self, grey: np.ndarray, bounds=None) -> np.ndarray:
        """Grey pixels -> network input: robust per-image scaling centred on 0;
        ``bounds`` are the whole image's (low, high) when ``grey`` is a block."""
        if self.normalization == "none":
            return np.asarray(grey, np.float32)
        return (normalize(grey, bounds=bounds) - 0.5) / 0.25
