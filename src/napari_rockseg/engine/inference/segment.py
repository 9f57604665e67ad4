"""Segmenting one image held in memory: conditioning for the model, probabilities, labels."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..condition import (
    TEXTURE_CEILING,
    _texture_scale,
    _texture_target,
    check_resample_memory,
    resize,
    resize_maps,
    restore_texture,
    scale_factor,
    smooth_texture,
)
from ..events import Progress
from ..fov import in_view, outside_view
from ..fov import view_note as fov_note
from ..io import SEMImage, detect_data_bar, resolve_data_bar, to_grey
from ..models.protocol import RAW_GREY, WHOLE_IMAGE, reads
from .blend import blend_to_shape
from .device import resolve_device
from .window import BATCH, OVERLAP, TILE, predict_proba


@dataclass
class Segmentation:
    labels: np.ndarray  # uint8 (H, W), 0 on the data bar
    data_bar: int
    scale: float  # input pixels per model pixel (1.0 when not resampled)
    probabilities: np.ndarray | None = None  # (K, H, W) float32
    uncertainty: np.ndarray | None = None  # (H, W) float32, normalised entropy 0..1
    notes: list = field(default_factory=list)


#: rows at the bottom of a huge image in which its data bar is looked for
BAR_STRIP = 1024


@dataclass
class Preparation:
    """What every prediction path decides before it predicts: the data-bar rows, the
    zoom to the model's pixel size, whole-image intensity statistics and the notes."""

    data_bar: int
    valid_rows: int
    factor: float
    bounds: object
    notes: list = field(default_factory=list)
    #: (valid_rows, W) pixels outside a CT / aligned stack's field of view (None: none)
    outside: np.ndarray | None = None


def prepare(
    model,
    data,
    pixel_size_nm=None,
    data_bar: int | None = None,
    rescale: bool = True,
    find_view: bool = False,
) -> Preparation:
    """The one preparation step of :func:`segment`, :func:`.stream.segment_to_file` and
    :func:`.stream.lazy_labels`: ``data`` may be in memory or lazy (only a bottom strip
    and a sparse sample are read).  ``data_bar``: None detects it (unless the model
    records a fixed height), a number of rows is checked and used.  ``find_view``: look for
    a field of view (:func:`..fov.outside_view`) in an image held in memory."""
    h = data.shape[0]
    if data_bar is None and model.info.data_bar != "auto":
        data_bar = int(model.info.data_bar)
    if data_bar is None:
        strip = min(h, BAR_STRIP)
        tail = to_grey(np.asarray(data[h - strip :]))
        bar = detect_data_bar(tail, max_fraction=min(1.0, 0.25 * h / strip))
    else:
        bar = resolve_data_bar(data, data_bar)
    factor, scale_note = scale_factor(model, pixel_size_nm, rescale)
    outside = view_note = None
    if isinstance(
        data, np.ndarray
    ):  # in memory; huge images streamed block by block: not looked for
        outside = outside_view(data[: h - bar])
        view_note = None if outside is None else fov_note(outside, data[: h - bar])
    bounds, contrast_note = (None, None)
    if reads(model) != RAW_GREY:
        if outside is None:
            bounds, contrast_note = model.info.stats_and_note(data, h - bar)
        else:  # the view's own statistics: the constant outside would move the median
            bounds, contrast_note = model.info.stats_and_note(in_view(data[: h - bar], outside))
    notes = [n for n in (scale_note, view_note, contrast_note) if n]
    return Preparation(bar, h - bar, factor, bounds, notes, outside)


