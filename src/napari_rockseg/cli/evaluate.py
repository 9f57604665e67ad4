"""`rockseg evaluate`: per-class IoU of a prediction against ground truth."""

from __future__ import annotations

import sys
from pathlib import Path

from ._common import _clean, _iou_table, labels_scheme


def _eval_mask(pred, truth, data_bar):
    from ..engine.analysis.metrics import unlabelled_bottom_rows
    from ..engine.io import valid_mask

    return valid_mask(truth.shape, unlabelled_bottom_rows(pred) if data_bar is None else data_bar)


def cmd_evaluate(args):
    from ..engine import io
    from ..engine.analysis.metrics import evaluate
    from ..engine.io.write import dumps_json

    scheme, note = labels_scheme(args.prediction, args.classes)  # the prediction's classes
    pred = io.read_labels(args.prediction, scheme)
    truth = io.read_labels(args.truth, scheme, pred.shape)
    if args.data_bar is not None and args.data_bar < 0:
        from ..engine.errors import InputError

        raise InputError(f"--data-bar must be 0 or more rows, got {args.data_bar}")
    result = evaluate(pred, truth, scheme.n_classes, _eval_mask(pred, truth, args.data_bar))
    if args.json:
        print(dumps_json({"classes": list(scheme.names), **result}))
    else:
        print(_iou_table(scheme.names, result))
    if note:  # after the result: an error stays one line
        print(f"note: {_clean(note)}", file=sys.stderr)
    return 0


def add_parser(sub) -> None:
    e = sub.add_parser("evaluate", help="per-class IoU of a prediction against ground truth")
    e.add_argument("prediction", type=Path)
    e.add_argument("truth", type=Path)
    e.add_argument("--classes", type=Path)
    e.add_argument(
        "--data-bar",
        type=int,
        metavar="ROWS",
        help="rows to exclude at the bottom (default: those the prediction left unlabelled)",
    )
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_evaluate)
