"""`rockseg lda` and `rockseg preprocess`: the original work's comparison and tile export."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from ._common import _iou_table, _scheme


def cmd_lda(args):
    from ..engine import io
    from ..engine.analysis.metrics import evaluate
    from ..engine.models.lda import GreyLDA
    from ..engine.training.data import load_training_pairs, pairs_in_dir

    scheme = _scheme(args.classes)
    t0 = time.perf_counter()
    images, labels = load_training_pairs(*pairs_in_dir(args.train_dir), scheme)
    masks = [
        io.valid_mask(i.data.shape, io.resolve_data_bar(i.data, args.data_bar)) for i in images
    ]
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
    total = time.perf_counter() - t0
    print(f"LDA fitted on {len(images)} image(s) in {t_fit:.2f} s; total {total:.2f} s")
    return 0


# -- preprocess ------------------------------------------------------------
def cmd_preprocess(args):
    from tqdm import tqdm

    from ..engine import io
    from ..engine.inference.grid import grid_starts
    from ..engine.training.data import pairs_in_dir

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
                t_lab = lab[y : y + args.size, x : x + args.size]
                if t_lab.shape != (args.size, args.size):
                    continue
                if args.cutout is not None:
                    frac = (
                        np.bincount(t_lab.ravel(), minlength=scheme.n_classes + 1).max()
                        / t_lab.size
                    )
                    if frac > args.cutout:
                        continue
                name = f"{ip.stem}_{y}_{x}.tif"
                io.write_image(
                    out / "images" / name, img.data[y : y + args.size, x : x + args.size]
                )
                io.write_labels(out / "labels" / name, t_lab)
                written += 1
    print(f"wrote {written} tiles to {out}/images and {out}/labels")
    return 0


# -- analyze -----------------------------------------------------------------


def add_parser(sub) -> None:
    lda = sub.add_parser("lda", help="the original comparison: LDA on grey values, train and test")
    lda.add_argument("--train-dir", required=True, type=Path)
    lda.add_argument("--test-dir", required=True, type=Path)
    lda.add_argument("--classes", type=Path)
    lda.add_argument("--data-bar", type=int)
    lda.set_defaults(func=cmd_lda)
    pp = sub.add_parser("preprocess", help="export the original's training tiles to files")
    pp.add_argument("--data-dir", required=True, type=Path)
    pp.add_argument("--output-dir", required=True, type=Path)
    pp.add_argument("--size", type=int, default=128)
    pp.add_argument("--stride", type=int, default=32)
    pp.add_argument("--cutout", type=float)
    pp.add_argument("--classes", type=Path)
    pp.add_argument("--data-bar", type=int)
    pp.set_defaults(func=cmd_preprocess)
