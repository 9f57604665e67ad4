"""What every volume reader shares: the :class:`Volume` (data and voxel size in nm), units,
natural slice order and the conversion of one plane to grey."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .images import _UNIT_TO_NM, to_grey

#: volumes whose grey pixels need more memory than this are read lazily (dask)
LAZY_BYTES = 512 * 2**20
#: OME-XML also allows ångström; OME-Zarr axes use UDUNITS names
_UNIT_NM = {
    **_UNIT_TO_NM,
    "Å": 0.1,
    "angstrom": 0.1,
    "picometer": 1e-3,
    "millimeter": 1e6,
    "centimeter": 1e7,
    "meter": 1e9,
}
#: tifffile's names for an axis of planes: Z slices, T frames (ImageJ stacks are
#: often saved as frames instead of slices), I / Q generic pages
_STACK_AXES = "ZTIQ"
_TILE = 256

Voxel = tuple[float | None, float | None, float | None]


@dataclass
class Volume:
    """A grey volume (z, y, x) and what is known about it."""

    data: Any
    voxel_size_nm: Voxel = (None, None, None)
    path: Path | None = None
    meta: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.data.shape)

    @property
    def stem(self) -> str:
        if self.path is None:
            return "volume"
        return re.sub(r"\.ome$", "", self.path.stem, flags=re.IGNORECASE)

    @property
    def lazy(self) -> bool:
        return not isinstance(self.data, np.ndarray)

    def is_isotropic(self, tol: float = 0.1) -> bool:
        """True when all three voxel sizes are known and differ by at most ``tol`` (relative)."""
        sizes = self.voxel_size_nm
        if any(s is None for s in sizes):
            return False
        return max(sizes) / min(sizes) - 1.0 <= tol + 1e-12


def natural_key(name: str) -> tuple:
    """Sort key that puts slice2 before slice10."""
    return tuple(int(p) if p.isdigit() else p.casefold() for p in re.split(r"(\d+)", name))


# -- reading ---------------------------------------------------------------
def _want_lazy(lazy: bool | None, nbytes: int) -> bool:
    return nbytes > LAZY_BYTES if lazy is None else bool(lazy)


def _grey_slice(plane: np.ndarray, colormap=None) -> np.ndarray:
    """One plane -> 2-D grey as ``read_image`` makes it: RGB / palette to grey,
    booleans to 0/255, non-finite values to the plane's median."""
    grey = to_grey(plane, colormap)
    if grey.dtype == bool:
        return grey.astype(np.uint8) * 255
    if grey.dtype.kind == "f":
        bad = ~np.isfinite(grey)
        if bad.any() and not bad.all():
            grey = np.where(bad, np.median(grey[~bad]), grey).astype(grey.dtype)
    return grey