def region_probabilities(
    model,
    region: np.ndarray,
    factor: float = 1.0,
    bounds=None,
    tile: int = TILE,
    overlap: int = OVERLAP,
    batch_size: int = BATCH,
    device="auto",
    tta: bool = False,
    labels_only: bool = False,
):
    """Generator: (K, h, w) probabilities of a grey ``region`` (no data bar), zoomed by
    ``factor`` for the model and back; ``bounds`` are whole-image intensity bounds.  A
    stack of planes (N, h, w) gives (N, K, h, w): each plane is conditioned alone, and
    their tiles share the network's batches.  ``labels_only``: only their argmax is used
    (a bag's forest then walks only where it can change a label, :mod:`.blend`)."""
    planes = region if region.ndim == 3 else region[None]
    if reads(model) == RAW_GREY:  # the original baseline: no normalisation, no resampling
        probs = np.stack([model.probabilities(p) for p in planes])
        yield Progress("predict", 1, 1)
        return probs if region.ndim == 3 else probs[0]
    x = np.stack([_condition(model, p, factor, bounds) for p in planes])
    dev = resolve_device(device) if isinstance(device, str) else device
    if reads(model) == WHOLE_IMAGE:
        yield Progress("predict", 0, 1, message="pixel features and forest")
        probs = np.stack([model.probabilities(p, device=dev) for p in x])
        yield Progress("predict", 1, 1)
    else:
        probs = yield from predict_proba(model, x, tile, overlap, batch_size, dev, tta)
        if getattr(model, "forest", None) is not None:
            yield Progress("forest", 0, 1, message="pixel features and forest")
            shape = planes.shape[1:]
            probs = np.stack(
                [blend_to_shape(model, p, xi, shape, dev, labels_only) for p, xi in zip(probs, x)]
            )
            yield Progress("forest", 1, 1, message="pixel features and forest")
    if probs.shape[2:] != planes.shape[1:]:
        probs = np.stack([resize_maps(p, planes.shape[1:]) for p in probs])
    return probs if region.ndim == 3 else probs[0]


def _condition(model, plane: np.ndarray, factor: float, bounds) -> np.ndarray:
    """One grey plane as the model's input: normalised, zoomed by ``factor``, its
    pixel-scale texture brought to what the model was trained on."""
    x = model.info.normalize(plane, bounds)
    if abs(factor - 1.0) > 0.02:
        shape = tuple(
            max(getattr(model, "multiple", 1), int(round(s * factor))) for s in plane.shape
        )
        x = resize(x, shape, order=1)
    target = _texture_target(model, factor)
    if target is not None:  # pixel noise smoothed down, missing texture given back
        x = restore_texture(smooth_texture(x, TEXTURE_CEILING * _texture_scale(model)), target)
    return x


def segment(
    model,
    image: SEMImage,
    data_bar: int | None = None,
    tile: int = TILE,
    overlap: int = OVERLAP,
    batch_size: int = BATCH,
    device="auto",
    tta: bool = False,
    rescale: bool = True,
    probabilities: bool = False,
    uncertainty: bool = False,
):
    """Generator: yields Progress, returns a :class:`Segmentation` of ``image``."""
    grey = image.data
    prep = prepare(model, grey, image.pixel_size_nm, data_bar, rescale, find_view=True)
    region = grey[: prep.valid_rows]
    k = model.info.scheme.n_classes
    check_resample_memory(
        region.shape,
        prep.factor,
        4 * (2 + k),
        "prediction",
        "segment it block by block (--stream) or as it is (--no-rescale)",
    )
    probs = yield from region_probabilities(
        model,
        region,
        prep.factor,
        prep.bounds,
        tile,
        overlap,
        batch_size,
        device,
        tta,
        labels_only=not (probabilities or uncertainty),
    )
    labels = np.zeros(grey.shape, np.uint8)
    labels[: region.shape[0]] = np.argmax(probs, axis=0) + 1
    if prep.outside is not None:  # unlabelled, so out of every fraction, like the data bar
        labels[: region.shape[0]][prep.outside] = 0
    out = Segmentation(labels, prep.data_bar, prep.factor, notes=prep.notes)
    if probabilities:
        full = np.zeros((k,) + grey.shape, np.float32)
        full[:, : region.shape[0]] = probs
        out.probabilities = full
    if uncertainty:
        p = np.clip(probs, 1e-8, 1.0)
        ent = -(p * np.log(p)).sum(axis=0) / np.log(k)
        full = np.zeros(grey.shape, np.float32)
        full[: region.shape[0]] = ent
        if prep.outside is not None:
            full[: region.shape[0]][prep.outside] = 0
        out.uncertainty = full
    return out
