"""The region outside an image's field of view: detection, per slice of a volume, and a note.

A CT reconstruction is a disc (a cylinder in a volume) inside a square image,
and an aligned serial-section stack has constant margins where a slice was
shifted; the pixels outside hold one constant (0, the minimum or maximum, a
pad grey, or NaN) and are no rock at all.  Labelled as a phase, they would
count as (usually) pore space.  Detection is conservative, because a false
positive hides real rock: when a rule is not clearly met the answer is None.

A pixel is outside the view when all of these hold:

* it equals exactly one constant that fills a small block at a corner of the
  image: a view that is convex and smaller than the image cannot contain all
  four corners (it would then contain their hull, the whole image), so at
  least one corner is outside; this O(1) check also lets almost every
  ordinary image leave at once;
* it is connected to the image border through pixels of that constant;
* the outside covers at least ``MIN_SHARE`` of the image;
* the rest (the view) is convex: only a small part of the outside candidate
  may lie within the view's convex hull (a disc, an ellipse, a rectangle, a
  rotated or shifted rectangle).  Dark clipped pores or a data bar's
  background touching the border lie within the hull of the rock around
  them, so they never count; pixels of the constant that lie within the hull
  (say a pore of value 0 at the rim of a CT disc) stay in the view.

NaN pixels connected to the border are outside in any case: they carry no
grey value, so calling them outside can hide nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import InputError
from .io.volume_base import Volume

#: The outside must cover at least this share of the image: a 1 % border is
#: worth leaving out of phase fractions; anything smaller is noise or a pore.
MIN_SHARE = 0.01
#: At most this share of the outside candidate (and of the view's convex hull)
#: may lie within that hull.  Digitising a disc's rim leaves well under 1 %;
#: a pore touching the border lies almost wholly within the hull of the rock.
MAX_CONCAVE = 0.05
#: Side of the block at a corner that must be one constant: a shifted slice's
#: margin or a disc's corner is much thicker, one stray pixel is not enough.
CORNER = 3
#: Images smaller than this (in either direction) are never said to have a border.
MIN_SIDE = 16
#: Slices of a volume that are read to decide whether its view is fixed.
SAMPLE_SLICES = 5
#: Sampled slices whose masks differ in at most this share of the pixels share
#: one fixed view (a CT cylinder); otherwise each slice has its own (alignment).
SAME_VIEW = 0.005


def _same(values: np.ndarray, value) -> np.ndarray:
    """``values == value``, where NaN equals NaN."""
    if isinstance(value, float) and np.isnan(value):
        return np.isnan(values)
    return values == value


def _corner_values(g: np.ndarray) -> list:
    """The constants that fill a ``CORNER`` x ``CORNER`` block at a corner of ``g``."""
    c = CORNER
    found = []
    for block in (g[:c, :c], g[:c, -c:], g[-c:, :c], g[-c:, -c:]):
        first = block.flat[0]
        value = float(first) if g.dtype.kind == "f" else first.item()
        if _same(block, value).all() and not any(_same(np.asarray([value]), v)[0] for v in found):
            found.append(value)
    return found


def _border_connected(candidate: np.ndarray) -> np.ndarray:
    """The pixels of ``candidate`` connected (4-neighbours) to the image border."""
    from scipy import ndimage as ndi  # here: ordinary images never get past the corner gate

    labels, n = ndi.label(candidate)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    edge = edge[edge > 0]
    if edge.size == n:  # the usual outside: every piece touches the border
        return candidate
    if edge.size <= 4:  # e.g. a disc's four corners: a few comparisons beat a lookup
        out = np.zeros(candidate.shape, dtype=bool)
        for k in edge:
            out |= labels == k
        return out
    keep = np.zeros(n + 1, dtype=bool)
    keep[edge] = True
    return keep[labels]


def _hull_rows(view: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Per row, the first and last column (inclusive; ``lo > hi`` for none) of the
    pixels whose centres lie within the convex hull of the ``view`` pixels' centres.

    Only each row's first and last view pixel can be a hull vertex, so the hull
    is built from those and intersected with each row: cheaper than a generic
    convex-hull image of a full-size plane."""
    height, width = view.shape
    rows = np.flatnonzero(view.any(axis=1))
    if rows.size == 0:
        return None
    sub = view[rows]
    left = sub.argmax(axis=1)
    right = width - 1 - sub[:, ::-1].argmax(axis=1)
    lo = np.full(height, width, dtype=np.int64)
    hi = np.full(height, -1, dtype=np.int64)
    points = np.column_stack([np.concatenate([left, right]), np.concatenate([rows, rows])])
    from scipy.spatial import ConvexHull, QhullError

    try:
        hull = ConvexHull(points)
    except QhullError:  # all in one row or column: the view's extent is its hull
        lo[rows], hi[rows] = left.min(), right.max()
        return lo, hi
    # Each hull facet a*x + b*y + c <= 0 bounds x on row y: intersect them all.
    a, b, c = hull.equations.T
    y = np.arange(rows[0], rows[-1] + 1, dtype=float)[:, None]
    tol = 1e-6
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = -(b * y + c) / a
    low = np.where(a < -tol, bound, -np.inf).max(axis=1)
    high = np.where(a > tol, bound, np.inf).min(axis=1)
    span = slice(rows[0], rows[-1] + 1)
    lo[span] = np.clip(np.ceil(low - tol), 0, width)
    hi[span] = np.clip(np.floor(high + tol), -1, width - 1)
    return lo, hi


