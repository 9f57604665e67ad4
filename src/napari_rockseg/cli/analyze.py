"""`rockseg analyze`: rock measurements of label images."""

from __future__ import annotations

import json
from pathlib import Path

from ..engine.errors import RockSegError
from ._common import _print_report, _scheme


def _label_context(path: Path, args):
    """Pixel size (nm) and data-bar rows for a label file: --pixel-size, the
    matching --image, the JSON that `rockseg predict` wrote beside it, or the
    label TIFF's own resolution tags."""
    from ..engine import io

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

    from ..engine import io
    from ..engine.analysis.rock import rock_report, summary_row

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



def add_parser(sub) -> None:
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
