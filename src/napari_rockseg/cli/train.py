"""`rockseg train`: fit a model on images and painted labels; data-parallel with torchrun.
Its options (defaults, ranges, help) come from engine/options.TRAIN."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..engine import options
from ..engine.errors import InputError, RockSegError
from ._common import _bar, _clean, _load, add_arguments, labels_scheme

#: options of TRAIN that are not TrainConfig fields of the same name (converted in _config)
_CONVERTED = ("pixel_size", "threads", "half", "alpha", "noise", "device")
INTERRUPTED = 130


def _values(args) -> dict:
    """The training options given on the command line, checked (one line naming the option)."""
    values = {name: getattr(args, name) for name in options.TRAIN}
    keep_as_is = values["pixel_size"] == 0  # every image as it is, whatever its pixel size
    if keep_as_is:
        values["pixel_size"] = None
    values = options.check_all(values, options.TRAIN)
    if keep_as_is:
        values["pixel_size"] = 0.0
    if values["stride"] is not None and values["stride"] > values["tile"] * 4:
        raise InputError(
            f"--stride {values['stride']} leaves most of the images unseen with "
            f"--tile {values['tile']}; give at most 4x the tile"
        )
    if values["tile"] < 2 ** values["depth"]:
        raise InputError(
            f"--tile {values['tile']} is too small for --depth {values['depth']}: "
            f"give a tile of at least {2 ** values['depth']} pixels or a smaller "
            f"depth"
        )
    return values


def _alpha(text):
    if not text:
        return None
    try:
        alpha = [float(a) for a in text.split(",")]
    except ValueError:
        raise InputError(f"--alpha must be numbers separated by commas, got {text!r}") from None
    if not all(0 <= a <= 1 for a in alpha):
        raise InputError(f"--alpha values must be between 0 and 1, got {text}")
    return alpha[0] if len(alpha) == 1 else alpha


def _check_out(out: Path, inputs: list[Path], overwrite: bool) -> None:
    """A model path ends in .safetensors, is none of the inputs, and replaces an existing
    file only when asked (issue #32: a run must never overwrite its own training image)."""
    resolved = out.resolve()
    for p in inputs:
        if Path(p).resolve() == resolved:
            raise InputError(f"--out {out} is one of the training inputs; give another file name")
    if out.suffix != ".safetensors":
        raise InputError(f"--out {out}: a model file must end in .safetensors")
    if out.exists() and not overwrite:
        raise InputError(
            f"--out {out} exists; pass --overwrite to replace it, or give another name"
        )


def _config(args, values, out, device):
    from ..engine.training.config import TrainConfig

    fields = {k: v for k, v in values.items() if k not in _CONVERTED}
    deep = args.method in ("ensemble", "unet", "bag")
    return TrainConfig(
        **fields,
        alpha=_alpha(values["alpha"]),
        noise=values["noise"] * options.GREY_LEVEL,
        pixel_size_nm=values["pixel_size"],
        device=device,
        sampling="grid" if values["stride"] else "random",
        checkpoint=str(args.checkpoint)
        if args.checkpoint
        else (str(out) + ".ckpt.pt" if deep else None),
    )


def cmd_train(args):
    values = _values(args)
    from ..engine.training.data import pairs_in_dir

    if args.data_dir:
        image_paths, label_paths = pairs_in_dir(args.data_dir)
        source = str(args.data_dir)
    elif args.images and args.labels:
        image_paths, label_paths = args.images, args.labels
        source = ", ".join(map(str, image_paths))
    else:
        raise RockSegError("give --data-dir DIR, or --images A.tif ... with --labels A.tif ...")
    # --classes, else the scheme saved beside the labels (napari), else shale with a note
    scheme, scheme_note = labels_scheme(label_paths[0] if label_paths else "", args.classes)
    out = Path(args.out)
    _check_out(out, [*image_paths, *label_paths], args.overwrite)
    import shlex

    from ..engine.io import check_writable
    from ..engine.threads import configure_threads
    from ..engine.training.distributed import init_distributed
    from ..engine.training.trainer import Trainer
    from ..engine.training.volume_data import load_pairs

    check_writable(out)  # fail now, not after hours of training
    configure_threads(values["threads"])
    rank, device = init_distributed(values["device"])
    images, labels = load_pairs(image_paths, label_paths, scheme, voxel_depth_nm=args.voxel_depth)
    init = _load(args.init) if args.init else None
    cfg = _config(args, values, out, device)
    trainer = Trainer(
        cfg,
        images,
        labels,
        scheme,
        init=init,
        resume=args.resume,
        data_source=source,
        command=shlex.join(["rockseg", *args.argv]),
    )
    for note in ([_clean(scheme_note)] if scheme_note else []) + trainer.notes:
        print(f"note: {note}", file=sys.stderr)  # after the data were checked: an error is one line
    return _run(trainer, args, cfg, out, rank, values["half"])


def _run(trainer, args, cfg, out: Path, rank: int, half: bool) -> int:
    from ..engine.models import bundle
    from ..engine.training.distributed import end_distributed

    t0 = time.perf_counter()
    interrupted = False
    try:
        model = _bar(trainer.run(), f"train {cfg.method}", quiet=rank != 0)
    except KeyboardInterrupt:
        interrupted = True
        model = trainer.result()
        if model is None:
            end_distributed(wait=False)
            kept = f"; {out} is unchanged" if out.exists() else ""
            print(
                f"rockseg: interrupted before the first validation: nothing written{kept}",
                file=sys.stderr,
            )
            return INTERRUPTED
        print(
            f"interrupted: saving the best model validated so far ({_steps_text(model)}) to {out}",
            file=sys.stderr,
        )
    end_distributed(wait=not interrupted)
    if rank != 0:
        return INTERRUPTED if interrupted else 0
    bundle.save_model(model, out, half=half)
    print(f"wrote {out} ({cfg.method}, {time.perf_counter() - t0:.0f} s)")
    scored = [h for h in trainer.history if "miou" in h]
    for stage in dict.fromkeys(h["stage"] for h in scored):  # each stage kept its own best weights
        best = max(
            (h for h in scored if h["stage"] == stage), key=lambda h: h.get("score", h["miou"])
        )
        print(f"best validation mIoU {best['miou']:.3f} at {best['stage']} step {best['step']}")
    for warning in getattr(trainer, "warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    ckpt = Path(cfg.checkpoint) if cfg.checkpoint else None
    if not interrupted and ckpt is not None and not (args.checkpoint or args.keep_checkpoint):
        ckpt.unlink(missing_ok=True)  # the model is saved; a resume would have nothing left to do
        for stale in ckpt.parent.glob(f".{ckpt.name}*"):  # temporary files of a killed write
            stale.unlink(missing_ok=True)
    return INTERRUPTED if interrupted else 0


def _steps_text(model) -> str:
    steps = getattr(model, "info", None) and model.info.provenance.get("steps")
    return ", ".join(f"{stage} step {n}" for stage, n in steps.items()) if steps else "no steps"


def add_parser(sub) -> None:
    t = sub.add_parser(
        "train", help="train a model (U-Net, bag of U-Nets, ensemble, forest or LDA)"
    )
    t.add_argument("--data-dir", type=Path, help="folder with images/ and labels/ (matching names)")
    t.add_argument(
        "--images",
        nargs="+",
        type=Path,
        help="images, or volumes (multi-page TIFF, OME-TIFF, zarr) painted on a few slices",
    )
    t.add_argument(
        "--labels",
        nargs="+",
        type=Path,
        help="their labels: 2-D masks, or label volumes (0 = unpainted)",
    )
    t.add_argument(
        "--voxel-depth",
        type=float,
        metavar="NM",
        help="volumes: the slice spacing in nm, for files that do not record it",
    )
    t.add_argument("--out", required=True, type=Path, help="model file to write (.safetensors)")
    t.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    t.add_argument("--classes", type=Path, help="class scheme JSON (default: shale)")
    t.add_argument(
        "--checkpoint",
        type=Path,
        help="checkpoint file, kept after training (default: OUT.ckpt.pt, deleted once "
        "the "
        "model is saved)",
    )
    t.add_argument(
        "--keep-checkpoint", action="store_true", help="keep OUT.ckpt.pt after the model is saved"
    )
    t.add_argument("--resume", type=Path, help="continue a run from its checkpoint")
    t.add_argument("--init", type=Path, help="fine-tune this model bundle")
    add_arguments(t, options.TRAIN)
    t.set_defaults(func=cmd_train)