def _convex_outside(outside: np.ndarray) -> np.ndarray | None:
    """``outside`` less what lies within the view's convex hull, or None when the view
    is not convex enough (the outside candidate is then a pore or an annotation)."""
    view = ~outside
    bounds = _hull_rows(view)
    if bounds is None:
        return None
    lo, hi = bounds
    hull_area = int(np.clip(hi - lo + 1, 0, None).sum())
    # Every view pixel lies within the hull, so the rest of the hull is outside.
    concave = hull_area - int(np.count_nonzero(view))
    if concave > MAX_CONCAVE * min(np.count_nonzero(outside), hull_area):
        return None
    kept = outside.copy()
    for row in np.flatnonzero(hi >= lo):
        kept[row, lo[row] : hi[row] + 1] = False
    return kept


def outside_view(grey: np.ndarray) -> np.ndarray | None:
    """Boolean mask of the pixels of a 2-D grey plane outside the field of view, or None.

    See the module's docstring for the rules; None when unsure, when the image
    is smaller than ``MIN_SIDE`` or holds a single value."""
    g = np.asarray(grey)
    if g.ndim != 2 or min(g.shape) < MIN_SIDE:
        return None
    nan_out = None
    if g.dtype.kind == "f":
        nan = np.isnan(g)
        if nan.all():
            return None
        nan_out = _border_connected(nan) if nan.any() else None
    values = [v for v in _corner_values(g) if not (isinstance(v, float) and np.isnan(v))]
    outside = None
    if values:
        candidate = _is_outside(g, values)
        if nan_out is not None:
            candidate |= nan_out
        if np.count_nonzero(candidate) >= MIN_SHARE * g.size and not candidate.all():
            connected = _border_connected(candidate)
            if np.count_nonzero(connected) >= MIN_SHARE * g.size:
                outside = _convex_outside(connected)
    if outside is not None and np.count_nonzero(outside) < MIN_SHARE * g.size:
        outside = None
    if nan_out is not None and nan_out.any():
        outside = nan_out if outside is None else outside | nan_out
    if outside is None or outside.all():
        return None
    return outside


