"""What every model carries besides its weights."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..classes import SHALE, ClassScheme
from ..condition import intensity_bounds, normalize, sample_grid

NORMALIZATIONS = ("median", "percentile", "none")
#: below this fraction of its bit depth (0.5-99.5 % range), an image counts as low-contrast
LOW_CONTRAST = 0.125
#: the contrast a low-contrast image is stretched to when the model records none
TYPICAL_CONTRAST = 0.5
#: an image whose contrast is below this share of the model's training images' is stretched to
#: it (held-out images at half the detector contrast: mean IoU 0.411 -> 0.515; README, Intensity
#: normalisation); images above it keep the contrast the microscope recorded
CONTRAST_FLOOR = 0.6


def nominal_range(grey) -> float:
    """The full scale of the detector's bit depth, inferred from the largest
    sampled value: 1 (float images in [0, 1]), 255, 4095 or 65535."""
    top = float(np.max(sample_grid(grey))) if grey.size else 0.0
    for full in (1.0, 255.0, 4095.0, 65535.0):
        if top <= full:
            return full
    return top


def contrast_of(grey) -> float:
    """The image's 0.5-99.5 % grey range as a fraction of its bit depth's full scale."""
    sample = sample_grid(grey)
    lo, hi = intensity_bounds(sample)
    return (hi - lo) / nominal_range(sample)


def _pixel_size(px) -> float | None:
    """A model's training pixel size: None, or a plausible number of nm."""
    from ..options import PIXEL_SIZE_RANGE

    if px is None:
        return None
    lo, hi = PIXEL_SIZE_RANGE
    if isinstance(px, bool) or not isinstance(px, (int, float)) or not lo <= px <= hi:
        raise ValueError(f"its training pixel size {px!r} nm is not between {lo:g} and {hi:g} nm")
    return float(px)


def _optional(d: dict, key: str) -> float | None:
    v = d.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1e6:
        raise ValueError(f"its {key} {v!r} is not a finite non-negative number")
    return float(v)


@dataclass
class ModelInfo:
    """Class scheme, intensity normalisation, training pixel size (nm, or None
    when the training images had none), data-bar rule and provenance."""

    scheme: ClassScheme = SHALE
    pixel_size_nm: float | None = None
    normalization: str = "median"
    data_bar: str | int = "auto"
    provenance: dict = field(default_factory=dict)
    #: mean contrast (:func:`contrast_of`) of the training images; low-contrast images are stretched
    #: to it
    contrast: float | None = None
    #: mean pixel-scale texture (``predict.texture``, normalised units) of the training images at
    #: the model's scale: the reference of prediction's texture floor and pixel-noise ceiling
    texture: float | None = None

    def to_dict(self) -> dict:
        return {
            "scheme": self.scheme.to_dict(),
            "pixel_size_nm": self.pixel_size_nm,
            "normalization": self.normalization,
            "data_bar": self.data_bar,
            "provenance": self.provenance,
            "contrast": self.contrast,
            "texture": self.texture,
        }

    @classmethod
    def from_dict(cls, d: dict) -> ModelInfo:
        """From a model file's metadata; ValueError for anything a model could not carry
        (an implausible pixel size, a data-bar rule that is neither "auto" nor rows, ...)."""
        if not isinstance(d, dict):
            raise TypeError("the model information is not a JSON object")
        norm = d.get("normalization", "percentile")  # bundles before "median" existed
        if norm not in NORMALIZATIONS:
            raise ValueError(f"unknown normalization {norm!r}")
        bar = d.get("data_bar", "auto")
        if bar != "auto" and (
            isinstance(bar, bool) or not isinstance(bar, int) or not 0 <= bar <= 10**6
        ):
            raise ValueError(f"the data-bar rule must be 'auto' or a number of rows, not {bar!r}")
        provenance = d.get("provenance", {})
        if not isinstance(provenance, dict):
            raise TypeError("the provenance is not a JSON object")
        return cls(
            ClassScheme.from_dict(d["scheme"]),
            _pixel_size(d.get("pixel_size_nm")),
            norm,
            bar,
            dict(provenance),
            _optional(d, "contrast"),
            _optional(d, "texture"),
        )

    def stats(self, grey, rows: int | None = None) -> tuple[float, float] | None:
        """The whole-image intensity statistics the normalisation needs (computed
        once for a huge image and handed to every block): (median, full scale) for
        ``median``, the (0.5, 99.5) percentiles for ``percentile``; ``rows`` limits them
        to the image above the data bar (a lazy image is sampled, never read whole)."""
        return self.stats_and_note(grey, rows)[0]

    def stats_and_note(
        self, grey, rows: int | None = None
    ) -> tuple[tuple[float, float] | None, str | None]:
        """:meth:`stats`, and a note when ``median`` stretches a low-contrast image: one
        that uses less than 1/8 of its bit depth goes to the training images' contrast,
        one below :data:`CONTRAST_FLOOR` x their contrast to that floor."""
        if self.normalization == "median":
            sample = sample_grid(grey, rows=rows)  # one pass over a huge or lazy image
            full = nominal_range(sample)
            lo, hi = intensity_bounds(sample)
            own, note = (hi - lo) / full, None
            if hi - lo < LOW_CONTRAST * full:  # e.g. 16 grey levels used out of 65536
                target = self.contrast or TYPICAL_CONTRAST
            elif self.contrast and own < CONTRAST_FLOOR * self.contrast:
                target = CONTRAST_FLOOR * self.contrast
            else:
                target = None
            if target is not None:
                full = (hi - lo) / target
                note = (
                    f"low contrast: the image's grey values span {100 * own:.0f} % of its bit "
                    f"depth "
                    f"(0.5-99.5 %), stretched {target / own:.3g}x to {100 * target:.0f} %"
                    + (
                        f" (the training images: {100 * self.contrast:.0f} %)"
                        if self.contrast
                        else ""
                    )
                )
            return (float(np.median(sample)), full), note
        if self.normalization == "percentile":
            return intensity_bounds(sample_grid(grey, rows=rows)), None
        return None, None

    def normalize(self, grey: np.ndarray, stats=None) -> np.ndarray:
        """Grey pixels -> network input (float32).

        ``median`` (default): the image's median grey (the dominant phase) moved to 0,
        the bit depth's full scale to 4, so brightness offsets between detector
        settings vanish while the grey-level differences between phases stay as the
        microscope measured them; an image that uses less than 1/8 of its bit depth
        is first stretched to the training images' contrast; ``percentile``: the
        0.5-99.5 % range stretched to [-2, 2]; ``none``: raw values. ``stats`` are the
        whole image's (from :meth:`stats`) when ``grey`` is one block of it."""
        if self.normalization == "none":
            return np.asarray(grey, np.float32)
        if self.normalization == "median":
            med, full = stats if stats is not None else self.stats(grey)
            return (np.asarray(grey, np.float32) - med) * np.float32(4.0 / full)
        return (normalize(grey, bounds=stats) - 0.5) / 0.25
