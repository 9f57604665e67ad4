"""Segmenting files: one image (in memory, or block by block when huge) and many
images on a dask cluster with one model load per worker."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from .. import io
from ..analysis.rock import phase_fractions, rock_report
from ..errors import InputError
from ..events import Progress
from ..io.write import dumps_json, json_safe, result_set
from ..threads import refresh_threads
from .inputs import STREAM_MEGAPIXELS, check_pixel_size, megapixels, output_paths
from .segment import segment
from .stream import heap_for_arrays, segment_to_file
from .window import BATCH, OVERLAP, TILE


def _with_pixel_size(image: io.SEMImage, pixel_size: float | None) -> tuple[io.SEMImage, list[str]]:
    """``image`` with the pixel size given by the user, and a note where that overrides
    a different one from the file's metadata."""
    if pixel_size is None:
        return image, []
    notes = []
    if image.pixel_size_nm is not None and abs(image.pixel_size_nm / pixel_size - 1) > 0.01:
        notes.append(
            f"the file says {image.pixel_size_nm:.4g} nm per pixel; the given {pixel_size:.4g} nm "
            f"is used"
        )
    return dataclasses.replace(image, pixel_size_nm=float(pixel_size)), notes


def predict_file(
    model,
    path,
    out_dir,
    model_name: str = "",
    data_bar=None,
    tile: int = TILE,
    overlap: int = OVERLAP,
    batch_size: int = BATCH,
    device="auto",
    tta: bool = False,
    rescale: bool = True,
    probabilities: bool = False,
    uncertainty: bool = False,
    report: bool = False,
    stream: bool | None = None,
    pixel_size: float | None = None,
    overwrite: bool = False,
):
    """Generator: segment one image file and write its result set (:data:`.inputs.OUTPUTS`):
    ``<stem>_labels.tif``, ``<stem>_overlay.png`` (in-memory path), ``<stem>.json`` and
    the optional maps into ``out_dir``, all or none (:func:`io.write.result_set`; an
    earlier set is replaced only with ``overwrite``); returns the JSON report as a dict.
    ``pixel_size`` (nm) is the image's pixel size where its file does not record it (or
    records it wrongly)."""
    check_pixel_size(pixel_size)
    refresh_threads()  # one image of many: processes may have started or ended beside this one
    path, out = Path(path), Path(out_dir)
    if stream is None:
        stream = megapixels(path) > STREAM_MEGAPIXELS
    opts = dict(
        tile=tile, overlap=overlap, batch_size=batch_size, device=device, tta=tta, rescale=rescale
    )
    # the image is opened before the result set, so that a bad input creates no output folder
    image = io.open_lazy(path) if stream else io.read_image(path)
    image, given = _with_pixel_size(image, pixel_size)
    paths = output_paths(path, out)
    with result_set(paths.values(), overwrite) as rs:
        if stream:
            summary = yield from segment_to_file(
                model, image, rs.path(paths["labels"]), data_bar=data_bar, **opts
            )
            counts = np.asarray(summary["counts"], np.float64)
            fractions = counts / max(1.0, counts.sum())
            bar, scale, notes = summary["data_bar"], summary["scale"], given + summary["notes"]
            if probabilities or uncertainty or report:
                notes.append(
                    "probability/uncertainty maps, overlays and rock reports are not "
                    "made for images segmented block by block"
                )
        else:
            seg = yield from segment(
                model,
                image,
                data_bar=data_bar,
                probabilities=probabilities,
                uncertainty=uncertainty,
                **opts,
            )
            fractions = _write_in_memory(rs, paths, model.info.scheme, image, seg, report)
            bar, scale, notes = seg.data_bar, seg.scale, given + seg.notes
        scheme = model.info.scheme
        result = {
            "image": str(path),
            "model": model_name,
            "model_kind": model.kind,
            "pixel_size_nm": image.pixel_size_nm,
            "data_bar_rows": bar,
            "scale": scale,
            "classes": list(scheme.names),
            "scheme": scheme.to_dict(),  # read back by `rockseg analyze` / `evaluate`
            "streamed": bool(stream),
            "phase_fractions": {n: float(f) for n, f in zip(scheme.names, fractions)},
            "notes": notes,
        }
        io.write_text(rs.path(paths["json"]), dumps_json(result, indent=2))
    return json_safe(result)


def _write_in_memory(rs, paths: dict, scheme, image, seg, report: bool) -> np.ndarray:
    """Write an in-memory segmentation's files into the result set ``rs``; its phase fractions."""
    mask = io.valid_mask(seg.labels.shape, seg.data_bar)
    io.write_labels(rs.path(paths["labels"]), seg.labels, image.pixel_size_nm)
    io.write_png(rs.path(paths["overlay"]), io.overlay(image.data, seg.labels, scheme))
    if seg.probabilities is not None:
        io.write_image(rs.path(paths["probabilities"]), seg.probabilities, compression="zlib")
    if seg.uncertainty is not None:
        io.write_image(rs.path(paths["uncertainty"]), seg.uncertainty, compression="zlib")
    if report:
        rock = rock_report(seg.labels, scheme, image.pixel_size_nm, mask)
        io.write_text(rs.path(paths["report"]), dumps_json(rock, indent=2))
    return phase_fractions(seg.labels, scheme.n_classes, mask)


_WORKER_MODELS: dict = {}


def _predict_on_worker(
    model_path: str, path: str, out_dir: str, opts: dict, precision: str | None = None
) -> dict:
    """Runs on a dask worker: the model is loaded once per worker process; ``precision``
    is the submitting process's ROCKSEG_PRECISION (remote workers do not inherit it)."""
    from ..events import drain
    from ..models.bundle import load_model
    from ..threads import configure_threads

    if precision:
        os.environ["ROCKSEG_PRECISION"] = precision
    if model_path not in _WORKER_MODELS:
        configure_threads(None)  # this worker's share of the machine's cores
        heap_for_arrays()  # the nanny's malloc settings halve the speed
        _WORKER_MODELS[model_path] = load_model(model_path)
    return drain(predict_file(_WORKER_MODELS[model_path], path, out_dir, **opts))


def predict_many(
    paths,
    out_dir,
    model_path,
    address: str | None = None,
    n_workers: int | None = None,
    threads_per_worker: int = 1,
    **opts,
):
    """Generator: segment many images on a dask.distributed cluster (a local one
    unless ``address`` names a scheduler); yields Progress per finished image and
    returns the list of reports in input order."""
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise InputError(
            "cluster runs need dask.distributed: pip install 'napari-rockseg[distributed]'"
        ) from None
    cluster = None
    if address in (None, "local"):
        cluster = LocalCluster(
            n_workers=n_workers,
            threads_per_worker=threads_per_worker,
            processes=True,
            dashboard_address=None,
        )
        client = Client(cluster)
    else:
        client = Client(address)
    try:
        futures = {
            client.submit(
                _predict_on_worker,
                str(model_path),
                str(p),
                str(out_dir),
                opts,
                os.environ.get("ROCKSEG_PRECISION"),
                pure=False,
            ): i
            for i, p in enumerate(paths)
        }
        results: list = [None] * len(futures)
        for n, fut in enumerate(as_completed(futures), start=1):
            results[futures[fut]] = fut.result()
            yield Progress("predict", n, len(futures), message=f"{n}/{len(futures)} images")
        return results
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
