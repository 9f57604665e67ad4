"""`rockseg predict`: segment images, one result set per input."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ..engine.options import PREDICT, check_all
from ._common import (
    _bar,
    _clean,
    _fractions_table,
    _load,
    _print_report,
    add_arguments,
    resume_collection,
)


def _check_inputs(args):
    """Everything about the command line that can be checked before a model is loaded
    or a folder made: options, inputs (exist, readable, sizes), the output folder and
    collisions of the result sets with the inputs, each other and earlier results."""
    from ..engine.inference import inputs
    from ..engine.io import is_volume
    from ..engine.io.write import check_output_folder

    values = check_all(
        {name: getattr(args, name) for name in PREDICT if hasattr(args, name)}, PREDICT
    )
    for name, value in values.items():
        setattr(args, name, value)
    if args.workers is not None and not 1 <= args.workers <= 1024:
        raise _input_error(f"--workers must be between 1 and 1024, got {args.workers}")
    if args.overlap >= args.tile:
        raise _input_error(f"--overlap {args.overlap} must be smaller than --tile {args.tile}")
    volumes, items = _volumes_first(args)
    paths = inputs.expand_inputs(items) if items else []
    volumes += [p for p in paths if is_volume(p)]  # multi-page stacks matched by a pattern
    paths = [p for p in paths if p not in volumes]
    for p in paths:
        inputs.check_input_file(p)
    check_output_folder(args.out)
    inputs.check_outputs(paths, args.out, args.overwrite)
    return paths, volumes


def _volumes_first(args):
    """The inputs that are volumes (multi-page stacks, OME-TIFF, zarr; a folder of slices
    with --volume) apart from the 2-D images, folders and patterns."""
    from ..engine.io import is_volume

    volumes, items = [], []
    for item in args.images:
        p = Path(item)
        folder_volume = p.is_dir() and (p.suffix.lower() == ".zarr" or args.volume)
        if folder_volume or (p.is_file() and is_volume(p)):
            volumes.append(p)
        else:
            items.append(item)
    return volumes, items


def _input_error(message):
    from ..engine.errors import InputError

    return InputError(message)


def cmd_predict(args):
    paths, volumes = _check_inputs(args)  # before torch loads: a bad input is refused at once
    from ..engine.inference import batch
    from ..models import default_model_path

    if args.precision:  # an environment variable, so that dask workers started from here inherit it
        os.environ["ROCKSEG_PRECISION"] = args.precision
    model_path = args.model or default_model_path()
    model = _load(model_path)
    from ..engine.threads import configure_threads

    if not args.cluster or volumes:  # a cluster's workers take the cores, this one waits
        configure_threads(args.threads)
    resume_collection()
    scheme = model.info.scheme
    out = Path(args.out)
    model_name = str(args.model) if args.model else "shipped default"
    opts = dict(
        model_name=model_name,
        data_bar=args.data_bar,
        tile=args.tile,
        overlap=args.overlap,
        batch_size=args.batch_size,
        device=args.device,
        tta=args.tta,
        rescale=args.rescale,
        probabilities=args.probabilities,
        uncertainty=args.uncertainty,
        report=args.report,
        stream=True if args.stream else None,
        pixel_size=args.pixel_size,
        overwrite=args.overwrite,
    )
    if args.cluster:
        address = None if args.cluster == "local" else args.cluster
        reports = _bar(
            batch.predict_many(paths, out, model_path, address, n_workers=args.workers, **opts),
            "segment",
            args.quiet,
        )
    else:
        reports = [
            _bar(batch.predict_file(model, p, out, **opts), f"segment {_clean(p.stem)}", args.quiet)
            for p in paths
        ]
    reports += [
        _bar(_volume_job(model, v, out, args, opts), f"segment {_clean(v.name)}", args.quiet)
        for v in volumes
    ]
    for report in reports:
        for note in report["notes"]:
            print(f"note: {_clean(note)}", file=sys.stderr)
        stem = Path(report["image"]).stem
        labels = report.get("labels") or out / (stem + "_labels.tif")
        print(_clean(f"{report['image']} -> {labels}"))
        rock = out / f"{stem}_report.json"
        if args.report and rock.exists():
            _print_report(report["image"], json.loads(rock.read_text()))
        else:
            print(_fractions_table(scheme.names, report["phase_fractions"].values()))
    return 0


def _volume_job(model, path, out, args, opts):
    from ..engine.inference.volume import predict_volume_file

    keep = {
        k: v
        for k, v in opts.items()
        if k
        in (
            "model_name",
            "tile",
            "overlap",
            "batch_size",
            "device",
            "tta",
            "rescale",
            "uncertainty",
        )
    }
    return predict_volume_file(
        model,
        path,
        out,
        mode=args.mode,
        pixel_size_nm=args.pixel_size,
        voxel_depth_nm=args.voxel_depth,
        overwrite=args.overwrite,
        **keep,
    )


def add_parser(sub) -> None:
    pr = sub.add_parser(
        "predict",
        help="segment images",
        description="Segment images. Each image's results (<stem>_labels.tif, _overlay.png, .json "
        "and the optional maps) are written together or not at all; an earlier result "
        "is replaced only with --overwrite; two inputs with the same name stem, or an "
        "output that would land on an input, are refused.",
    )
    pr.add_argument(
        "images",
        nargs="+",
        help="image files (TIFF, PNG, JPEG, BMP), folders of them or glob patterns; "
        "volumes: multi-page TIFF stacks, OME-TIFF, .zarr, or a folder of "
        "slices with --volume",
    )
    pr.add_argument(
        "--out", required=True, type=Path, help="output folder (made after the inputs are checked)"
    )
    pr.add_argument("--model", type=Path, help="model bundle (default: the shipped model)")
    add_arguments(pr, PREDICT)
    pr.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the earlier result set of an image (all its files)",
    )
    pr.add_argument(
        "--report", action="store_true", help="also write <stem>_report.json (rock analysis)"
    )
    pr.add_argument(
        "--stream",
        action="store_true",
        help="segment block by block from a lazy view of the file (automatic above 64 megapixels)",
    )
    pr.add_argument("--cluster", help="run on dask.distributed: 'local' or a scheduler address")
    pr.add_argument("--workers", type=int, help="workers of the local cluster (1 to 1024)")
    pr.add_argument(
        "--volume",
        action="store_true",
        help="treat each folder given as one volume (its slices in natural order)",
    )
    pr.add_argument(
        "--mode",
        choices=["auto", "slices", "triplanar"],
        default="auto",
        help="volumes: the 2-D model slice by slice, or the mean of the xy, xz and yz "
        "planes (isotropic voxels only); auto = slices",
    )
    pr.add_argument(
        "--voxel-depth",
        type=float,
        metavar="NM",
        help="volumes: the slice spacing in nm, for files that do not record it",
    )
    pr.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    pr.set_defaults(func=cmd_predict, defer_collection=True)
