"""The ``rockseg`` command line: thin over the engine; progress bars from its events."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from .engine.errors import RockSegError
from .engine.training.config import TrainConfig
from .engine.training.data import load_training_pairs, pairs_in_dir
from .engine.training.trainer import Trainer


def _bar(gen, desc: str, quiet: bool = False):
    """Drain an engine generator into a tqdm bar and return its result.  The bar
    appears with the first event, so input errors print one line and no bar."""
    from tqdm import tqdm

    bar = None
    stage = None
    try:
        while True:
            try:
                ev = next(gen)
            except StopIteration as stop:
                return stop.value
            if bar is None:
                bar = tqdm(total=ev.total, desc=desc, unit="step", disable=quiet, dynamic_ncols=True,
                           file=sys.stderr)
            if ev.stage != stage:
                stage = ev.stage
                bar.reset(total=ev.total)
                bar.set_description(f"{desc} [{ev.message or ev.stage}]")
            bar.total = ev.total
            bar.n = ev.step
            post = {}
            if ev.loss is not None:
                post["loss"] = f"{ev.loss:.3f}"
            if ev.metrics.get("miou") is not None:
                post["val_mIoU"] = f"{ev.metrics['miou']:.3f}"
            if post:
                bar.set_postfix(post, refresh=False)
            bar.refresh()
    finally:
        if bar is not None:
            bar.close()


def _scheme(path):
    from .engine.classes import load_scheme

    return load_scheme(path)


def _load(model_path):
    from .engine.models.bundle import load_model
    from .models import default_model_path

    return load_model(model_path or default_model_path())


def _iou_table(names, result) -> str:
    width = max(12, *(len(n) for n in names))
    lines = [f"{'class':<{width}}  IoU"]
    lines += [f"{n:<{width}}  {v:.3f}" for n, v in zip(names, result["iou"])]
    lines.append(f"{'mean IoU':<{width}}  {result['miou']:.3f}")
    return "\n".join(lines)


def _fractions_table(names, fractions) -> str:
    width = max(12, *(len(n) for n in names))
    return "\n".join(f"{n:<{width}}  {100 * f:6.2f} %" for n, f in zip(names, fractions))


# -- train -----------------------------------------------------------------
def cmd_train(args):
    import torch

    from .engine.io import check_writable
    from .engine.models import bundle

    scheme = _scheme(args.classes)
    if args.data_dir:
        image_paths, label_paths = pairs_in_dir(args.data_dir)
        source = str(args.data_dir)
    elif args.images and args.labels:
        image_paths, label_paths = args.images, args.labels
        source = ", ".join(map(str, image_paths))
    else:
        raise RockSegError("give --data-dir DIR, or --images A.tif ... with --labels A.tif ...")
    out = Path(args.out)
    check_writable(out)  # fail now, not after hours of training
    if args.threads:
        torch.set_num_threads(args.threads)
    rank, device = _init_distributed(args.device)
    images, labels = load_training_pairs(image_paths, label_paths, scheme)
    init = _load(args.init) if args.init else None
    alpha = None
    if args.alpha:
        alpha = [float(a) for a in args.alpha.split(",")]
        alpha = alpha[0] if len(alpha) == 1 else alpha
    cfg = TrainConfig(
        method=args.method, tile=args.tile, batch_size=args.batch_size, loss=args.loss, alpha=alpha,
        gamma=args.gamma, steps=args.steps, epochs=args.epochs, minutes=args.minutes, width=args.width,
        depth=args.depth, cutout=args.cutout, balance=args.balance, sampling="grid" if args.stride else "random",
        stride=args.stride, pixel_size_nm=None if args.pixel_size == 0 else args.pixel_size,
        seed=args.seed, device=device, data_bar=args.data_bar,
        checkpoint=args.checkpoint or (str(out) + ".ckpt.pt" if args.method in ("ensemble", "unet", "bag") else None),
        checkpoint_every=args.checkpoint_every, lr=args.lr, finetune_lr=args.finetune_lr,
        keep_confident=args.keep_confident, stroke_share=args.stroke_share, normalization=args.normalization,
        synth_share=args.synth_share, patience=args.patience or None, blur=args.blur, members=args.members,
        trees=args.trees, forest_weight=args.forest_weight, precision=args.precision, ema=args.ema,
        val_fraction=args.val_fraction, lowmag=args.lowmag, contrast=args.contrast,
        **({} if args.noise is None else {"noise": args.noise * 4.0 / 255}),
    )
    import shlex

    trainer = Trainer(cfg, images, labels, scheme, init=init, resume=args.resume,
                            data_source=source, command=shlex.join(["rockseg", *args.argv]))
    for note in trainer.notes:
        print(f"note: {note}", file=sys.stderr)
    t0 = time.perf_counter()
    interrupted = False
    try:
        model = _bar(trainer.run(), f"train {args.method}", quiet=rank != 0)
    except KeyboardInterrupt:
        interrupted = True
        model = trainer.result()
        if model is None:
            raise RockSegError("training interrupted before anything was learned; nothing written") from None
        print("interrupted: saving the best model validated so far", file=sys.stderr)
    _end_distributed(wait=not interrupted)
    if rank != 0:
        return 0
    bundle.save_model(model, out, half=args.half)
    print(f"wrote {out} ({args.method}, {time.perf_counter() - t0:.0f} s)")
    scored = [h for h in trainer.history if "miou" in h]
    for stage in dict.fromkeys(h["stage"] for h in scored):  # each stage kept its own best weights
        best = max((h for h in scored if h["stage"] == stage), key=lambda h: h.get("score", h["miou"]))
        print(f"best validation mIoU {best['miou']:.3f} at {best['stage']} step {best['step']}")
    return 0


def _init_distributed(device: str):
    """Join a torchrun launch (WORLD_SIZE > 1): NCCL on GPUs, gloo on CPUs.
    Returns (rank, device for this process)."""
    import os

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, device
    import torch
    import torch.distributed as dist

    use_cuda = device in ("auto", "cuda") and torch.cuda.is_available()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    elif device == "auto":
        device = "cpu"
    return dist.get_rank(), device


def _end_distributed(wait: bool = True):
    """Leave a torchrun launch: wait for every process (``wait``), then take the process
    group down, so that no process exits while the others' gloo threads still talk to it
    (which can abort a process: "terminate called without an active exception")."""
    dist = sys.modules.get("torch.distributed")  # loaded by _init_distributed when launched
    if dist is not None and dist.is_available() and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


def cmd_convert(args):
    from .engine.errors import InputError
    from .engine.models import bundle

    model = bundle.load_model(args.model)
    if args.fusion:
        if model.kind != "ensemble":
            raise InputError(f"--fusion applies to ensembles; {args.model} is a {model.kind} model")
        model.fusion = args.fusion
    bundle.save_model(model, args.out, half=args.half)
    _print_written(args.out, model.kind, args.half)
    return 0


def _print_written(path, what: str, half: bool):
    size = Path(path).stat().st_size / 1e6
    print(f"wrote {path} ({what}, {size:.1f} MB{', float16 weights' if half else ''})")


def cmd_combine(args):
    import shlex

    from .engine.models import bundle
    from .engine.models.bundle import provenance
    from .engine.models.ensemble import Bag

    models = [bundle.load_model(p) for p in args.models]
    forest = bundle.load_model(args.forest) if args.forest else None
    bag = Bag.of(models, provenance(command=shlex.join(["rockseg", *args.argv]),
                                    combined=[str(p) for p in args.models]),
                 forest=forest, forest_weight=args.forest_weight)
    bundle.save_model(bag, args.out, half=args.half)
    blend = f" + forest at weight {bag.forest_weight:g}" if forest is not None else ""
    _print_written(args.out, f"bag of {len(bag.members)} U-Nets{blend}", args.half)
    return 0


# -- predict ---------------------------------------------------------------
def cmd_predict(args):
    from .engine.inference import batch
    from .engine.io import check_writable
    from .models import default_model_path

    batch.check_pixel_size(args.pixel_size)  # before anything is loaded or written
    if args.precision:  # an environment variable, so that dask workers started from here inherit it
        os.environ["ROCKSEG_PRECISION"] = args.precision
    model_path = args.model or default_model_path()
    model = _load(model_path)
    scheme = model.info.scheme
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise RockSegError(f"--out {out} is a file; give a folder")
    paths = batch.expand_inputs(args.images)
    check_writable(out / "labels.tif")
    model_name = str(args.model) if args.model else "shipped default"
    opts = dict(model_name=model_name, data_bar=args.data_bar, tile=args.tile, overlap=args.overlap,
                batch_size=args.batch_size, device=args.device, tta=args.tta, rescale=not args.no_rescale,
                probabilities=args.probabilities, uncertainty=args.uncertainty, report=args.report,
                stream=True if args.stream else None, pixel_size=args.pixel_size)
    if args.cluster:
        reports = _bar(batch.predict_many(paths, out, model_path, None if args.cluster == "local" else args.cluster,
                                          n_workers=args.workers, **opts), "segment", args.quiet)
    else:
        reports = [_bar(batch.predict_file(model, p, out, **opts), f"segment {p.stem}", args.quiet) for p in paths]
    for report in reports:
        for note in report["notes"]:
            print(f"note: {note}", file=sys.stderr)
        stem = Path(report["image"]).stem
        print(f"{report['image']} -> {out / (stem + '_labels.tif')}")
        rock = out / f"{stem}_report.json"
        if args.report and rock.exists():
            _print_report(report["image"], json.loads(rock.read_text()))
        else:
            print(_fractions_table(scheme.names, report["phase_fractions"].values()))
    return 0


# -- evaluate --------------------------------------------------------------
def _eval_mask(pred, truth, data_bar):
    from .engine.analysis.metrics import unlabelled_bottom_rows
    from .engine.io import valid_mask

    return valid_mask(truth.shape, unlabelled_bottom_rows(pred) if data_bar is None else data_bar)


def cmd_evaluate(args):
    from .engine import io
    from .engine.analysis.metrics import evaluate

    scheme = _scheme(args.classes)
    pred = io.read_labels(args.prediction, scheme)
    truth = io.read_labels(args.truth, scheme, pred.shape)
    result = evaluate(pred, truth, scheme.n_classes, _eval_mask(pred, truth, args.data_bar))
    if args.json:
        print(json.dumps({"classes": list(scheme.names), **result}))
    else:
        print(_iou_table(scheme.names, result))
    return 0


# -- lda ---------------------------------------------------------------------
def cmd_lda(args):
    from .engine import io
    from .engine.analysis.metrics import evaluate
    from .engine.models.lda import GreyLDA

    scheme = _scheme(args.classes)
    t0 = time.perf_counter()
    images, labels = load_training_pairs(*pairs_in_dir(args.train_dir), scheme)
    masks = [io.valid_mask(i.data.shape, io.resolve_data_bar(i.data, args.data_bar)) for i in images]
    model = GreyLDA().fit([i.data for i in images], labels, masks)
    t_fit = time.perf_counter() - t0
    test_images, test_labels = load_training_pairs(*pairs_in_dir(args.test_dir), scheme)
    cms, n = None, scheme.n_classes
    for img, lab in zip(test_images, test_labels):
        mask = io.valid_mask(img.data.shape, io.resolve_data_bar(img.data, args.data_bar))
        res = evaluate(model.predict(img.data), lab, n, mask)
        cms = np.array(res["confusion"]) if cms is None else cms + np.array(res["confusion"])
        print(f"{img.path.name}:")
        print(_iou_table(scheme.names, res))
    print(f"LDA fitted on {len(images)} image(s) in {t_fit:.2f} s; total {time.perf_counter() - t0:.2f} s")
    return 0


# -- preprocess ------------------------------------------------------------
def cmd_preprocess(args):
    from tqdm import tqdm

    from .engine import io
    from .engine.inference.grid import grid_starts

    scheme = _scheme(args.classes)
    image_paths, label_paths = pairs_in_dir(args.data_dir)
    out = Path(args.output_dir)
    written = 0
    for ip, lp in tqdm(list(zip(image_paths, label_paths)), desc="export tiles", file=sys.stderr):
        img = io.read_image(ip)
        lab = io.read_labels(lp, scheme, img.data.shape)
        rows = img.data.shape[0] - io.resolve_data_bar(img.data, args.data_bar)
        for y in grid_starts(rows, args.size, args.stride):
            for x in grid_starts(img.data.shape[1], args.size, args.stride):
                t_lab = lab[y:y + args.size, x:x + args.size]
                if t_lab.shape != (args.size, args.size):
                    continue
                if args.cutout is not None:
                    frac = np.bincount(t_lab.ravel(), minlength=scheme.n_classes + 1).max() / t_lab.size
                    if frac > args.cutout:
                        continue
                name = f"{ip.stem}_{y}_{x}.tif"
                io.write_image(out / "images" / name, img.data[y:y + args.size, x:x + args.size])
                io.write_labels(out / "labels" / name, t_lab)
                written += 1
    print(f"wrote {written} tiles to {out}/images and {out}/labels")
    return 0


# -- analyze -----------------------------------------------------------------
def _label_context(path: Path, args):
    """Pixel size (nm) and data-bar rows for a label file: --pixel-size, the
    matching --image, the JSON that `rockseg predict` wrote beside it, or the
    label TIFF's own resolution tags."""
    from .engine import io

    px, bar = args.pixel_size, args.data_bar
    stem = path.stem[: -len("_labels")] if path.stem.endswith("_labels") else path.stem
    side = path.with_name(f"{stem}.json")
    images = {Path(p).stem: Path(p) for p in (args.image or [])}
    if len(args.image or []) == 1 and len(args.labels) == 1:
        images = {stem: Path(args.image[0])}
    if stem in images:
        img = io.read_image(images[stem])
        px = px or img.pixel_size_nm
        bar = io.resolve_data_bar(img.data, bar)
    elif side.exists():
        try:
            info = json.loads(side.read_text())
        except (OSError, json.JSONDecodeError):
            info = {}
        px = px or info.get("pixel_size_nm")
        bar = bar if bar is not None else info.get("data_bar_rows")
    if px is None:
        try:
            px = io.read_image(path).pixel_size_nm
        except RockSegError:
            px = None
    return px, bar or 0


