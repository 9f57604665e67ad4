"""Segmenting 3-D volumes (z, y, x) with 2-D models.

``slices``: the model on every xy slice, one model load, intensity statistics taken
once for the whole volume so that every slice is normalised alike; lazy volumes are
read, segmented and written slice by slice (flat memory).  ``triplanar``: the class
probabilities of the xy, xz and yz planes averaged (an ortho-plane consensus, as
empanada-napari does), for volumes with (nearly) isotropic voxels held in memory.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..condition import SAMPLE_PIXELS, sample_grid, scale_factor
from ..errors import InputError
from ..events import Progress
from ..fov import outside_view_volume, view_note
from ..io import read_volume, write_text, write_volume
from ..models.protocol import RAW_GREY, reads
from ..threads import refresh_threads
from .segment import region_probabilities
from .window import BATCH, OVERLAP, TILE

MODES = ("auto", "slices", "triplanar")
#: what ``auto`` picks for isotropic volumes held in memory.  Measured on a synthetic
#: isotropic volume (24 x 64 x 64) with a tiny U-Net trained on two of its xy slices
#: (tests/test_volume_segment.py::test_auto_mode_choice_is_measured): mean IoU on the
#: unpainted slices 0.9972 slices vs 0.9993 tri-planar, a toss-up for 3x the time and
#: (classes x voxels) float32 of memory, so slices
AUTO_ISOTROPIC = "slices"
#: slices the intensity statistics of a volume are sampled from
STATS_SLICES = 32
#: tri-planar keeps (classes, z, y, x) float32 sums in memory; refuse above this
TRIPLANAR_MAX_BYTES = 4 * 2**30
_ORIENTATIONS = (("xy", 0), ("xz", 1), ("yz", 2))


@dataclass
class VolumeSegmentation:
    labels: np.ndarray | None  # uint8 (z, y, x), 1..K; None when written into ``out``
    mode: str
    counts: np.ndarray  # voxels per class 1..K
    uncertainty: np.ndarray | None = None  # float32 (z, y, x), normalised entropy 0..1
    probabilities: np.ndarray | None = None  # float32 (K, z, y, x)
    notes: list = field(default_factory=list)


def volume_stats(model, data, view=None) -> tuple[tuple | None, str | None]:
    """The model's intensity statistics of a whole (possibly lazy) volume, from a grid
    sample of at most ``STATS_SLICES`` evenly spaced slices, and a low-contrast note.
    ``view``: the volume's field of view (:func:`..fov.outside_view_volume`), whose
    outside is left out of the sample."""
    if reads(model) == RAW_GREY:  # the LDA classifies raw grey values
        return None, None
    z = int(data.shape[0])
    picks = np.unique(np.linspace(0, z - 1, min(z, STATS_SLICES)).round().astype(int))
    per_slice = max(1, SAMPLE_PIXELS // len(picks))
    parts = []
    for i in picks:
        plane = np.asarray(data[int(i)])
        if view is not None:
            inside = plane[~view.plane(int(i), plane)]
            parts.append(inside[:: max(1, inside.size // per_slice)].astype(np.float32))
        else:
            parts.append(sample_grid(plane, per_slice).ravel())
    return model.info.stats_and_note(np.concatenate(parts)[None])


def resolve_mode(mode: str, voxel_size_nm, lazy: bool) -> tuple[str, list[str]]:
    """The mode to run (``slices`` or ``triplanar``) and notes on the choice."""
    from ..io import Volume

    if mode not in MODES:
        raise InputError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    iso = Volume(np.zeros((1, 1, 1)), tuple(voxel_size_nm)).is_isotropic()
    if mode == "auto":
        if iso and not lazy:
            return AUTO_ISOTROPIC, []
        return "slices", []
    if mode == "triplanar":
        if lazy:
            raise InputError(
                "tri-planar segmentation needs the volume in memory; use mode "
                "'slices' (--mode slices) for volumes read lazily"
            )
        if not iso:
            raise InputError(
                f"tri-planar segmentation needs (nearly) isotropic voxels, not "
                f"(z, y, x) = {_voxel_text(voxel_size_nm)} nm; use mode 'slices' "
                "(--mode slices) or give the voxel size (--voxel-size Z Y X)"
            )
    return mode, []


def _voxel_text(voxel) -> str:
    return ", ".join("?" if v is None else f"{v:.4g}" for v in voxel)


def _entropy(probs: np.ndarray) -> np.ndarray:
    p = np.clip(probs, 1e-8, 1.0)
    return (-(p * np.log(p)).sum(axis=0) / np.log(len(probs))).astype(np.float32)


def _plane_probs(model, plane, pixel_size_nm, bounds, opts, labels_only=False):
    """Generator: (K, h, w) probabilities of one grey plane as the 2-D path makes them, or
    (N, K, h, w) of a stack of N planes (their tiles batched through the network together);
    ``labels_only``: only their argmax is used."""
    factor, _ = scale_factor(model, pixel_size_nm, opts["rescale"])
    return (
        yield from region_probabilities(
            model,
            np.asarray(plane),
            factor,
            bounds,
            opts["tile"],
            opts["overlap"],
            opts["batch_size"],
            opts["device"],
            opts["tta"],
            labels_only=labels_only,
        )
    )


def segment_volume(
    model,
    data,
    voxel_size_nm=(None, None, None),
    mode: str = "auto",
    *,
    batch_slices: int = 8,
    tile: int = TILE,
    overlap: int = OVERLAP,
    batch_size: int = BATCH,
    device="auto",
    tta: bool = False,
    rescale: bool = True,
    probabilities: bool = False,
    uncertainty: bool = False,
    bounds=None,
    out=None,
    uncertainty_out=None,
):
    """Generator: yields ``Progress`` per slice, returns a :class:`VolumeSegmentation`.

    ``data``: a (z, y, x) grey array, numpy or lazy (dask / zarr); ``voxel_size_nm``
    (z, y, x), None where unknown.  ``mode``: ``slices``, ``triplanar`` or ``auto``.
    ``batch_slices``: slices read from a lazy volume at once.  ``bounds``: intensity
    statistics (default: :func:`volume_stats` of the whole volume).  ``out`` /
    ``uncertainty_out``: arrays (e.g. zarr) that take each slice's labels / entropy as
    it is done, instead of new in-memory volumes (slices mode only).
    """
    if getattr(data, "ndim", None) != 3 or 0 in data.shape:
        raise InputError(
            f"a volume to segment must be 3-D (z, y, x), not shape {getattr(data, 'shape', None)}"
        )
    if int(batch_slices) < 1:
        raise InputError(f"batch_slices must be 1 or more, not {batch_slices}")
    lazy = not isinstance(data, np.ndarray)
    voxel = tuple(voxel_size_nm)
    mode, notes = resolve_mode(mode, voxel, lazy)
    if mode == "triplanar" and (out is not None or uncertainty_out is not None):
        raise InputError("tri-planar segmentation returns its volumes in memory; give no out=")
    view = outside_view_volume(data)  # a CT cylinder, an aligned stack's borders: unlabelled
    notes += [view_note(view)] if view is not None else []
    if bounds is None:
        bounds, contrast_note = volume_stats(model, data, view)
        notes += [contrast_note] if contrast_note else []
    _, scale_note = scale_factor(model, voxel[2], rescale)
    notes += [scale_note] if scale_note else []
    opts = {
        "tile": tile,
        "overlap": overlap,
        "batch_size": batch_size,
        "device": device,
        "tta": tta,
        "rescale": rescale,
    }
    if mode == "triplanar":
        result = yield from _triplanar(
            model, np.asarray(data), voxel, bounds, opts, probabilities, uncertainty, view
        )
    else:
        result = yield from _slices(
            model,
            data,
            voxel,
            bounds,
            opts,
            int(batch_slices),
            probabilities,
            uncertainty,
            out,
            uncertainty_out,
            view,
        )
    result.notes = notes + result.notes
    return result


def _slices(
    model,
    data,
    voxel,
    bounds,
    opts,
    batch_slices,
    probabilities,
    uncertainty,
    out,
    uncertainty_out,
    view=None,
):
    n, h, w = (int(s) for s in data.shape)
    k = model.info.scheme.n_classes
    if probabilities and out is not None:
        raise InputError("probabilities of a volume are kept in memory; give no out=")
    labels = np.zeros((n, h, w), np.uint8) if out is None else None
    unc = np.zeros((n, h, w), np.float32) if uncertainty and uncertainty_out is None else None
    probs_all = np.zeros((k, n, h, w), np.float32) if probabilities else None
    counts = np.zeros(k, np.int64)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(1) as reader:  # the next chunk is read while this one is segmented
        ahead = reader.submit(np.asarray, data[0:batch_slices])
        for a in range(0, n, batch_slices):
            chunk = ahead.result()  # one read per chunk of a lazy volume
            refresh_threads()
            if a + batch_slices < n:
                ahead = reader.submit(np.asarray, data[a + batch_slices : a + 2 * batch_slices])
            stack = yield from _plane_probs(
                model, chunk, voxel[2], bounds, opts, not (uncertainty or probabilities)
            )
            for j, probs in enumerate(stack):
                i = a + j
                lab = (np.argmax(probs, axis=0) + 1).astype(np.uint8)
                outside = None if view is None else view.plane(i, chunk[j])
                if outside is not None:
                    lab[outside] = 0  # out of the counts and of every fraction
                counts += np.bincount(lab.ravel(), minlength=k + 1)[1:]
                (labels if out is None else out)[i] = lab
                if uncertainty:
                    ent = _entropy(probs)
                    if outside is not None:
                        ent[outside] = 0
                    (unc if uncertainty_out is None else uncertainty_out)[i] = ent
                if probs_all is not None:
                    probs_all[:, i] = probs
            done = min(n, a + batch_slices)
            el = time.perf_counter() - t0
            yield Progress(
                "slices", done, n, eta_s=el / done * (n - done), message=f"slice {done}/{n}"
            )
    return VolumeSegmentation(labels, "slices", counts, unc, probs_all)


def _triplanar(model, data, voxel, bounds, opts, probabilities, uncertainty, view=None):
    n, h, w = data.shape
    k = model.info.scheme.n_classes
    need = k * data.size * 4
    if need > TRIPLANAR_MAX_BYTES:
        raise InputError(
            f"tri-planar segmentation of {n} x {h} x {w} voxels needs "
            f"{need / 2**30:.1f} GiB for its probabilities; use mode 'slices' "
            "(--mode slices)"
        )
    acc = np.zeros((k, n, h, w), np.float32)
    total = n + h + w
    done, t0 = 0, time.perf_counter()
    for name, axis in _ORIENTATIONS:
        in_plane = [s for ax, s in enumerate(voxel) if ax != axis]
        pixel = float(np.mean(in_plane)) if None not in in_plane else None
        for i in range(data.shape[axis]):
            index = (slice(None),) * axis + (i,)
            probs = yield from _plane_probs(model, data[index], pixel, bounds, opts)
            acc[(slice(None),) + index] += probs
            done += 1
            el = time.perf_counter() - t0
            yield Progress(
                "triplanar", done, total, eta_s=el / done * (total - done), message=f"{name} planes"
            )
    acc /= len(_ORIENTATIONS)
    labels = (np.argmax(acc, axis=0) + 1).astype(np.uint8)
    unc = _entropy(acc) if uncertainty else None
    for z in range(n) if view is not None else ():
        outside = view.plane(z, data[z])
        labels[z][outside] = 0
        if unc is not None:
            unc[z][outside] = 0
    counts = np.bincount(labels.ravel(), minlength=k + 1)[1:]
    return VolumeSegmentation(labels, "triplanar", counts, unc, acc if probabilities else None)


# -- files ------------------------------------------------------------------------------
#: options of ``predict_file`` that have no meaning for a volume: noted, not an error
_IGNORED = {
    "data_bar": "volumes have no data bar",
    "probabilities": "probability volumes are not written (use segment_volume(probabilities=True))",
    "report": "run `rockseg analyze` on the labels volume for the 3-D report",
    "stream": "volumes read lazily are segmented slice by slice anyway",
}


def _outputs(stem: str, out_dir: Path, lazy: bool, uncertainty: bool) -> dict:
    ext = ".zarr" if lazy else ".tif"
    paths = {"labels": out_dir / f"{stem}_labels{ext}", "json": out_dir / f"{stem}.json"}
    if uncertainty:
        paths["uncertainty"] = out_dir / f"{stem}_uncertainty{ext}"
    return paths


def predict_volume_file(
    model,
    path,
    out_dir,
    *,
    mode: str = "auto",
    pixel_size_nm: float | None = None,
    voxel_depth_nm: float | None = None,
    uncertainty: bool = False,
    overwrite: bool = False,
    model_name: str = "",
    lazy: bool | None = None,
    **predict_opts,
):
    """Generator: segment the volume at ``path`` and write ``<stem>_labels.tif`` (``.zarr``
    for a volume read lazily) with its voxel size, ``<stem>.json`` (phase fractions,
    voxel size, mode, notes) and optionally ``<stem>_uncertainty.tif``; returns the JSON
    as a dict.  Existing outputs are kept (an error) unless ``overwrite``.  ``lazy``: read
    the volume lazily (None: above ``io.LAZY_BYTES``), segmented and written slice by slice.
    ``predict_opts``: tile, overlap, batch_size, device, tta, rescale, batch_slices;
    ``predict_file``'s data_bar / probabilities / report / stream are noted and ignored."""
    path, out_dir = Path(path), Path(out_dir)
    notes = [f"{key}: {why}" for key, why in _IGNORED.items() if predict_opts.pop(key, None)]
    if pixel_size_nm is None:
        pixel_size_nm = predict_opts.pop("pixel_size", None)  # predict_file's name for it
    predict_opts.pop("pixel_size", None)
    vol = read_volume(path, pixel_size_nm, voxel_depth_nm, lazy=lazy)
    notes += list(vol.meta.get("notes", []))  # e.g. channels read as slices, NaN slices filled
    paths = _outputs(vol.stem, out_dir, vol.lazy, uncertainty)
    taken = [str(p) for p in paths.values() if p.exists()]
    if taken and not overwrite:
        raise InputError(
            f"{', '.join(taken)} already exist(s); pass --overwrite to replace "
            "or give another --out folder"
        )
    t0 = time.perf_counter()
    if vol.lazy:
        seg = yield from _segment_to_store(model, vol, paths, mode, uncertainty, predict_opts)
    else:
        seg = yield from segment_volume(
            model, vol.data, vol.voxel_size_nm, mode, uncertainty=uncertainty, **predict_opts
        )
        yield Progress("write", 0, 1, message="writing the labels volume")
        write_volume(paths["labels"], seg.labels, vol.voxel_size_nm)
        if uncertainty:
            write_volume(paths["uncertainty"], seg.uncertainty, vol.voxel_size_nm)
        yield Progress("write", 1, 1, message="writing the labels volume")
    scheme = model.info.scheme
    fractions = seg.counts / max(1, int(seg.counts.sum()))
    if None in vol.voxel_size_nm:
        notes.append(
            f"the voxel size is partly unknown ((z, y, x) = "
            f"{_voxel_text(vol.voxel_size_nm)} nm); give --pixel-size and "
            "--voxel-depth for sizes in nm"
        )
    result = {
        "image": str(path),
        "model": model_name,
        "model_kind": getattr(model, "kind", None),
        "volume": True,
        "shape": list(vol.shape),
        "voxel_size_nm": list(vol.voxel_size_nm),
        "pixel_size_nm": vol.voxel_size_nm[2],
        "mode": seg.mode,
        "lazy": vol.lazy,
        "classes": list(scheme.names),
        "scheme": scheme.to_dict(),  # read back by `rockseg analyze` / `evaluate`
        "phase_fractions": {n: float(f) for n, f in zip(scheme.names, fractions)},
        "labels": str(paths["labels"]),
        "uncertainty": str(paths["uncertainty"]) if uncertainty else None,
        "seconds": round(time.perf_counter() - t0, 3),
        "voxels_per_s": round(math.prod(vol.shape) / max(time.perf_counter() - t0, 1e-9)),
        "notes": seg.notes + notes,
    }
    write_text(paths["json"], json.dumps(result, indent=2))
    return result


