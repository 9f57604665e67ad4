"""Shared by the subcommands: progress bars from engine events, tables, model and scheme loading."""

from __future__ import annotations

import re
import sys

#: control characters (newlines, ESC of ANSI sequences, ...) and the ANSI sequences they start
_CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|[\x00-\x1f\x7f-\x9f]")


#: set by the console entry point (``run``), which starts a command with garbage collection off
collection_deferred = False


def resume_collection() -> None:
    """Garbage collection back on once a command has imported what it needs and loaded its
    model, with every object made so far (modules, the model) frozen out of later collections
    (``gc.freeze``); nothing where the console entry point did not defer it (``main`` called
    in-process)."""
    import gc

    global collection_deferred
    if collection_deferred:
        collection_deferred = False
        gc.freeze()
        gc.enable()


def _clean(text) -> str:
    """``text`` safe for the terminal and on one line: control characters and ANSI escape
    sequences (from file names or a model file's class names) become ``?``."""
    # a non-UTF-8 file name arrives with lone surrogates, which no terminal encoding takes
    text = str(text).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return _CONTROL.sub("?", text)


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
                bar = tqdm(
                    total=ev.total,
                    desc=desc,
                    unit="step",
                    disable=quiet,
                    dynamic_ncols=True,
                    file=sys.stderr,
                )
            if ev.stage != stage:
                stage = ev.stage
                bar.reset(total=ev.total)
                bar.set_description(f"{desc} [{ev.stage}]")
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
    from ..engine.classes import load_scheme

    return load_scheme(path)


def labels_scheme(labels_path, given=None):
    """The class scheme of a labels file: ``given`` (``--classes``), else the one saved beside
    it (``<name>.classes.json`` from napari, or the ``<stem>.json`` that ``rockseg predict``
    wrote with ``<stem>_labels.tif``), else the shale scheme with a note that says so."""
    import json
    from pathlib import Path

    from ..engine.classes import SHALE, ClassScheme, load_scheme, scheme_path

    if given is not None:
        return load_scheme(given), None
    path = Path(labels_path)
    side = scheme_path(path)
    if side.is_file():
        return ClassScheme.from_json(side), f"classes of {path.name} from {side.name}"
    stem = path.name.split(".")[0]
    report = path.with_name(stem.removesuffix("_labels") + ".json")
    if stem.endswith("_labels") and report.is_file():
        try:
            saved = json.loads(report.read_text()).get("scheme")
        except (OSError, ValueError, AttributeError):
            saved = None
        if saved:
            return ClassScheme.from_dict(saved), f"classes of {path.name} from {report.name}"
    names = ", ".join(SHALE.names)
    return SHALE, (
        f"no class scheme given or saved beside {path.name}: the shale scheme ({names}) is "
        "assumed; give the labels' classes with --classes"
    )


def _load(model_path):
    from ..engine.models.bundle import load_model
    from ..models import default_model_path

    return load_model(model_path or default_model_path())


def _iou_table(names, result) -> str:
    names = [_clean(n) for n in names]
    width = max(12, *(len(n) for n in names))
    lines = [f"{'class':<{width}}  IoU"]
    lines += [f"{n:<{width}}  {v:.3f}" for n, v in zip(names, result["iou"])]
    lines.append(f"{'mean IoU':<{width}}  {result['miou']:.3f}")
    return "\n".join(lines)


def _fractions_table(names, fractions) -> str:
    names = [_clean(n) for n in names]
    width = max(12, *(len(n) for n in names))
    return "\n".join(f"{n:<{width}}  {100 * f:6.2f} %" for n, f in zip(names, fractions))


def _print_report(path, report):
    print(f"{_clean(path)}:")
    px = report["pixel_size_nm"]
    print(f"  pixel size {px:.4g} nm" if px else "  pixel size unknown (sizes in pixels)")
    for name, c in report["classes"].items():
        area = f", {c['area_um2']:.3f} um2" if c["area_um2"] is not None else ""
        print(f"  {_clean(name):<16} {100 * c['fraction']:6.2f} %{area}, {c['objects']} objects")
    pores = report.get("pores")
    if pores and pores["count"]:
        print(
            f"  pores: {pores['count']} (d10 {pores['d10']:.1f}, d50 {pores['d50']:.1f}, "
            f"d90 {pores['d90']:.1f} {pores['unit']})"
        )
    share = report.get("organic_hosted_pore_share")
    if share is not None:
        print(f"  organic-hosted share of pore area: {100 * share:.1f} %")


def add_arguments(parser, options: dict, skip=()) -> None:
    """Add ``--kebab-case`` arguments for ``options`` (except those named in ``skip``) to an
    argparse parser, with the range, unit and default in their help.  Values are parsed with
    the option's type and checked by :func:`engine.options.check_all` (one line, exit 2),
    not by argparse."""
    for opt in options.values():
        if opt.name in skip:
            continue
        if opt.type is bool:
            if opt.default:  # on by default: the flag turns it off
                parser.add_argument(
                    "--no-" + opt.flag[2:],
                    dest=opt.name,
                    action="store_false",
                    help=opt.help_text(),
                )
            else:
                parser.add_argument(
                    opt.flag, dest=opt.name, action="store_true", help=opt.help_text()
                )
            continue
        metavar = opt.unit.split()[0].upper() if opt.unit and opt.type is not str else None
        parser.add_argument(
            opt.flag,
            dest=opt.name,
            type=opt.type,
            default=opt.default,
            choices=list(opt.choices) if opt.choices else None,
            metavar=metavar,
            help=opt.help_text(),
        )