def in_view(grey: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """The pixels of ``grey`` inside its field of view, as a (1, N) image for the intensity
    statistics (training and prediction take them alike); ``grey`` itself without a mask."""
    return grey if mask is None else grey[~mask][None]


def outside_values(grey: np.ndarray, mask: np.ndarray) -> tuple:
    """The constants found outside the view: Python numbers, NaN last."""
    found = np.asarray(grey)[mask]
    values = []
    if found.dtype.kind == "f" and np.isnan(found).any():
        found = found[~np.isnan(found)]
        values.append(float("nan"))
    return tuple(v.item() for v in np.unique(found)) + tuple(values)


def _is_outside(values, constants) -> np.ndarray:
    """Which of ``values`` equal one of ``constants`` (NaN equals NaN)."""
    values = np.asarray(values)
    hit = np.zeros(values.shape, dtype=bool)
    for value in constants:
        hit |= _same(values, value)
    return hit


@dataclass
class VolumeView:
    """Where a (z, y, x) volume lies outside its field of view, one slice at a time.

    A volume's outside mask would be as large as the volume, so none is built:
    ``plane(z)`` answers for one slice.  ``fixed`` is the 2-D mask every sampled
    slice shares (a CT cylinder); it is used for a slice whose pixels under it
    all hold the outside constants, so that all slices of a cylinder get the
    same mask (a slice's own detection could differ by a rim pore).  Otherwise
    (an aligned stack, whose margins differ from slice to slice, or a slice
    where the fixed mask does not fit) the slice's own ``outside_view`` is used."""

    data: object = field(repr=False)
    fixed: np.ndarray | None
    #: the constants found outside in the sampled slices
    values: tuple
    #: the mean share of the sampled slices that lies outside
    share: float

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.data.shape)

    def plane(self, z: int, grey: np.ndarray | None = None) -> np.ndarray:
        """The 2-D mask of slice ``z`` (all False when it has no outside).

        Pass ``grey`` (the slice, already read) to save reading it again."""
        grey = np.asarray(self.data[z] if grey is None else grey)
        if self.fixed is not None and grey.shape == self.fixed.shape:
            if _is_outside(grey[self.fixed], self.values).all():
                return self.fixed
        mask = outside_view(grey)
        return np.zeros(grey.shape, dtype=bool) if mask is None else mask

    def __getitem__(self, z: int) -> np.ndarray:
        return self.plane(z)


def _sampled(n_slices: int) -> np.ndarray:
    count = min(n_slices, SAMPLE_SLICES)
    return np.unique(np.linspace(0, n_slices - 1, count).round().astype(int))


def outside_view_volume(data) -> VolumeView | None:
    """The field of view of a (z, y, x) volume (numpy, dask, zarr or an io ``Volume``),
    from at most ``SAMPLE_SLICES`` slices spread over z; None when none shows one.

    Sampled slices that agree (to ``SAME_VIEW`` of their pixels) give one fixed
    mask, their intersection (outside in every one of them: conservative);
    otherwise every slice gets its own, detected when it is asked for."""
    if isinstance(data, Volume):
        data = data.data
    if len(data.shape) != 3:
        raise InputError(
            f"a field of view of a volume needs (z, y, x) data, not shape {tuple(data.shape)}; "
            "use outside_view for a 2-D image"
        )
    masks, values = [], []
    for z in _sampled(int(data.shape[0])):
        grey = np.asarray(data[int(z)])
        mask = outside_view(grey)
        masks.append(mask)
        if mask is not None:
            values.extend(v for v in outside_values(grey, mask) if not _is_outside(v, values))
    found = [m for m in masks if m is not None]
    if not found:
        return None
    share = float(np.mean([0.0 if m is None else m.mean() for m in masks]))
    fixed = None
    if len(found) == len(masks) and all(
        np.count_nonzero(m ^ found[0]) <= SAME_VIEW * m.size for m in found
    ):
        fixed = np.logical_and.reduce(found)
        fixed.flags.writeable = False  # handed to every slice: nobody may edit it
    return VolumeView(data=data, fixed=fixed, values=tuple(values), share=share)


def _number(value) -> str:
    if isinstance(value, float) and np.isnan(value):
        return "NaN"
    return f"{value:g}" if isinstance(value, float) else str(value)


def view_note(mask, grey: np.ndarray | None = None) -> str:
    """One line for a report: how much lies outside the view and what is done with it.

    ``mask`` is a 2-D mask from ``outside_view`` (pass ``grey`` to name the
    constant) or a ``VolumeView``."""
    if isinstance(mask, VolumeView):
        share, values, where = mask.share, mask.values, "volume"
    else:
        mask = np.asarray(mask, dtype=bool)
        share, where = float(mask.mean()), "image"
        values = () if grey is None else outside_values(grey, mask)
    percent = f"{100 * share:.1f}" if share >= 0.001 else "under 0.1"
    constant = ""
    if values:
        noun = "value" if len(values) == 1 else "values"
        constant = f" (constant {noun} {', '.join(_number(v) for v in values)})"
    return (
        f"{percent} % of the {where} lies outside the field of view{constant}; "
        "it is left unlabelled and out of the phase fractions"
    )