def cmd_analyze(args):
    import csv
    import io as _io

    from .engine import io
    from .engine.analysis.rock import rock_report, summary_row

    scheme = _scheme(args.classes)
    reports, rows = {}, []
    for path in args.labels:
        path = Path(path)
        labels = io.read_labels(path, scheme)
        px, bar = _label_context(path, args)
        report = rock_report(labels, scheme, px, io.valid_mask(labels.shape, bar), args.min_size,
                             args.exclude_border)
        reports[str(path)] = report
        rows.append({"labels": str(path), **summary_row(report)})
        _print_report(path, report)
    out = Path(args.out)
    base = out.with_suffix("") if out.suffix.lower() in (".csv", ".json") else out
    columns = list(dict.fromkeys(k for r in rows for k in r))
    buf = _io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    io.write_text(base.with_suffix(".csv"), buf.getvalue())
    io.write_text(base.with_suffix(".json"), json.dumps(reports, indent=2))
    print(f"wrote {base.with_suffix('.csv')} and {base.with_suffix('.json')}")
    return 0


def _print_report(path, report):
    print(f"{path}:")
    px = report["pixel_size_nm"]
    print(f"  pixel size {px:.4g} nm" if px else "  pixel size unknown (sizes in pixels)")
    for name, c in report["classes"].items():
        area = f", {c['area_um2']:.3f} um2" if c["area_um2"] is not None else ""
        print(f"  {name:<16} {100 * c['fraction']:6.2f} %{area}, {c['objects']} objects")
    pores = report.get("pores")
    if pores and pores["count"]:
        print(f"  pores: {pores['count']} (d10 {pores['d10']:.1f}, d50 {pores['d50']:.1f}, "
              f"d90 {pores['d90']:.1f} {pores['unit']})")
    share = report.get("organic_hosted_pore_share")
    if share is not None:
        print(f"  organic-hosted share of pore area: {100 * share:.1f} %")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rockseg", description="Segment SEM images of rock into phases.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model (ensemble, U-Net, bag of U-Nets, forest or LDA)")
    t.add_argument("--method", choices=["ensemble", "unet", "bag", "lda", "rf"], default="unet",
                   help="unet (default: one focal-dice U-Net, best on held-out images at a 10-minute "
                        "budget), ensemble (Paw-Net stack), bag (several U-Nets trained in turn, "
                        "probabilities averaged), lda (original baseline), rf (random forest on "
                        "multiscale features)")
    t.add_argument("--members", type=int, default=4,
                   help="U-Nets in a bag (--method bag); each trains for this share of the budget")
    t.add_argument("--trees", type=int,
                   help="trees of the random forest (--method rf: 60; a bag's forest: 20)")
    t.add_argument("--forest-weight", type=float, default=0.2,
                   help="--method bag: blend the bag's probabilities with a random forest fitted on the "
                        "same images at this weight (0: no forest; default 0.2, chosen on held-out images)")
    t.add_argument("--data-dir", type=Path, help="folder with images/ and labels/ (matching names)")
    t.add_argument("--images", nargs="+", type=Path)
    t.add_argument("--labels", nargs="+", type=Path)
    t.add_argument("--out", required=True, type=Path, help="model file to write (.safetensors)")
    t.add_argument("--classes", type=Path, help="class scheme JSON (default: shale)")
    t.add_argument("--tile", type=int, default=128)
    t.add_argument("--stride", type=int, help="walk the original's stride grid instead of random crops")
    t.add_argument("--cutout", type=float, help="drop tiles where one class exceeds this fraction")
    t.add_argument("--balance", type=float, default=0.5,
                   help="share of the training crops centred on a pixel of a class drawn uniformly among "
                        "the classes present, so that rare classes are seen (default 0.5; 0: uniform crops)")
    t.add_argument("--loss", choices=["focal-dice", "focal-dice-lovasz", "focal", "ce", "dice", "lovasz"],
                   default="focal-dice",  # losses.LOSSES (no torch for --help)
                   help="multi-class loss (losses.multiclass_loss); focal-dice-lovasz adds the "
                        "Lovasz-softmax IoU loss")
    t.add_argument("--alpha", help="focal alpha: one value, or one per class separated by commas")
    t.add_argument("--gamma", type=float, default=2.0)
    t.add_argument("--epochs", type=int, help="epochs of 100 steps")
    t.add_argument("--steps", type=int)
    t.add_argument("--minutes", type=float, help="time budget (default 2000 steps when nothing is given)")
    t.add_argument("--batch-size", type=int, default=8)
    t.add_argument("--width", type=int, default=16)
    t.add_argument("--depth", type=int, default=4)
    t.add_argument("--lr", type=float, default=2e-3, help="learning rate from scratch")
    t.add_argument("--finetune-lr", type=float, default=2e-3, help="learning rate when fine-tuning (--init)")
    t.add_argument("--stroke-share", type=float, default=0.5,
                   help="fine-tuning with --keep-confident: share of the crops centred on the labelled pixels")
    t.add_argument("--keep-confident", type=float, default=0.9,
                   help="fine-tuning on sparse labels: unlabelled pixels the --init model predicts with at "
                        "least this probability are trained on with its prediction (0: labelled pixels only)")
    t.add_argument("--synth-share", type=float, default=0.3,
                   help="share of the time or step budget that the ensemble's synthesizer gets")
    t.add_argument("--patience", type=int, default=0,
                   help="stop a stage after this many validations without a better score (default 0: "
                        "never; the best validated weights are kept)")
    t.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                   help="validate and keep an exponential moving average of the weights with this decay "
                        "(e.g. 0.999; default 0: off)")
    t.add_argument("--val-fraction", type=float, default=0.2,
                   help="share of the image blocks held back to validate (default 0.2); 0: train on every "
                        "pixel and keep the weights of the lowest training loss (with --ema, the final average)")
    t.add_argument("--blur", type=float, default=0.0,
                   help="sharpness augmentation: half the training crops are blurred with a Gaussian of "
                        "sigma up to this many pixels (0: off)")
    t.add_argument("--lowmag", type=float, default=0.0,
                   help="lower-magnification augmentation: this share of the training crops is shrunk 1.4-2.5x "
                        "(noise restored) and enlarged back as prediction does (0: off)")
    t.add_argument("--contrast", type=float, default=0.2, metavar="R",
                   help="detector-contrast augmentation: each training crop's contrast is scaled by up to "
                        "exp(+-R) (default 0.2: 0.82-1.22x)")
    t.add_argument("--noise", type=float, default=None, metavar="S",
                   help="noise augmentation: white noise of sigma up to S grey levels of an 8-bit image "
                        "(1/255 of the full scale) added to each training crop (default 1.3)")
    t.add_argument("--pixel-size", type=float, default=11.16,
                   help="resample training images to this pixel size in nm (0: keep as they are)")
    t.add_argument("--normalization", choices=["median", "percentile"], default="median",
                   help="per-image intensity normalisation: median (shift the median grey to 0, keep the "
                        "microscope's contrast; default, chosen on held-out images) or percentile (stretch "
                        "the 0.5-99.5 %% range)")
    t.add_argument("--device", default="auto")
    t.add_argument("--threads", type=int, help="CPU threads for torch")
    t.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="arithmetic of the training steps: auto = float16 on CUDA, bfloat16 on "
                        "CPUs with native bfloat16 (AVX512-BF16/AMX), else float32")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--checkpoint", type=Path, help="checkpoint file (default: OUT.ckpt.pt)")
    t.add_argument("--checkpoint-every", type=int, default=100, help="steps between checkpoints")
    t.add_argument("--resume", type=Path, help="continue a run from its checkpoint")
    t.add_argument("--init", type=Path, help="fine-tune this model bundle")
    t.add_argument("--data-bar", type=int, help="rows of data bar at the bottom (default: detect; 0: none)")
    t.add_argument("--half", action="store_true", help="store the weights as float16 (half the file size)")
    t.set_defaults(func=cmd_train)

    cv = sub.add_parser("convert", help="rewrite a model bundle (e.g. with float16 weights)")
    cv.add_argument("model", type=Path)
    cv.add_argument("--out", required=True, type=Path)
    cv.add_argument("--half", action="store_true", help="store the weights as float16")
    cv.add_argument("--fusion", choices=["mean", "stacked", "binary"],  # ensemble.FUSIONS (no torch for --help)
                    help="the ensemble fusion the bundle uses by default")
    cv.set_defaults(func=cmd_convert)

    cb = sub.add_parser("combine", help="bag trained U-Nets: one model that averages their probabilities")
    cb.add_argument("models", nargs="+", type=Path, help="U-Net (or bag) bundles trained on the same images")
    cb.add_argument("--out", required=True, type=Path)
    cb.add_argument("--half", action="store_true", help="store the weights as float16")
    cb.add_argument("--forest", type=Path,
                    help="random forest (rockseg train --method rf) to blend with the bag's probabilities")
    cb.add_argument("--forest-weight", type=float, default=0.2,
                    help="the forest's share of the blended probabilities (default 0.2, chosen on held-out images)")
    cb.set_defaults(func=cmd_combine)

    pr = sub.add_parser("predict", help="segment images")
    pr.add_argument("images", nargs="+",
                    help="image files (TIFF, PNG, JPEG, BMP), folders of them or glob patterns")
    pr.add_argument("--out", required=True, type=Path, help="output folder")
    pr.add_argument("--model", type=Path, help="model bundle (default: the shipped model)")
    pr.add_argument("--data-bar", type=int)
    pr.add_argument("--tile", type=int, default=512, help="largest tile (pixels); tiles shrink to fit the image")
    pr.add_argument("--overlap", type=int, default=64)
    pr.add_argument("--batch-size", type=int, default=2)
    pr.add_argument("--device", default="auto")
    pr.add_argument("--tta", action="store_true", help="average the 8 flips/rotations")
    pr.add_argument("--precision", choices=["auto", "fp32", "bf16"],
                    help="network arithmetic: auto (default) = float16 on CUDA, bfloat16 on CPUs "
                         "with native bfloat16 (AVX512-BF16/AMX; 1.5-1.9x faster, <0.03 %% of "
                         "labels change), else float32")
    pr.add_argument("--no-rescale", action="store_true", help="do not resample to the model's pixel size")
    pr.add_argument("--pixel-size", type=float, metavar="NM",
                    help="the images' pixel size in nm, for files that do not record it (overrides their metadata)")
    pr.add_argument("--probabilities", action="store_true", help="also write class probabilities")
    pr.add_argument("--uncertainty", action="store_true", help="also write a per-pixel entropy map")
    pr.add_argument("--report", action="store_true", help="also write <stem>_report.json (rock analysis)")
    pr.add_argument("--stream", action="store_true",
                    help="segment block by block from a lazy view of the file (automatic above 64 megapixels)")
    pr.add_argument("--cluster", help="run on dask.distributed: 'local' or a scheduler address")
    pr.add_argument("--workers", type=int, help="workers of the local cluster")
    pr.add_argument("--quiet", action="store_true")
    pr.set_defaults(func=cmd_predict)

    e = sub.add_parser("evaluate", help="per-class IoU of a prediction against ground truth")
    e.add_argument("prediction", type=Path)
    e.add_argument("truth", type=Path)
    e.add_argument("--classes", type=Path)
    e.add_argument("--data-bar", type=int, help="rows to exclude at the bottom (default: those the "
                                                  "prediction left unlabelled)")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_evaluate)

    lda = sub.add_parser("lda", help="the original comparison: LDA on grey values, train and test")
    lda.add_argument("--train-dir", required=True, type=Path)
    lda.add_argument("--test-dir", required=True, type=Path)
    lda.add_argument("--classes", type=Path)
    lda.add_argument("--data-bar", type=int)
    lda.set_defaults(func=cmd_lda)

    an = sub.add_parser("analyze", help="porosity, phase fractions, pore sizes of label images")
    an.add_argument("labels", nargs="+", type=Path)
    an.add_argument("--out", required=True, type=Path, help="report path: writes REPORT.csv and REPORT.json")
    an.add_argument("--classes", type=Path)
    an.add_argument("--image", nargs="+", type=Path, help="source image(s): pixel size and data bar")
    an.add_argument("--pixel-size", type=float, help="pixel size in nm (overrides metadata)")
    an.add_argument("--data-bar", type=int, help="rows to exclude at the bottom")
    an.add_argument("--min-size", type=int, default=1, help="drop objects smaller than this (pixels)")
    an.add_argument("--exclude-border", action="store_true", help="drop objects touching the border")
    an.set_defaults(func=cmd_analyze)

    pp = sub.add_parser("preprocess", help="export the original's training tiles to files")
    pp.add_argument("--data-dir", required=True, type=Path)
    pp.add_argument("--output-dir", required=True, type=Path)
    pp.add_argument("--size", type=int, default=128)
    pp.add_argument("--stride", type=int, default=32)
    pp.add_argument("--cutout", type=float)
    pp.add_argument("--classes", type=Path)
    pp.add_argument("--data-bar", type=int)
    pp.set_defaults(func=cmd_preprocess)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]  # recorded in model provenance
    try:
        return args.func(args)
    except RockSegError as exc:
        print(f"rockseg: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rockseg: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