def _segment_to_store(model, vol, paths, mode, uncertainty, opts):
    """Generator: slices of a lazy volume segmented into a scratch zarr store beside the
    outputs (memory stays flat), then moved into place atomically by ``write_volume``."""
    import zarr

    n, h, w = vol.shape
    parent = paths["labels"].parent
    parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".rockseg-volume-", dir=parent) as scratch:
        chunks = (1, min(h, 1024), min(w, 1024))
        lab = zarr.open_array(
            f"{scratch}/labels", mode="w", shape=(n, h, w), dtype=np.uint8, chunks=chunks
        )
        unc = (
            zarr.open_array(
                f"{scratch}/unc", mode="w", shape=(n, h, w), dtype=np.float32, chunks=chunks
            )
            if uncertainty
            else None
        )
        seg = yield from segment_volume(
            model,
            vol.data,
            vol.voxel_size_nm,
            mode,
            out=lab,
            uncertainty=uncertainty,
            uncertainty_out=unc,
            **opts,
        )
        yield Progress("write", 0, 1, message="writing the labels volume")
        write_volume(paths["labels"], lab, vol.voxel_size_nm)
        if unc is not None:
            write_volume(paths["uncertainty"], unc, vol.voxel_size_nm)
        yield Progress("write", 1, 1, message="writing the labels volume")
    return seg
