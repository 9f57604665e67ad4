"""`rockseg convert` and `rockseg combine`: rewrite model files, bag U-Nets."""

from __future__ import annotations

from pathlib import Path


def cmd_convert(args):
    from ..engine.errors import InputError
    from ..engine.models import bundle

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

    from ..engine.models import bundle
    from ..engine.models.bundle import provenance
    from ..engine.models.ensemble import Bag

    models = [bundle.load_model(p) for p in args.models]
    forest = bundle.load_model(args.forest) if args.forest else None
    bag = Bag.of(
        models,
        provenance(
            command=shlex.join(["rockseg", *args.argv]), combined=[str(p) for p in args.models]
        ),
        forest=forest,
        forest_weight=args.forest_weight,
    )
    bundle.save_model(bag, args.out, half=args.half)
    blend = f" + forest at weight {bag.forest_weight:g}" if forest is not None else ""
    _print_written(args.out, f"bag of {len(bag.members)} U-Nets{blend}", args.half)
    return 0


# -- predict ---------------------------------------------------------------


def add_parser(sub) -> None:
    cv = sub.add_parser("convert", help="rewrite a model bundle (e.g. with float16 weights)")
    cv.add_argument("model", type=Path)
    cv.add_argument("--out", required=True, type=Path)
    cv.add_argument("--half", action="store_true", help="store the weights as float16")
    cv.add_argument(
        "--fusion",
        choices=["mean", "stacked", "binary"],  # ensemble.FUSIONS (no torch for --help)
        help="the ensemble fusion the bundle uses by default",
    )
    cv.set_defaults(func=cmd_convert)

    cb = sub.add_parser(
        "combine", help="bag trained U-Nets: one model that averages their probabilities"
    )
    cb.add_argument(
        "models", nargs="+", type=Path, help="U-Net (or bag) bundles trained on the same images"
    )
    cb.add_argument("--out", required=True, type=Path)
    cb.add_argument("--half", action="store_true", help="store the weights as float16")
    cb.add_argument(
        "--forest",
        type=Path,
        help="random forest (rockseg train --method rf) to blend with the bag's probabilities",
    )
    cb.add_argument(
        "--forest-weight",
        type=float,
        default=0.2,
        help="the forest's share of the blended probabilities (default 0.2, chosen on held-out "
        "images)",
    )
    cb.set_defaults(func=cmd_combine)
