"""Segmenting files: one image (in memory, or block by block when huge) and many
images on a dask cluster with one model load per worker."""

from __future__ import annotations

import dataclasses
import glob
import json
import os
from pathlib import Path

import numpy as np
import tifffile

from .. import io
from ..analysis.rock import phase_fractions, rock_report
from ..errors import InputError
from ..events import Progress
from .segment import segment
from .stream import segment_to_file
from .window import BATCH, OVERLAP, TILE

#: images above this size are segmented block by block from a lazy view of the file
STREAM_MEGAPIXELS = 64.0


def expand_inputs(items) -> list[Path]:
    """Files, folders (their image files, :data:`io.IMAGE_SUFFIXES`) and glob patterns
    -> image paths."""
    paths: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix.lower() in io.IMAGE_SUFFIXES)
            if not found:
                raise InputError(f"{p} holds no images ({', '.join(io.IMAGE_SUFFIXES)})")
            paths += found
        elif any(ch in str(item) for ch in "*?[") and not p.exists():
            found = sorted(Path(q) for q in glob.glob(str(item)))
            if not found:
                raise InputError(f"no file matches {item}")
            paths += found
        else:
            paths.append(p)
    return paths


def megapixels(path) -> float:
    try:
        with tifffile.TiffFile(path) as tif:
            shape = tif.pages[0].shape
        return shape[0] * shape[1] / 1e6
    except Exception:
        return 0.0  # read_image reports what is wrong with the file


def check_pixel_size(pixel_size: float | None) -> None:
    """A pixel size given by the user must be a positive number of nanometres (None: not given)."""
    if pixel_size is not None and not pixel_size > 0:
        raise InputError(f"the pixel size must be a positive number of nanometres, not {pixel_size}")


def _with_pixel_size(image: io.SEMImage, pixel_size: float | None) -> tuple[io.SEMImage, list[str]]:
    """``image`` with the pixel size given by the user, and a note where that overrides
    a different one from the file's metadata."""
    if pixel_size is None:
        return image, []
    notes = []
    if image.pixel_size_nm is not None and abs(image.pixel_size_nm / pixel_size - 1) > 0.01:
        notes.append(f"the file says {image.pixel_size_nm:.4g} nm per pixel; the given {pixel_size:.4g} nm is used")
    return dataclasses.replace(image, pixel_size_nm=float(pixel_size)), notes


def predict_file(model, path, out_dir, model_name: str = "", data_bar=None, tile: int = TILE, overlap: int = OVERLAP,
                 batch_size: int = BATCH, device="auto", tta: bool = False, rescale: bool = True,
                 probabilities: bool = False, uncertainty: bool = False, report: bool = False,
                 stream: bool | None = None, pixel_size: float | None = None):
    """Generator: segment one image file and write ``<stem>_labels.tif``,
    ``<stem>_overlay.png`` (in-memory path), ``<stem>.json`` and optional maps
    into ``out_dir``; returns the JSON report as a dict. ``pixel_size`` (nm) is the
    image's pixel size where its file does not record it (or records it wrongly)."""
    check_pixel_size(pixel_size)
    path, out = Path(path), Path(out_dir)
    scheme = model.info.scheme
    if stream is None:
        stream = megapixels(path) > STREAM_MEGAPIXELS
    stem = path.stem
    opts = dict(tile=tile, overlap=overlap, batch_size=batch_size, device=device, tta=tta, rescale=rescale)
    if stream:
        image, given = _with_pixel_size(io.open_lazy(path), pixel_size)
        summary = yield from segment_to_file(model, image, out / f"{stem}_labels.tif", data_bar=data_bar, **opts)
        counts = np.asarray(summary["counts"], np.float64)
        fractions = counts / max(1.0, counts.sum())
        bar, scale, notes = summary["data_bar"], summary["scale"], given + summary["notes"]
        if probabilities or uncertainty or report:
            notes.append("probability/uncertainty maps, overlays and rock reports are not made for images "
                         "segmented block by block")
    else:
        image, given = _with_pixel_size(io.read_image(path), pixel_size)
        seg = yield from segment(model, image, data_bar=data_bar, probabilities=probabilities,
                                 uncertainty=uncertainty, **opts)
        mask = io.valid_mask(seg.labels.shape, seg.data_bar)
        fractions = phase_fractions(seg.labels, scheme.n_classes, mask)
        bar, scale, notes = seg.data_bar, seg.scale, given + seg.notes
        io.write_labels(out / f"{stem}_labels.tif", seg.labels, image.pixel_size_nm)
        io.write_png(out / f"{stem}_overlay.png", io.overlay(image.data, seg.labels, scheme))
        if seg.probabilities is not None:
            io.write_image(out / f"{stem}_probabilities.tif", seg.probabilities, compression="zlib")
        if seg.uncertainty is not None:
            io.write_image(out / f"{stem}_uncertainty.tif", seg.uncertainty, compression="zlib")
        if report:
            rock = rock_report(seg.labels, scheme, image.pixel_size_nm, mask)
            io.write_text(out / f"{stem}_report.json", json.dumps(rock, indent=2))
    result = {
        "image": str(path), "model": model_name, "model_kind": model.kind,
        "pixel_size_nm": image.pixel_size_nm, "data_bar_rows": bar, "scale": scale,
        "classes": list(scheme.names), "streamed": bool(stream),
        "phase_fractions": {n: float(f) for n, f in zip(scheme.names, fractions)}, "notes": notes,
    }
    io.write_text(out / f"{stem}.json", json.dumps(result, indent=2))
    return result


_WORKER_MODELS: dict = {}


def _predict_on_worker(model_path: str, path: str, out_dir: str, opts: dict,
                      precision: str | None = None) -> dict:
    """Runs on a dask worker: the model is loaded once per worker process; ``precision``
    is the submitting process's ROCKSEG_PRECISION (remote workers do not inherit it)."""
    from ..events import drain
    from ..models.bundle import load_model

    if precision:
        os.environ["ROCKSEG_PRECISION"] = precision
    if model_path not in _WORKER_MODELS:
        _WORKER_MODELS[model_path] = load_model(model_path)
    return drain(predict_file(_WORKER_MODELS[model_path], path, out_dir, **opts))


def predict_many(paths, out_dir, model_path, address: str | None = None, n_workers: int | None = None,
                 threads_per_worker: int = 1, **opts):
    """Generator: segment many images on a dask.distributed cluster (a local one
    unless ``address`` names a scheduler); yields Progress per finished image and
    returns the list of reports in input order."""
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise InputError("cluster runs need dask.distributed: pip install 'napari-rockseg[distributed]'") from None
    cluster = None
    if address in (None, "local"):
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    else:
        client = Client(address)
    try:
        futures = {client.submit(_predict_on_worker, str(model_path), str(p), str(out_dir), opts,
                                 os.environ.get("ROCKSEG_PRECISION"), pure=False): i
                   for i, p in enumerate(paths)}
        results: list = [None] * len(futures)
        for n, fut in enumerate(as_completed(futures), start=1):
            results[futures[fut]] = fut.result()
            yield Progress("predict", n, len(futures), message=f"{n}/{len(futures)} images")
        return results
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
