"""Accuracy benchmark: per-class IoU and mean IoU on the shale test image for
every method, and leave-one-image-out scores on the training images (the data
settings are chosen on; the test image influences nothing there).

    python benchmarks/accuracy.py --minutes 10 --threads 1 \
        --default src/napari_rockseg/models/default.safetensors \
        [--ensemble runs/default110.safetensors]

Trained models are cached in --work, so a second run only evaluates.  The
leave-one-image-out part also scores each held-out image zoomed 2.5x (its
pixel size divided by 2.5, like the test image against the training images)
with and without resampling to the model's pixel size: the held-out check of
scale normalisation.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from napari_rockseg.engine import io
from napari_rockseg.engine.analysis.metrics import evaluate
from napari_rockseg.engine.classes import SHALE
from napari_rockseg.engine.condition import resize
from napari_rockseg.engine.events import drain
from napari_rockseg.engine.inference.segment import segment
from napari_rockseg.engine.models import bundle
from napari_rockseg.engine.training.config import TrainConfig
from napari_rockseg.engine.training.data import load_training_pairs, pairs_in_dir
from napari_rockseg.engine.training.trainer import Trainer

NAMES = SHALE.names


def methods(minutes: float) -> dict[str, dict]:
    return {
        "LDA on grey values (original baseline)": dict(method="lda"),
        "random forest, multiscale features": dict(method="rf", pixel_size_nm=11.16),
        "random forest, percentile normalisation": dict(
            method="rf", pixel_size_nm=11.16, normalization="percentile"
        ),
        "U-Net, cross-entropy": dict(
            method="unet", loss="ce", minutes=minutes, pixel_size_nm=11.16
        ),
        "U-Net, focal-dice": dict(
            method="unet", loss="focal-dice", minutes=minutes, pixel_size_nm=11.16
        ),
    }


def fit(cfg: dict, images, labels, path: Path):
    """Train ``cfg`` or load the model cached under a name that encodes the settings."""
    key = hashlib.sha1(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:10]
    path = path.with_name(f"{path.stem}_{key}{path.suffix}")
    if path.exists():
        return bundle.load_model(path)
    t0 = time.perf_counter()
    trainer = Trainer(TrainConfig(**cfg), images, labels, SHALE, data_source="benchmark")
    model = drain(trainer.run())
    bundle.save_model(model, path)
    print(f"  trained {path.name} in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return model


def score(model, image, truth, **kw) -> dict:
    seg = drain(segment(model, image, **kw))
    return evaluate(seg.labels, truth, SHALE.n_classes, io.valid_mask(truth.shape, seg.data_bar))


def row(name: str, res: dict, extra: str = "") -> str:
    cells = " | ".join(f"{v:.3f}" for v in res["iou"])
    return f"| {name} | {cells} | **{res['miou']:.3f}** |{extra}"


def header(first: str = "method", extra: str = "") -> str:
    cols = " | ".join(NAMES)
    sep = "|".join(["---"] * (len(NAMES) + 2 + (1 if extra else 0)))
    return f"| {first} | {cols} | mean IoU |{extra}\n|{sep}|"


def zoomed(image: io.SEMImage, truth: np.ndarray, factor: float = 2.5):
    """The image area above the data bar zoomed ``factor`` x (a higher magnification)."""
    bar = io.detect_data_bar(image.data)
    rows = image.data.shape[0] - bar
    shape = (int(rows * factor), int(image.data.shape[1] * factor))
    grey = resize(image.data[:rows].astype(np.float32), shape, 1)
    lab = resize(truth[:rows], shape, 0)
    return io.SEMImage(grey, image.pixel_size_nm / factor, image.path), lab


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/shale-sem"
    )
    p.add_argument("--minutes", type=float, default=10.0, help="training budget of each U-Net")
    p.add_argument(
        "--loio-minutes", type=float, default=None, help="U-Net budget per fold (default minutes/2)"
    )
    p.add_argument(
        "--loio-ensemble-minutes",
        type=float,
        default=None,
        help="stacked-ensemble budget per fold (default 4 x the U-Net's; 0 skips the ensemble)",
    )
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--work", type=Path, default=Path("runs/bench"))
    p.add_argument("--default", type=Path, help="the shipped default model")
    p.add_argument(
        "--ensemble",
        type=Path,
        help="a stacked ensemble to score with each fusion (default: --default, if it is one)",
    )
    p.add_argument("--skip-loio", action="store_true")
    p.add_argument(
        "--default-only",
        action="store_true",
        help="only the shipped default's rows (needs --default; no training)",
    )
    args = p.parse_args(argv)
    if args.default_only and not args.default:
        p.error("--default-only needs --default MODEL")
    if args.threads:
        torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    images, labels = load_training_pairs(*pairs_in_dir(args.data / "train"), SHALE)
    test_img, test_lab = load_training_pairs(*pairs_in_dir(args.data / "test"), SHALE)
    test_img, test_lab = test_img[0], test_lab[0]

    print(
        f"## Test image ({test_img.path.name}, {test_img.pixel_size_nm} nm/px), trained on "
        f"{len(images)} training images\n"
    )
    print(header(extra=" predict time |"))
    for i, (name, cfg) in enumerate([] if args.default_only else methods(args.minutes).items()):
        model = fit(cfg, images, labels, args.work / f"full_{i}.safetensors")
        t0 = time.perf_counter()
        res = score(model, test_img, test_lab)
        print(row(name, res, f" {time.perf_counter() - t0:.1f} s |"), flush=True)
    variants = []
    ensemble = args.ensemble or args.default
    if ensemble and not args.default_only:
        model = bundle.load_model(ensemble)
        if model.kind == "ensemble":
            for fusion, name in (
                ("binary", "argmax of binary members"),
                ("stacked", "stacked synthesizer (the original's fusion)"),
                ("mean", "mean of members"),
            ):
                variants.append(
                    (f"ensemble ({ensemble.name}): {name}", model, dict(fusion=fusion), {})
                )
    if args.default:
        model = bundle.load_model(args.default)
        attrs = dict(fusion=model.fusion) if model.kind == "ensemble" else {}
        what = f"bag of {len(model.members)} U-Nets" if model.kind == "bag" else model.kind
        if getattr(model, "forest", None) is not None:
            what += f" + forest at weight {model.forest_weight:g}"
        variants += [
            (f"shipped default ({what})", model, attrs, {}),
            ("shipped default, no scale normalisation", model, attrs, dict(rescale=False)),
            ("shipped default + TTA", model, attrs, dict(tta=True)),
            (
                "shipped default + TTA, no scale normalisation",
                model,
                attrs,
                dict(tta=True, rescale=False),
            ),
        ]
    for name, model, attrs, kw in variants:
        for k, v in attrs.items():
            setattr(model, k, v)
        t0 = time.perf_counter()
        res = score(model, test_img, test_lab, **kw)
        print(row(name, res, f" {time.perf_counter() - t0:.1f} s |"), flush=True)

    if args.skip_loio or args.default_only:
        return 0
    loio_minutes = args.loio_minutes or args.minutes / 2
    print(f"\n## Leave one training image out (U-Net: {loio_minutes:g} min per fold)\n")
    print(header("method, held-out image", extra=""))
    zoom_rows = []
    ens_minutes = (
        4 * loio_minutes if args.loio_ensemble_minutes is None else args.loio_ensemble_minutes
    )
    for i in range(len(images)):
        rest = [j for j in range(len(images)) if j != i]
        held, held_lab = images[i], labels[i]
        zimg, zlab = zoomed(held, held_lab)
        if (
            ens_minutes > 0
        ):  # the shipped recipe (synthesizer 20 %, no early stopping) on two images
            cfg = dict(
                method="ensemble",
                minutes=ens_minutes,
                pixel_size_nm=11.16,
                synth_share=0.2,
                patience=None,
            )
            model = fit(
                cfg,
                [images[j] for j in rest],
                [labels[j] for j in rest],
                args.work / f"loio{i}_ensemble.safetensors",
            )
            for fusion in ("binary", "mean", "stacked"):
                model.fusion = fusion
                name = f"ensemble ({ens_minutes:g} min), {fusion} fusion"
                print(
                    row(f"{name}, image {held.path.name}", score(model, held, held_lab)), flush=True
                )
                zoom_rows.append(
                    (
                        f"{name}, image {held.path.name} x2.5, resampled",
                        score(model, zimg, zlab, data_bar=0),
                    )
                )
        for m, (name, cfg) in enumerate(methods(loio_minutes).items()):
            if "cross-entropy" in name:
                continue
            model = fit(
                cfg,
                [images[j] for j in rest],
                [labels[j] for j in rest],
                args.work / f"loio{i}_{m}.safetensors",
            )
            res = score(model, held, held_lab)
            print(row(f"{name}, image {held.path.name}", res), flush=True)
            if cfg["method"] == "unet":  # the gain of test-time augmentation on held-out data
                res = score(model, held, held_lab, tta=True)
                print(row(f"{name} + TTA, image {held.path.name}", res), flush=True)
            if cfg["method"] != "lda":
                for rescale in (True, False):
                    zres = score(model, zimg, zlab, rescale=rescale, data_bar=0)
                    zoom_rows.append(
                        (
                            f"{name}, image {held.path.name} x2.5, "
                            f"{'resampled' if rescale else 'not resampled'}",
                            zres,
                        )
                    )
    print("\n## Held-out images zoomed 2.5x (higher magnification than any training image)\n")
    print(header("method, held-out image"))
    for name, res in zoom_rows:
        print(row(name, res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
